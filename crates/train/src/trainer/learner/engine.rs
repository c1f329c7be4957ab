//! [`EngineLearner`]: a step through the CPU engine's own kernels and the flat
//! optimizer, the candle model kept for checkpoints and refreshed on demand.

use std::collections::HashMap;

use candle_core::Tensor;
use rudder_engine::{self as engine, Flat, Net};
use rudder_nn::data::Split;
use rudder_nn::loss::Loss;
use rudder_nn::model::Model;
use rudder_nn::optim::{Hyper, State};

use super::{ENGINE_EVAL_BATCH, Learner, Sums};
use crate::dist::Collective;

/// The CPU engine and the flat optimizer; `model` is refreshed by `sync_model`.
pub struct EngineLearner {
    /// The candle model, current after `sync_model`.
    pub model: Model,
    net: Net,
    opt: Flat,
    loss: Loss,
    /// The gradients end to end, for the sum across ranks.
    flat: Vec<f32>,
    /// Micro-batches accumulated since the last update (as `CandleLearner`'s).
    micro: u64,
    /// A regression's target deviations (errors in the targets' units).
    std: Option<Vec<f64>>,
}

impl EngineLearner {
    /// A learner training `net` with `opt` on `loss`; `model` is its candle mirror.
    pub fn new(model: Model, net: Net, opt: Flat, loss: Loss) -> EngineLearner {
        EngineLearner {
            model,
            net,
            opt,
            loss,
            flat: Vec::new(),
            micro: 0,
            std: None,
        }
    }

    /// Trains a regression, as [`CandleLearner::regression`]: `loss` (huber with `delta`) on
    /// standardised targets whose deviations are `std`.
    pub fn regression(mut self, delta: f64, std: &[f64]) -> EngineLearner {
        self.net.regression(delta as f32);
        self.std = Some(std.to_vec());
        self
    }

    /// Copies the examples `rows` (or the range `range`) of `split` into the engine.
    fn gather(
        &mut self,
        split: &Split,
        rows: Option<&[u32]>,
        range: std::ops::Range<usize>,
    ) -> candle_core::Result<()> {
        let (net, real) = (&mut self.net, self.std.is_some());
        engine::with_host::<f32, _>(&split.x, |x| match (real, rows) {
            (true, Some(rows)) => {
                engine::with_host::<f32, _>(&split.y, |y| net.gather_values(x, y, rows))
            }
            (true, None) => engine::with_host::<f32, _>(&split.y, |y| {
                net.gather_values_range(x, y, range.start, range.len())
            }),
            (false, Some(rows)) => {
                engine::with_host::<u32, _>(&split.y, |y| net.gather(x, y, rows))
            }
            (false, None) => engine::with_host::<u32, _>(&split.y, |y| {
                net.gather_range(x, y, range.start, range.len())
            }),
        })?
    }
}

impl Learner for EngineLearner {
    fn kernels(&self) -> &'static str {
        "rudder"
    }

    fn accumulate(
        &mut self,
        split: &Split,
        rows: &[u32],
        first: bool,
        scale: f64,
    ) -> candle_core::Result<(f64, f64)> {
        self.gather(split, Some(rows), 0..0)?;
        // Dropout's masks: the same step numbers as `CandleLearner` gives candle's layers.
        let rank = crate::dist::world().rank() as u64;
        self.net
            .set_step((self.opt.steps() << 24) ^ (rank << 12) ^ self.micro);
        self.micro += 1;
        let (loss, correct) = self.net.train_batch(self.loss, !first, scale as f32);
        Ok((loss, correct as f64))
    }

    fn zero_grad(&mut self) -> candle_core::Result<()> {
        self.net.visit(&mut |_, p| p.grad.fill(0.0));
        Ok(())
    }

    fn reduce_grads(&mut self, world: &dyn Collective) -> candle_core::Result<()> {
        let flat = &mut self.flat;
        flat.clear();
        self.net.visit(&mut |_, p| flat.extend_from_slice(&p.grad));
        world.allreduce_f32(flat);
        let mut at = 0;
        self.net.visit(&mut |_, p| {
            let n = p.grad.len();
            p.grad.copy_from_slice(&flat[at..at + n]);
            at += n;
        });
        Ok(())
    }

    fn step(&mut self) -> candle_core::Result<()> {
        self.micro = 0;
        let consts = self.opt.begin();
        let opt = &mut self.opt;
        self.net
            .visit(&mut |i, p| opt.update(&consts, i, &mut p.value, &p.grad));
        Ok(())
    }

    fn evaluate(
        &mut self,
        split: &Split,
        rows: std::ops::Range<usize>,
    ) -> candle_core::Result<Sums> {
        let mut sums = Sums::default();
        if let Some(std) = &self.std {
            sums.sq_err = vec![0.0; std.len()];
        }
        for start in rows.clone().step_by(ENGINE_EVAL_BATCH) {
            let len = ENGINE_EVAL_BATCH.min(rows.end - start);
            self.gather(split, None, start..start + len)?;
            let (l, c) = self.net.eval_batch(self.loss);
            sums.loss += l * len as f64;
            sums.correct += c as f64;
            if let Some(std) = &self.std {
                // Errors in the targets' units, summed per target (as `CandleLearner`).
                let k = std.len();
                for (p, t) in self
                    .net
                    .logits()
                    .chunks_exact(k)
                    .zip(self.net.targets().chunks_exact(k))
                {
                    for j in 0..k {
                        let e = (p[j] - t[j]) as f64 * std[j];
                        sums.abs_err += e.abs();
                        sums.sq_err[j] += e * e;
                    }
                }
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
        self.net.export(&self.model)
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn reload_model(&mut self) -> candle_core::Result<()> {
        self.net.import(&self.model)
    }

    fn optimizer_state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let shapes: HashMap<String, Vec<usize>> = self
            .model
            .params()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        let (first, second) = self.opt.buffers();
        let kinds = self.opt.kind().state_names().iter().zip([first, second]);
        let mut out = Vec::new();
        for (i, (name, perm)) in self.net.layout().into_iter().enumerate() {
            for (suffix, bufs) in kinds.clone() {
                let Some(v) = bufs.get(i).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let data = engine::to_candle_order(perm.as_deref(), v);
                out.push((
                    format!("{name}.{suffix}"),
                    Tensor::from_vec(data, shapes[&name].as_slice(), &candle_core::Device::Cpu)?,
                ));
            }
        }
        Ok(out)
    }

    fn load_optimizer_state(&mut self, state: &State, steps: u64) -> candle_core::Result<()> {
        let params = self.model.params();
        let found = rudder_nn::optim::read_state(self.opt.kind(), state, &params, steps)?;
        // Each state in the engine's parameter order and element layout.
        let mut engine_order = found.into_iter().map(|tensors| {
            let Some(tensors) = tensors else {
                return Ok(Vec::new());
            };
            let by_name: HashMap<&str, &Tensor> = params
                .iter()
                .map(|(n, _)| n.as_str())
                .zip(&tensors)
                .collect();
            self.net
                .layout()
                .iter()
                .map(|(name, perm)| {
                    let src: Vec<f32> = by_name[name.as_str()].flatten_all()?.to_vec1()?;
                    let mut dst = vec![0f32; src.len()];
                    engine::from_candle_order(perm.as_deref(), &src, &mut dst);
                    Ok(dst)
                })
                .collect::<candle_core::Result<Vec<_>>>()
        });
        let first = engine_order.next().unwrap_or(Ok(Vec::new()))?;
        let second = engine_order.next().unwrap_or(Ok(Vec::new()))?;
        self.opt.set_buffers(first, second, steps);
        Ok(())
    }

    fn optimizer_steps(&self) -> u64 {
        self.opt.steps()
    }
}
