//! [`Net`]: a model as engine layers with their activation and gradient buffers;
//! a batch gathered from the resident data set, the forward and backward passes,
//! the loss fused with its gradient, and the weights imported from and exported to
//! the candle model, through each parameter's layout permutation.

use candle_core::{Tensor, Var};
use rudder_nn::loss::Loss;
use rudder_nn::model::{Io, Model};

use crate::{
    Op, Param, block, from_candle_order, loss_and_grad, norm, regress_and_grad, to_candle_order,
};

/// How one engine parameter maps to the candle model's: the name, and for each
/// engine element the index of the candle element (`None`: same order).
pub(crate) struct Mapping {
    pub(crate) name: String,
    pub(crate) perm: Option<Vec<usize>>,
}

/// A model as engine layers, with its activation and gradient buffers.
pub struct Net {
    /// The layers and their buffers.
    body: block::Chain,
    pub(crate) mappings: Vec<Mapping>,
    /// The names of the batch-norm layers (for running statistics), in the order
    /// [`Op::each_norm`] visits them.
    norms: Vec<String>,
    input_len: usize,
    classes: usize,
    input: Vec<f32>,
    /// The batch's class labels, or for a regression its `n x classes` targets.
    labels: Vec<u32>,
    values: Vec<f32>,
    /// A regression's Huber delta (its loss on `values`); `None`: classification.
    regression: Option<f32>,
    threads: usize,
}

/// A batch's targets: class labels, or `classes` real values per example.
#[derive(Clone, Copy)]
enum Targets<'a> {
    Labels(&'a [u32]),
    Values(&'a [f32]),
}

/// Why the engine cannot run a configuration (the trainer then uses candle's autograd).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the CPU engine does not support {0}")]
pub struct Unsupported(pub String);

impl Net {
    /// A net of `ops`, its parameters mapped by `mappings` and its batch norms named
    /// by `norms`, for inputs of `io`; the weights still to import.
    pub(crate) fn assemble(
        ops: Vec<Box<dyn Op>>,
        mappings: Vec<Mapping>,
        norms: Vec<String>,
        io: Io,
        threads: usize,
    ) -> Net {
        Net {
            body: block::Chain::new(ops),
            mappings,
            norms,
            input_len: io.features,
            classes: io.classes,
            input: Vec::new(),
            labels: Vec::new(),
            values: Vec::new(),
            regression: None,
            threads,
        }
    }

    /// Each parameter's candle name and, where the engine stores it in another
    /// order, the permutation (engine index `i` holds the candle element `perm[i]`).
    pub fn layout(&self) -> Vec<(String, Option<Vec<usize>>)> {
        self.mappings
            .iter()
            .map(|m| (m.name.clone(), m.perm.clone()))
            .collect()
    }

    /// Calls `f` on each batch-norm layer with its name.
    pub(crate) fn each_norm(&mut self, f: &mut dyn FnMut(&str, &mut norm::BnRelu)) {
        let mut i = 0;
        let Net { body, norms, .. } = self;
        body.each_norm(&mut |bn| {
            f(&norms[i], bn);
            i += 1;
        });
    }

    /// Copies the weights and running statistics of `model` into the engine.
    pub fn import(&mut self, model: &Model) -> candle_core::Result<()> {
        let named: std::collections::HashMap<String, Var> =
            model.params().into_iter().chain(model.buffers()).collect();
        let get = |name: &str| -> candle_core::Result<Vec<f32>> {
            named
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))?
                .as_tensor()
                .flatten_all()?
                .to_vec1()
        };
        let sources: Vec<Vec<f32>> = self
            .mappings
            .iter()
            .map(|m| get(&m.name))
            .collect::<candle_core::Result<_>>()?;
        let perms: Vec<Option<Vec<usize>>> = self.mappings.iter().map(|m| m.perm.clone()).collect();
        let mut fault = None;
        self.visit(&mut |i, p| {
            let src = &sources[i];
            if src.len() != p.value.len() {
                fault = Some(format!(
                    "size {} where the engine has {}",
                    src.len(),
                    p.value.len()
                ));
                return;
            }
            from_candle_order(perms[i].as_deref(), src, &mut p.value);
        });
        let mut stats = Vec::new();
        for name in &self.norms {
            stats.push((
                get(&format!("{name}.running_mean"))?,
                get(&format!("{name}.running_var"))?,
            ));
        }
        let mut i = 0;
        self.each_norm(&mut |_, bn| {
            if stats[i].0.len() != bn.running_mean.len() {
                fault = Some(format!("{} running statistics", stats[i].0.len()));
            } else {
                bn.running_mean.copy_from_slice(&stats[i].0);
                bn.running_var.copy_from_slice(&stats[i].1);
            }
            i += 1;
        });
        match fault {
            Some(m) => Err(candle_core::Error::Msg(m)),
            None => Ok(()),
        }
    }

    /// Writes the engine's weights and running statistics back into `model`.
    pub fn export(&mut self, model: &Model) -> candle_core::Result<()> {
        let named: std::collections::HashMap<String, Var> =
            model.params().into_iter().chain(model.buffers()).collect();
        let perms: Vec<(String, Option<Vec<usize>>)> = self
            .mappings
            .iter()
            .map(|m| (m.name.clone(), m.perm.clone()))
            .collect();
        let mut values: Vec<Vec<f32>> = Vec::new();
        self.visit(&mut |_, p| values.push(p.value.clone()));
        for ((name, perm), value) in perms.iter().zip(values) {
            let var = &named[name];
            let out = to_candle_order(perm.as_deref(), &value);
            var.set(&Tensor::from_vec(out, var.shape(), var.device())?)?;
        }
        let mut stats = Vec::new();
        self.each_norm(&mut |name, bn| {
            stats.push((
                name.to_string(),
                bn.running_mean.clone(),
                bn.running_var.clone(),
            ))
        });
        for (name, rm, rv) in stats {
            for (suffix, v) in [("running_mean", rm), ("running_var", rv)] {
                let var = &named[&format!("{name}.{suffix}")];
                var.set(&Tensor::from_vec(v, var.shape(), var.device())?)?;
            }
        }
        Ok(())
    }

    /// Examples in the gathered batch.
    fn n(&self) -> usize {
        self.input.len() / self.input_len.max(1)
    }

    /// Trains a regression from now on: its outputs are real targets, compared by a
    /// regression loss (`huber` with `delta`) in [`Net::train_batch`].
    pub fn regression(&mut self, delta: f32) {
        self.regression = Some(delta);
    }

    /// Copies the examples `rows` of `(x, y)` into the input buffers.
    pub fn gather(&mut self, x: &[f32], y: &[u32], rows: &[u32]) {
        self.fill(x, Targets::Labels(y), rows.iter().map(|&r| r as usize));
    }

    /// Copies `n` examples starting at `start`.
    pub fn gather_range(&mut self, x: &[f32], y: &[u32], start: usize, n: usize) {
        self.fill(x, Targets::Labels(y), start..start + n);
    }

    /// [`Net::gather`] for a regression: `y` holds `classes` real targets per example.
    pub fn gather_values(&mut self, x: &[f32], y: &[f32], rows: &[u32]) {
        self.fill(x, Targets::Values(y), rows.iter().map(|&r| r as usize));
    }

    /// [`Net::gather_range`] for a regression.
    pub fn gather_values_range(&mut self, x: &[f32], y: &[f32], start: usize, n: usize) {
        self.fill(x, Targets::Values(y), start..start + n);
    }

    fn fill(&mut self, x: &[f32], y: Targets, rows: impl Iterator<Item = usize>) {
        let (d, k) = (self.input_len, self.classes);
        self.input.clear();
        self.labels.clear();
        self.values.clear();
        for r in rows {
            self.input.extend_from_slice(&x[r * d..(r + 1) * d]);
            match y {
                Targets::Labels(y) => self.labels.push(y[r]),
                Targets::Values(y) => self.values.extend_from_slice(&y[r * k..(r + 1) * k]),
            }
        }
    }

    /// The gathered batch's targets, if a regression's (`n x classes`).
    pub fn targets(&self) -> &[f32] {
        &self.values
    }

    /// The loss of the last forward pass and its gradient (times `scale`) into the
    /// last layer's gradient buffer: (mean loss, examples right).
    fn loss(&mut self, loss: Loss, scale: f32) -> (f64, usize) {
        let (n, k) = (self.n(), self.classes);
        let (out, grad) = self
            .body
            .last(n * k)
            .expect("`from_model` refuses a model without layers");
        let out = &out[..n * k];
        match self.regression {
            Some(delta) => (
                regress_and_grad(loss, delta, out, &self.values, grad, scale),
                0,
            ),
            None => loss_and_grad(loss, out, &self.labels, k, grad, scale),
        }
    }

    fn forward(&mut self, train: bool) {
        self.body
            .forward(&self.input, self.n(), train, self.threads);
    }

    /// Forward, loss and backward on the gathered batch; gradients are written, or
    /// added to when `acc`; `scale` multiplies them. Returns (mean loss, correct).
    pub fn train_batch(&mut self, loss: Loss, acc: bool, scale: f32) -> (f64, usize) {
        self.forward(true);
        let out = self.loss(loss, scale);
        self.body
            .backward(&self.input, self.n(), None, acc, self.threads);
        out
    }

    /// Loss and correct count on the gathered batch, in evaluation mode (the last
    /// gradient buffer is scratch).
    pub fn eval_batch(&mut self, loss: Loss) -> (f64, usize) {
        self.forward(false);
        self.loss(loss, 1.0)
    }

    /// Tells the layers the step of the next training forward (dropout's masks).
    pub fn set_step(&mut self, step: u64) {
        self.body.set_step(step);
    }

    /// Calls `f(index, param)` for every parameter, in the candle model's order.
    pub fn visit(&mut self, f: &mut dyn FnMut(usize, &mut Param)) {
        let mut i = 0;
        self.body.each_param(&mut |p| {
            f(i, p);
            i += 1;
        });
    }

    /// The logits of the last forward pass (`n x classes`).
    pub fn logits(&self) -> &[f32] {
        let n = self.n();
        &self.body.acts.last().expect("a model has layers")[..n * self.classes]
    }
}
