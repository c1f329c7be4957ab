//! The CPU engine: our own forward and backward passes for the built-in MLP and CNN
//! and every layer of a model file, on preallocated buffers, with gemm (AVX-512
//! where the CPU has it) for every product.
//! It mirrors a candle [`Model`] parameter for parameter (import and export), so the
//! autograd model stays the reference, the CUDA path and the checkpoint format.

pub mod block;
pub mod conv;
pub mod dense;
mod gemm;
mod loss;
pub mod norm;
pub mod pool;
pub mod team;
pub mod vector;

use candle_core::{Tensor, Var};

use crate::loss::Loss;
use crate::model::spec::{LayerSpec, Shape, kind};
use crate::model::{Arch, Io, Model};

pub use gemm::{calls as gemm_calls, in_product};
pub use loss::{argmax, loss_and_grad, regress_and_grad};

/// A trainable array and its gradient.
pub struct Param {
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Param {
    pub fn zeros(len: usize) -> Param {
        Param::filled(len, 0.0)
    }

    pub fn filled(len: usize, v: f32) -> Param {
        Param {
            value: vec![v; len],
            grad: vec![0.0; len],
        }
    }
}

/// One layer of the engine. Buffers are row-major, examples first, channels last.
pub trait Op: Send {
    /// Output elements per example.
    fn out_len(&self) -> usize;
    /// `y = f(x)` for `n` examples.
    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize);
    /// Parameter gradients from `dy` (written, or added when `acc`); `dx` when asked.
    /// `dy` may be overwritten.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    );
    /// Its parameters (at most two), in the candle model's order.
    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [None, None]
    }
    /// The batch-norm layer, for its running statistics.
    fn as_norm(&mut self) -> Option<&mut norm::BnRelu> {
        None
    }
    /// Calls `f` on each parameter, in the candle model's order (a block's too).
    fn each_param(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for p in self.params().into_iter().flatten() {
            f(p)
        }
    }
    /// Calls `f` on each batch-norm layer, in the candle model's order.
    fn each_norm(&mut self, f: &mut dyn FnMut(&mut norm::BnRelu)) {
        if let Some(n) = self.as_norm() {
            f(n)
        }
    }
    /// The optimizer step of the next training forward (dropout's masks).
    fn set_step(&mut self, _step: u64) {}
}

/// Runs `f(first_example, chunk)` over the first `n` examples of `data` (`per`
/// elements each), split into `threads` contiguous runs of whole examples on the
/// engine's team of threads; on the calling thread alone when `threads` is 1. Each
/// element is written by exactly one run, so results do not depend on the split.
pub(crate) fn by_example<T: Send>(
    data: &mut [T],
    per: usize,
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let data = &mut data[..n * per];
    if threads <= 1 || n < 2 || per == 0 {
        return f(0, data);
    }
    let each = n.div_ceil(threads);
    team::chunks_mut(data, each * per, |i, chunk| f(i * each, chunk));
}

/// [`by_example`] over two buffers split alike (`pa` and `pb` elements per example).
#[allow(clippy::too_many_arguments)]
pub(crate) fn by_example2<A: Send, B: Send>(
    a: &mut [A],
    pa: usize,
    b: &mut [B],
    pb: usize,
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let (a, b) = (&mut a[..n * pa], &mut b[..n * pb]);
    if threads <= 1 || n < 2 {
        return f(0, a, b);
    }
    let each = n.div_ceil(threads);
    let (sa, sb) = (team::Shared::new(a), team::Shared::new(b));
    team::run(n.div_ceil(each), &|i| {
        let (first, count) = (i * each, each.min(n - i * each));
        // SAFETY: part `i` alone takes examples `first..first + count` of each
        // buffer; both outlive `run`.
        let (ca, cb) = unsafe {
            (
                sa.piece(first * pa, count * pa),
                sb.piece(first * pb, count * pb),
            )
        };
        f(first, ca, cb)
    });
}

/// `v` (in the engine's order) in the candle model's order: element `i` goes to
/// `perm[i]`.
pub fn to_candle_order(perm: Option<&[usize]>, v: &[f32]) -> Vec<f32> {
    match perm {
        Some(perm) => {
            let mut out = vec![0f32; v.len()];
            perm.iter().zip(v).for_each(|(&j, &x)| out[j] = x);
            out
        }
        None => v.to_vec(),
    }
}

/// The inverse of [`to_candle_order`], into `dst`: element `i` comes from `perm[i]`.
pub fn from_candle_order(perm: Option<&[usize]>, src: &[f32], dst: &mut [f32]) {
    match perm {
        Some(perm) => dst.iter_mut().zip(perm).for_each(|(v, &j)| *v = src[j]),
        None => dst.copy_from_slice(src),
    }
}

/// How one engine parameter maps to the candle model's: the name, and for each
/// engine element the index of the candle element (`None`: same order).
struct Mapping {
    name: String,
    perm: Option<Vec<usize>>,
}

/// A model as engine layers, with its activation and gradient buffers.
pub struct Net {
    /// The layers and their buffers.
    body: block::Chain,
    mappings: Vec<Mapping>,
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
    /// Builds the engine twin of `model` (same architecture) and copies its weights.
    pub fn from_model(
        arch: &Arch,
        io: Io,
        model: &Model,
        threads: usize,
    ) -> Result<Net, Unsupported> {
        let mut ops: Vec<Box<dyn Op>> = Vec::new();
        let mut mappings = Vec::new();
        let mut norms = Vec::new();
        match arch {
            Arch::Mlp { hidden } => {
                let mut width = io.features;
                for (i, &h) in hidden.iter().enumerate() {
                    ops.push(Box::new(dense::Dense::new(width, h, true)));
                    mappings.extend(plain(&format!("fc{}", i + 1), &["weight", "bias"]));
                    width = h;
                }
                ops.push(Box::new(dense::Dense::new(width, io.classes, false)));
                mappings.extend(plain("head", &["weight", "bias"]));
            }
            Arch::File { spec, .. } => {
                let input = match io.image {
                    Some((c, h, w)) => Shape::Image(c, h, w),
                    None => Shape::Vector(io.features),
                };
                let mut b = FileBuilder {
                    classes: io.classes,
                    dropouts: model.dropouts(),
                    mappings: &mut mappings,
                    norms: &mut norms,
                };
                // The input is in torch's order: channels-last already when it has
                // one channel.
                let torch_order = matches!(input, Shape::Image(c, h, w) if c > 1 && h * w > 1);
                ops = b.ops(&spec.layers, input, torch_order, "")?;
                if ops.is_empty() {
                    return Err(Unsupported("a model file without layers".into()));
                }
            }
            Arch::Cnn { channels } => {
                let Some((c0, mut h, mut w)) = io.image else {
                    return Err(Unsupported("a CNN without image input".into()));
                };
                if c0 != 1 {
                    return Err(Unsupported(format!("{c0}-channel images")));
                }
                let mut c = c0;
                for (i, &out) in channels.iter().enumerate() {
                    let b = i + 1;
                    let conv = conv::Conv::new(conv::Geometry::same3x3(h, w, c, out), false);
                    mappings.push(Mapping {
                        name: format!("conv{b}.weight"),
                        perm: Some(conv.torch_order()),
                    });
                    ops.push(Box::new(conv));
                    norms.push(format!("bn{b}"));
                    ops.push(Box::new(norm::BnReluPool::new(h, w, out)));
                    mappings.extend(plain(&format!("bn{b}"), &["weight", "bias"]));
                    (c, h, w) = (out, h / 2, w / 2);
                }
                // The head reads (h, w, c)-ordered features; torch flattens (c, h, w).
                let feats = c * h * w;
                let perm = (0..io.classes * feats)
                    .map(|j| {
                        let (o, f) = (j / feats, j % feats);
                        let (pos, ch) = (f / c, f % c);
                        o * feats + ch * h * w + pos
                    })
                    .collect();
                ops.push(Box::new(dense::Dense::new(feats, io.classes, false)));
                mappings.push(Mapping {
                    name: "head.weight".into(),
                    perm: Some(perm),
                });
                mappings.extend(plain("head", &["bias"]));
            }
        }
        let mut net = Net {
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
        };
        net.import(model)
            .map_err(|e| Unsupported(format!("this model ({e})")))?;
        Ok(net)
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
    fn each_norm(&mut self, f: &mut dyn FnMut(&str, &mut norm::BnRelu)) {
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

/// Builds a model file's engine layers, recording each parameter's candle name and
/// layout and each batch norm's name. Images are channels-last in the engine; the
/// builder tracks whether the current buffer is in torch's `(c, h, w)` order
/// instead (a several-channel input before its first image layer, or after a
/// transpose for `flatten`).
struct FileBuilder<'a> {
    classes: usize,
    dropouts: std::collections::HashMap<String, (f64, u64)>,
    mappings: &'a mut Vec<Mapping>,
    norms: &'a mut Vec<String>,
}

impl FileBuilder<'_> {
    fn ops(
        &mut self,
        specs: &[LayerSpec],
        input: Shape,
        mut torch_order: bool,
        prefix: &str,
    ) -> Result<Vec<Box<dyn Op>>, Unsupported> {
        let mut ops: Vec<Box<dyn Op>> = Vec::new();
        let mut x = input;
        for (i, l) in specs.iter().enumerate() {
            let name = format!("{prefix}{}_{}", i + 1, kind(l));
            let y = crate::model::spec::output(l, x, self.classes).map_err(Unsupported)?;
            let len = x.len();
            // Channels-last for an image layer; torch's order for one that flattens.
            let image = match x {
                Shape::Image(c, h, w) => Some((c, h * w)),
                Shape::Vector(_) => None,
            };
            let mixed = image.filter(|&(c, hw)| c > 1 && hw > 1);
            let flattens = matches!(l, LayerSpec::Flatten | LayerSpec::Linear { .. });
            if let Some((c, hw)) = mixed {
                if flattens && !torch_order {
                    ops.push(Box::new(block::Transpose::to_torch(hw, c)));
                    torch_order = true;
                } else if !flattens && torch_order && !is_elementwise(l) {
                    ops.push(Box::new(block::Transpose::from_torch(c, hw)));
                    torch_order = false;
                }
            }
            let plain_order = mixed.is_none() || torch_order;
            let op: Box<dyn Op> = match l {
                LayerSpec::Linear { .. } => {
                    self.mappings.extend(plain(&name, &["weight", "bias"]));
                    Box::new(dense::Dense::new(len, y.len(), false))
                }
                LayerSpec::Conv2d {
                    kernel,
                    stride,
                    padding,
                    bias,
                    ..
                } => {
                    let (Shape::Image(cin, h, w), Shape::Image(cout, ..)) = (x, y) else {
                        return Err(Unsupported("conv2d on vectors".into()));
                    };
                    let g = conv::Geometry {
                        h,
                        w,
                        cin,
                        cout,
                        k: *kernel,
                        stride: *stride,
                        pad: crate::model::spec::padding(*kernel, *padding),
                    };
                    let conv = conv::Conv::new(g, *bias);
                    self.mappings.push(Mapping {
                        name: format!("{name}.weight"),
                        perm: Some(conv.torch_order()),
                    });
                    if *bias {
                        self.mappings.extend(plain(&name, &["bias"]));
                    }
                    Box::new(conv)
                }
                LayerSpec::Batchnorm => {
                    self.norms.push(name.clone());
                    self.mappings.extend(plain(&name, &["weight", "bias"]));
                    // Vectors: each feature a channel of a 1x1 image (BatchNorm1d).
                    let channels = image.map_or(len, |(c, _)| c);
                    Box::new(norm::BnRelu::plain(len, channels))
                }
                LayerSpec::Layernorm => {
                    // A weight and bias per value, stored channels-last on images.
                    let perm = match mixed {
                        Some((c, hw)) if !plain_order => Some(block::torch_order(hw, c)),
                        _ => None,
                    };
                    for p in ["weight", "bias"] {
                        self.mappings.push(Mapping {
                            name: format!("{name}.{p}"),
                            perm: perm.clone(),
                        });
                    }
                    Box::new(vector::LayerNorm::new(len))
                }
                LayerSpec::Relu => Box::new(vector::Act::new(vector::Kind::Relu, len)),
                LayerSpec::Gelu => Box::new(vector::Act::new(vector::Kind::Gelu, len)),
                LayerSpec::Tanh => Box::new(vector::Act::new(vector::Kind::Tanh, len)),
                LayerSpec::Sigmoid => Box::new(vector::Act::new(vector::Kind::Sigmoid, len)),
                LayerSpec::Dropout { .. } => {
                    let Some(&(p, seed)) = self.dropouts.get(&name) else {
                        return Err(Unsupported(format!("dropout {name} without its seed")));
                    };
                    match mixed {
                        Some((c, hw)) if !plain_order => {
                            Box::new(vector::Dropout::on_image(p, seed, hw, c))
                        }
                        _ => Box::new(vector::Dropout::new(p, seed, len)),
                    }
                }
                LayerSpec::Maxpool2d { kernel } | LayerSpec::Avgpool2d { kernel } => {
                    let Shape::Image(c, h, w) = x else {
                        return Err(Unsupported("pooling vectors".into()));
                    };
                    if *kernel >= 16 {
                        return Err(Unsupported(format!("{kernel}x{kernel} pools")));
                    }
                    let max = matches!(l, LayerSpec::Maxpool2d { .. });
                    Box::new(pool::Pool::new(h, w, c, *kernel, max))
                }
                // Rows are in torch's order here: flattening moves nothing.
                LayerSpec::Flatten => {
                    x = y;
                    continue;
                }
                LayerSpec::Residual { layers } => {
                    let inner = self.ops(layers, x, torch_order, &format!("{name}."))?;
                    Box::new(block::Residual::new(inner, len))
                }
            };
            ops.push(op);
            x = y;
        }
        Ok(ops)
    }
}

/// A layer that acts on each value alone (so on either order of an image).
fn is_elementwise(l: &LayerSpec) -> bool {
    matches!(
        l,
        LayerSpec::Relu | LayerSpec::Gelu | LayerSpec::Tanh | LayerSpec::Sigmoid
    )
}

fn plain(layer: &str, names: &[&str]) -> Vec<Mapping> {
    names
        .iter()
        .map(|n| Mapping {
            name: format!("{layer}.{n}"),
            perm: None,
        })
        .collect()
}

/// Runs `f` on the host data of a contiguous CPU tensor.
pub fn with_host<T: candle_core::WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the CPU engine needs CPU tensors");
    };
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU engine needs contiguous tensors");
    };
    let all: &[T] = cpu.as_slice()?;
    Ok(f(&all[a..b]))
}

#[cfg(test)]
mod tests;
