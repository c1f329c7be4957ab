//! How one step's arithmetic is done: candle's autograd over the [`Model`] (any device,
//! the reference), or the CPU engine (our own kernels). The trainer drives either
//! through [`Learner`] and never sees the difference.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use crate::data::Split;
use crate::dist::Collective;
use crate::engine::{self, Net};
use crate::loss::Loss;
use crate::model::Model;
use crate::optim::{Flat, Hyper, Optimizer, State};

/// Gradient of a step's batches, then one update.
pub trait Learner {
    /// Whose kernels compute the steps: `rudder` (the CPU engine) or `candle`
    /// (autograd), as `--kernels` spells them (in the `run_start` event).
    fn kernels(&self) -> &'static str;
    /// Forward and backward on the examples `rows` of `split`; the gradient is written
    /// (`first`) or added, scaled by `scale`. Returns (mean loss, correct).
    fn accumulate(
        &mut self,
        split: &Split,
        rows: &[u32],
        first: bool,
        scale: f64,
    ) -> candle_core::Result<(f64, f64)>;
    /// Sets the gradient to zero: a step whose batch has no rows on this rank still
    /// takes part in the sum across ranks.
    fn zero_grad(&mut self) -> candle_core::Result<()>;
    /// Sums the accumulated gradient across the ranks of `world` (one flat buffer).
    fn reduce_grads(&mut self, world: &dyn Collective) -> candle_core::Result<()>;
    /// One optimizer update from the accumulated gradient.
    fn step(&mut self) -> candle_core::Result<()>;
    /// The summed loss and the number right over the examples `rows` of `split`, in
    /// evaluation mode (a rank's shard of validation).
    fn evaluate(
        &mut self,
        split: &Split,
        rows: std::ops::Range<usize>,
    ) -> candle_core::Result<Sums>;
    fn hyper(&self) -> Hyper;
    fn set_hyper(&mut self, h: Hyper);
    /// Brings the candle model up to date with the learner's weights.
    fn sync_model(&mut self) -> candle_core::Result<()>;
    /// The candle model; its weights are current after `sync_model`.
    fn model(&self) -> &Model;
    /// Takes the weights from the candle model after they were replaced (a rollback,
    /// a resume).
    fn reload_model(&mut self) -> candle_core::Result<()>;
    /// The optimizer's state tensors, named and shaped as the candle optimizers keep
    /// them (so a checkpoint does not depend on which kernels wrote it).
    fn optimizer_state(&self) -> candle_core::Result<Vec<(String, Tensor)>>;
    /// Replaces the optimizer's state and its count of updates.
    fn load_optimizer_state(&mut self, state: &State, steps: u64) -> candle_core::Result<()>;
    /// Optimizer updates done.
    fn optimizer_steps(&self) -> u64;
}

/// What an evaluation adds up: the loss over examples and, for classification, the
/// examples classified right; for regression the absolute and, per target, the
/// squared errors in the targets' units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    pub loss: f64,
    pub correct: f64,
    pub abs_err: f64,
    pub sq_err: Vec<f64>,
}

impl Sums {
    /// As one buffer, for a reduction across ranks.
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![self.loss, self.correct, self.abs_err];
        v.extend(&self.sq_err);
        v
    }

    pub fn from_slice(v: &[f64]) -> Sums {
        Sums {
            loss: v[0],
            correct: v[1],
            abs_err: v[2],
            sq_err: v[3..].to_vec(),
        }
    }
}

/// A regression's loss and scale: the Huber delta, and each target's deviation (a
/// standardised error times it is an error in the targets' units).
#[derive(Debug, Clone)]
struct Regression {
    delta: f64,
    std: Tensor,
}

/// candle autograd and the tensor optimizers.
pub struct Graph {
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

/// Examples per evaluation batch.
const EVAL_BATCH: usize = 1000;
/// The engine keeps activations for a whole batch; smaller evaluation batches bound
/// that memory (the CNN's im2col buffer is 113 KB per example).
const ENGINE_EVAL_BATCH: usize = 128;

impl Graph {
    pub fn new(model: Model, opt: Box<dyn Optimizer>, loss: Loss) -> Graph {
        let params: Vec<Var> = model.params().into_iter().map(|(_, v)| v).collect();
        Graph {
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
    pub fn regression(mut self, delta: f64, std: &[f64]) -> candle_core::Result<Graph> {
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
            Some(r) => Ok((self.loss.regress(out, y, r.delta)?, 0.0)),
            None => Ok((self.loss.compute(out, y)?, count_correct(out, y)?)),
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

impl Learner for Graph {
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

/// The CPU engine and the flat optimizer; `model` is refreshed by `sync_model`.
pub struct Engine {
    pub model: Model,
    net: Net,
    opt: Flat,
    loss: Loss,
    /// The gradients end to end, for the sum across ranks.
    flat: Vec<f32>,
    /// Micro-batches accumulated since the last update (as `Graph`'s).
    micro: u64,
    /// A regression's target deviations (errors in the targets' units).
    std: Option<Vec<f64>>,
}

impl Engine {
    pub fn new(model: Model, net: Net, opt: Flat, loss: Loss) -> Engine {
        Engine {
            model,
            net,
            opt,
            loss,
            flat: Vec::new(),
            micro: 0,
            std: None,
        }
    }

    /// Trains a regression, as [`Graph::regression`]: `loss` (huber with `delta`) on
    /// standardised targets whose deviations are `std`.
    pub fn regression(mut self, delta: f64, std: &[f64]) -> Engine {
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

impl Learner for Engine {
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
        // Dropout's masks: the same step numbers as `Graph` gives candle's layers.
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
                // Errors in the targets' units, summed per target (as `Graph`).
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
        let found = crate::optim::read_state(self.opt.kind(), state, &params, steps)?;
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
