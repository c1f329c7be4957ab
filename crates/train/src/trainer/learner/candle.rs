//! [`CandleLearner`]: a step through candle's autograd and the tensor optimizers,
//! on any device (the reference, and the CUDA path).

use candle_core::{DType, Tensor, Var};
use rudder_nn::data::Split;
use rudder_nn::loss::Loss;
use rudder_nn::model::Model;
use rudder_nn::optim::{Hyper, Optimizer, State};

use super::{EVAL_BATCH, Learner, Sums};
use crate::dist::Collective;

/// A regression's loss and scale: the Huber delta, and each target's deviation (a
/// standardised error times it is an error in the targets' units).
#[derive(Debug, Clone)]
struct Regression {
    delta: f64,
    std: Tensor,
}

/// candle autograd and the tensor optimizers.
pub struct CandleLearner {
    /// The model whose parameters the optimizer updates.
    pub model: Model,
    params: Vec<Var>,
    opt: Box<dyn Optimizer>,
    loss: Loss,
    grads: Vec<Option<Tensor>>,
    regression: Option<Regression>,
    /// Micro-batches accumulated since the last update (dropout's masks differ per
    /// micro-batch).
    micro: u64,
}

impl CandleLearner {
    /// A learner training `model` with `opt` on `loss`.
    pub fn new(model: Model, opt: Box<dyn Optimizer>, loss: Loss) -> CandleLearner {
        let params: Vec<Var> = model.params().into_iter().map(|(_, v)| v).collect();
        CandleLearner {
            grads: vec![None; params.len()],
            model,
            params,
            opt,
            loss,
            regression: None,
            micro: 0,
        }
    }

    /// Trains a regression: `loss` (mse, mae or huber with `delta`) on standardised
    /// targets whose deviations are `std`, reported in the targets' units.
    pub fn regression(mut self, delta: f64, std: &[f64]) -> candle_core::Result<CandleLearner> {
        let device = self
            .params
            .first()
            .map_or(candle_core::Device::Cpu, |p| p.device().clone());
        let std: Vec<f32> = std.iter().map(|&s| s as f32).collect();
        let k = std.len();
        self.regression = Some(Regression {
            delta,
            std: Tensor::from_vec(std, (1, k), &device)?,
        });
        Ok(self)
    }

    /// The loss of `out` against `y`, and the examples right (0 for regression).
    fn loss_of(&self, out: &Tensor, y: &Tensor) -> candle_core::Result<(Tensor, f64)> {
        match &self.regression {
            Some(r) => Ok((rudder_nn::loss::regress(self.loss, out, y, r.delta)?, 0.0)),
            None => Ok((
                rudder_nn::loss::classify(self.loss, out, y)?,
                count_correct(out, y)?,
            )),
        }
    }
}

fn count_correct(logits: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let pred = logits.argmax(1)?;
    Ok(pred
        .eq(y)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as f64)
}

impl Learner for CandleLearner {
    fn kernels(&self) -> &'static str {
        "candle"
    }

    fn accumulate(
        &mut self,
        split: &Split,
        rows: &[u32],
        first: bool,
        scale: f64,
    ) -> candle_core::Result<(f64, f64)> {
        let idx = Tensor::from_slice(rows, rows.len(), split.x.device())?;
        let (x, y) = (
            split.x.index_select(&idx, 0)?,
            split.y.index_select(&idx, 0)?,
        );
        // Dropout's masks follow the optimizer step (restored on a resume), the
        // micro-batch and the rank.
        let rank = crate::dist::world().rank() as u64;
        self.model
            .set_step((self.opt.steps() << 24) ^ (rank << 12) ^ self.micro);
        self.micro += 1;
        let logits = self.model.forward(&x, true)?;
        let (loss, correct) = self.loss_of(&logits, &y)?;
        let out = (loss.to_scalar::<f32>()? as f64, correct);
        let scaled = if scale != 1.0 { (loss * scale)? } else { loss };
        let mut store = scaled.backward()?;
        for (slot, p) in self.grads.iter_mut().zip(&self.params) {
            let Some(g) = store.remove(p.as_tensor()) else {
                continue;
            };
            *slot = Some(match slot.take() {
                Some(sum) if !first => (sum + g)?,
                _ => g,
            });
        }
        Ok(out)
    }

    fn zero_grad(&mut self) -> candle_core::Result<()> {
        self.grads.iter_mut().for_each(|g| *g = None);
        Ok(())
    }

    /// One flat tensor on the parameters' device, summed by the world (on the GPU
    /// with NCCL), then cut back into the gradients.
    fn reduce_grads(&mut self, world: &dyn Collective) -> candle_core::Result<()> {
        let parts = self
            .grads
            .iter()
            .zip(&self.params)
            .map(|(g, p)| match g {
                Some(g) => g.flatten_all(),
                None => p.zeros_like()?.flatten_all(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let flat = world.allreduce_tensor(&Tensor::cat(&parts, 0)?)?;
        let mut at = 0;
        for (g, p) in self.grads.iter_mut().zip(&self.params) {
            let n = p.elem_count();
            *g = Some(flat.narrow(0, at, n)?.reshape(p.dims())?);
            at += n;
        }
        Ok(())
    }

    fn step(&mut self) -> candle_core::Result<()> {
        let grads = self
            .grads
            .iter_mut()
            .zip(&self.params)
            .map(|(g, p)| g.take().map_or_else(|| p.zeros_like(), Ok))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.micro = 0;
        self.opt.step(&grads)
    }

    fn evaluate(
        &mut self,
        split: &Split,
        rows: std::ops::Range<usize>,
    ) -> candle_core::Result<Sums> {
        let mut sums = Sums::default();
        for start in rows.clone().step_by(EVAL_BATCH) {
            let len = EVAL_BATCH.min(rows.end - start);
            let (x, y) = (
                split.x.narrow(0, start, len)?,
                split.y.narrow(0, start, len)?,
            );
            let out = self.model.forward(&x, false)?.detach();
            let (loss, correct) = self.loss_of(&out, &y)?;
            sums.loss += loss.to_scalar::<f32>()? as f64 * len as f64;
            sums.correct += correct;
            if let Some(r) = &self.regression {
                // Errors in the targets' units, summed per target.
                let err = (&out - &y)?.broadcast_mul(&r.std)?.to_dtype(DType::F64)?;
                sums.abs_err += err.abs()?.sum_all()?.to_scalar::<f64>()?;
                let sq: Vec<f64> = err.sqr()?.sum(0)?.to_vec1()?;
                if sums.sq_err.is_empty() {
                    sums.sq_err = vec![0.0; sq.len()];
                }
                sums.sq_err.iter_mut().zip(sq).for_each(|(a, b)| *a += b);
            }
        }
        Ok(sums)
    }

    fn hyper(&self) -> Hyper {
        self.opt.hyper()
    }

    fn set_hyper(&mut self, h: Hyper) {
        self.opt.set_hyper(h);
    }

    fn sync_model(&mut self) -> candle_core::Result<()> {
        Ok(())
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn reload_model(&mut self) -> candle_core::Result<()> {
        Ok(())
    }

    fn optimizer_state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        Ok(self.opt.state())
    }

    fn load_optimizer_state(&mut self, state: &State, steps: u64) -> candle_core::Result<()> {
        self.opt.load_state(state, steps)
    }

    fn optimizer_steps(&self) -> u64 {
        self.opt.steps()
    }
}
