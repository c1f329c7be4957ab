//! Any candle model under rudder's loop: implement [`Trainable`]
//! for it and call [`fit`]; it gets the policies with hot reload, checkpoints and
//! `--resume`, metrics, events and the report, as `rudder train` does.
//!
//! ```no_run
//! use candle_core::{Device, Module, Tensor, Var};
//! use candle_nn::{VarBuilder, VarMap};
//! use rudder_train::{Trainable, fit};
//!
//! struct Tiny {
//!     vars: VarMap,
//!     layer: candle_nn::Linear,
//! }
//!
//! impl Trainable for Tiny {
//!     fn forward(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
//!         self.layer.forward(x)
//!     }
//!     fn params(&self) -> Vec<(String, Var)> {
//!         let mut v: Vec<_> = self.vars.data().lock().unwrap().clone().into_iter().collect();
//!         v.sort_by(|a, b| a.0.cmp(&b.0));
//!         v
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, candle_core::DType::F32, &Device::Cpu);
//! let layer = candle_nn::linear(4, 3, vb.pp("out"))?;
//! let x = Tensor::randn(0f32, 1.0, (100, 4), &Device::Cpu)?;
//! let y = Tensor::zeros(100, candle_core::DType::U32, &Device::Cpu)?;
//! let data = rudder_train::nn::data::Data::from_tensors(x.narrow(0, 0, 80)?, y.narrow(0, 0, 80)?,
//!     x.narrow(0, 80, 20)?, y.narrow(0, 80, 20)?, 3)?;
//! let mut cfg = rudder_train::resolve(Default::default())?;
//! cfg.out = "runs/tiny".into();
//! let mut policies = rudder_train::load_policies(&["lr/cosine".into()], &[], cfg.lr_scaling, cfg.watch)?;
//! let summary = fit(Tiny { vars, layer }, &data, &cfg, &mut policies)?;
//! println!("{} epochs", summary.epochs_run);
//! # Ok(())
//! # }
//! ```

use candle_core::{Tensor, Var};

use rudder_core::TrainConfig;
use rudder_nn::data::Data;
use rudder_nn::model::{Layer, Model};
use rudder_policy::Controller;

use crate::Error;
use crate::trainer::{CandleLearner, Learner, Summary, TrainError};

/// A model rudder can train: a forward pass and its parameters.
pub trait Trainable: Send {
    /// Logits (classification, one row per example) or predictions (regression,
    /// one column per target) for a batch; `train` is false during validation
    /// (dropout off, batch norm on its running statistics).
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// The trainable parameters with stable names (a `VarMap`'s, sorted): the
    /// optimizer updates them in place, and the checkpoints hold them by name.
    fn params(&self) -> Vec<(String, Var)>;
    /// State that is checkpointed but not trained (running statistics).
    fn buffers(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}

/// The user's model as the one layer of a [`Model`] (its names `model.<name>`).
struct Wrapped<T> {
    inner: T,
    params: Vec<(String, Var)>,
    buffers: Vec<(String, Var)>,
}

impl<T: Trainable> Layer for Wrapped<T> {
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.inner.forward(x, train)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        self.params.iter().map(|(n, v)| (n.clone(), v)).collect()
    }

    fn buffers(&self) -> Vec<(String, &Var)> {
        self.buffers.iter().map(|(n, v)| (n.clone(), v)).collect()
    }
}

/// Trains `model` on `data` as `cfg` says (its optimizer, loss, task, batch size,
/// epochs, run folder, checkpoints; `--resume` through `cfg.resume`), steered by
/// `controller`, through candle's autograd on the device of `data`. `cfg.model`
/// and the model options are not used.
pub fn fit<T: Trainable + 'static>(
    model: T,
    data: &Data,
    cfg: &TrainConfig,
    controller: &mut dyn Controller,
) -> Result<Summary, Error> {
    crate::with_threads(cfg.threads, move || {
        let params = model.params();
        let buffers = model.buffers();
        let model = Model::new(vec![(
            "model".into(),
            Box::new(Wrapped {
                inner: model,
                params,
                buffers,
            }),
        )]);
        let param_count = model.param_count();
        let opt = rudder_nn::optim::build(cfg.optimizer, model.params(), cfg.hyper())
            .map_err(TrainError::from)?;
        let graph = CandleLearner::new(model, opt, cfg.loss);
        let learner: Box<dyn Learner> = match &data.targets {
            Some(t) => Box::new(
                graph
                    .regression(cfg.huber_delta, &t.std)
                    .map_err(TrainError::from)?,
            ),
            None => Box::new(graph),
        };
        crate::train_learner(cfg, data, learner, param_count, controller)
    })
}
