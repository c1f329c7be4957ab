//! The CPU engine: our own forward and backward passes for the MLP and the CNN, on
//! preallocated buffers, with gemm (AVX-512 where the CPU has it) for every product.
//! It mirrors a candle [`Model`] parameter for parameter (import and export), so the
//! autograd model stays the reference, the CUDA path and the checkpoint format.

pub mod conv;
pub mod dense;
mod gemm;
mod loss;
pub mod norm;
pub mod pool;
pub mod vector;

use candle_core::{Tensor, Var};

use crate::loss::Loss;
use crate::model::{Arch, Io, Model};

pub use gemm::calls as gemm_calls;
pub use loss::{argmax, loss_and_grad};

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
    /// The optimizer step of the next training forward (dropout's masks).
    fn set_step(&mut self, _step: u64) {}
}

/// Runs `f(first_example, chunk)` over the first `n` examples of `data` (`per`
/// elements each), split into `threads` contiguous runs of whole examples on rayon's
/// pool; on the calling thread alone when `threads` is 1. Each element is written by
/// exactly one run, so results do not depend on the split.
pub(crate) fn by_example<T: Send>(
    data: &mut [T],
    per: usize,
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let data = &mut data[..n * per];
    if threads <= 1 || n < 2 {
        return f(0, data);
    }
    use rayon::prelude::*;
    let each = n.div_ceil(threads);
    data.par_chunks_mut(each * per)
        .enumerate()
        .for_each(|(i, chunk)| f(i * each, chunk));
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
    use rayon::prelude::*;
    let each = n.div_ceil(threads);
    a.par_chunks_mut(each * pa)
        .zip(b.par_chunks_mut(each * pb))
        .enumerate()
        .for_each(|(i, (ca, cb))| f(i * each, ca, cb));
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
    ops: Vec<Box<dyn Op>>,
    mappings: Vec<Mapping>,
    /// Indices of the batch-norm layers (for running statistics), with their names.
    norms: Vec<(usize, String)>,
    input_len: usize,
    classes: usize,
    input: Vec<f32>,
    labels: Vec<u32>,
    acts: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    threads: usize,
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
                // Images are vectors to a first `flatten` or `linear` (rows are in
                // torch's (c, h, w) order already).
                if io.image.is_some()
                    && !matches!(
                        spec.layers.first(),
                        Some(
                            crate::model::spec::LayerSpec::Flatten
                                | crate::model::spec::LayerSpec::Linear { .. }
                        )
                    )
                {
                    return Err(Unsupported("a model file on images".into()));
                }
                let dropouts = model.dropouts();
                let mut width = io.features;
                for (i, l) in spec.layers.iter().enumerate() {
                    use crate::model::spec::LayerSpec as L;
                    let name = format!("{}_{}", i + 1, crate::model::spec::kind(l));
                    let op: Box<dyn Op> = match l {
                        L::Linear { out } => {
                            let out = out.unwrap_or(io.classes);
                            mappings.extend(plain(&name, &["weight", "bias"]));
                            let op = dense::Dense::new(width, out, false);
                            width = out;
                            Box::new(op)
                        }
                        L::Relu => Box::new(vector::Act::new(vector::Kind::Relu, width)),
                        L::Gelu => Box::new(vector::Act::new(vector::Kind::Gelu, width)),
                        L::Tanh => Box::new(vector::Act::new(vector::Kind::Tanh, width)),
                        L::Sigmoid => Box::new(vector::Act::new(vector::Kind::Sigmoid, width)),
                        L::Dropout { .. } => {
                            let Some(&(p, seed)) = dropouts.get(&name) else {
                                return Err(Unsupported(format!(
                                    "dropout {name} without its seed"
                                )));
                            };
                            Box::new(vector::Dropout::new(p, seed, width))
                        }
                        L::Layernorm => {
                            mappings.extend(plain(&name, &["weight", "bias"]));
                            Box::new(vector::LayerNorm::new(width))
                        }
                        // BatchNorm1d: each feature a channel of a 1x1 image.
                        L::Batchnorm => {
                            norms.push((ops.len(), name.clone()));
                            mappings.extend(plain(&name, &["weight", "bias"]));
                            Box::new(norm::BnRelu::plain(width, width))
                        }
                        // Rows are already (c, h, w)-ordered as torch flattens them.
                        L::Flatten => continue,
                        other => {
                            return Err(Unsupported(format!(
                                "{} in a model file",
                                crate::model::spec::kind(other)
                            )));
                        }
                    };
                    ops.push(op);
                }
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
                    let conv = conv::Conv3x3::new(h, w, c, out);
                    let perm = (0..out * 9 * c)
                        .map(|j| conv.torch_index(j / (9 * c), j % (9 * c)))
                        .collect();
                    mappings.push(Mapping {
                        name: format!("conv{b}.weight"),
                        perm: Some(perm),
                    });
                    ops.push(Box::new(conv));
                    norms.push((ops.len(), format!("bn{b}")));
                    ops.push(Box::new(norm::BnRelu::new(h * w * out, out)));
                    mappings.extend(plain(&format!("bn{b}"), &["weight", "bias"]));
                    ops.push(Box::new(pool::MaxPool2::new(h, w, out)));
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
        let n_ops = ops.len();
        let mut net = Net {
            ops,
            mappings,
            norms,
            input_len: io.features,
            classes: io.classes,
            input: Vec::new(),
            labels: Vec::new(),
            acts: vec![Vec::new(); n_ops],
            grads: vec![Vec::new(); n_ops],
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

    fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.ops.iter_mut().flat_map(|op| op.params()).flatten()
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
        for ((p, src), perm) in self.params_mut().zip(&sources).zip(&perms) {
            if src.len() != p.value.len() {
                candle_core::bail!("size {} where the engine has {}", src.len(), p.value.len());
            }
            from_candle_order(perm.as_deref(), src, &mut p.value);
        }
        for (i, name) in self.norms.clone() {
            let (rm, rv) = (
                get(&format!("{name}.running_mean"))?,
                get(&format!("{name}.running_var"))?,
            );
            let bn = self.norm_mut(i);
            bn.running_mean.copy_from_slice(&rm);
            bn.running_var.copy_from_slice(&rv);
        }
        Ok(())
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
        let values: Vec<Vec<f32>> = self.params_mut().map(|p| p.value.clone()).collect();
        for ((name, perm), value) in perms.iter().zip(values) {
            let var = &named[name];
            let out = to_candle_order(perm.as_deref(), &value);
            var.set(&Tensor::from_vec(out, var.shape(), var.device())?)?;
        }
        for (i, name) in self.norms.clone() {
            let bn = self.norm_mut(i);
            let (rm, rv) = (bn.running_mean.clone(), bn.running_var.clone());
            for (suffix, v) in [("running_mean", rm), ("running_var", rv)] {
                let var = &named[&format!("{name}.{suffix}")];
                var.set(&Tensor::from_vec(v, var.shape(), var.device())?)?;
            }
        }
        Ok(())
    }

    fn norm_mut(&mut self, i: usize) -> &mut norm::BnRelu {
        self.ops[i]
            .as_norm()
            .expect("`norms` records batch-norm layers only")
    }

    /// Copies the examples `rows` of `(x, y)` into the input buffers.
    pub fn gather(&mut self, x: &[f32], y: &[u32], rows: &[u32]) {
        let d = self.input_len;
        self.input.resize(rows.len() * d, 0.0);
        self.labels.clear();
        for (dst, &r) in self.input.chunks_exact_mut(d).zip(rows) {
            let r = r as usize;
            dst.copy_from_slice(&x[r * d..(r + 1) * d]);
            self.labels.push(y[r]);
        }
    }

    /// Copies `n` examples starting at `start`.
    pub fn gather_range(&mut self, x: &[f32], y: &[u32], start: usize, n: usize) {
        let d = self.input_len;
        self.input.clear();
        self.input.extend_from_slice(&x[start * d..(start + n) * d]);
        self.labels.clear();
        self.labels.extend_from_slice(&y[start..start + n]);
    }

    fn forward(&mut self, train: bool) {
        let n = self.labels.len();
        let Net {
            ops,
            acts,
            input,
            threads,
            ..
        } = self;
        for i in 0..ops.len() {
            let need = n * ops[i].out_len();
            if acts[i].len() < need {
                acts[i].resize(need, 0.0);
            }
            let (before, after) = acts.split_at_mut(i);
            let x: &[f32] = if i == 0 { input } else { &before[i - 1] };
            ops[i].forward(x, n, &mut after[0], train, *threads);
        }
    }

    /// Forward, loss and backward on the gathered batch; gradients are written, or
    /// added to when `acc`; `scale` multiplies them. Returns (mean loss, correct).
    pub fn train_batch(&mut self, loss: Loss, acc: bool, scale: f32) -> (f64, usize) {
        self.forward(true);
        let n = self.labels.len();
        let last = self.ops.len() - 1;
        if self.grads[last].len() < n * self.classes {
            self.grads[last].resize(n * self.classes, 0.0);
        }
        let out = loss_and_grad(
            loss,
            &self.acts[last][..n * self.classes],
            &self.labels,
            self.classes,
            &mut self.grads[last],
            scale,
        );
        let Net {
            ops,
            acts,
            grads,
            input,
            threads,
            ..
        } = self;
        for i in (0..ops.len()).rev() {
            let x: &[f32] = if i == 0 { input } else { &acts[i - 1] };
            let (gb, ga) = grads.split_at_mut(i);
            let dx = match gb.last_mut() {
                Some(g) => {
                    let need = n * ops[i - 1].out_len();
                    if g.len() < need {
                        g.resize(need, 0.0);
                    }
                    Some(&mut g[..])
                }
                None => None,
            };
            ops[i].backward(x, &acts[i], n, &mut ga[0], dx, acc, *threads);
        }
        out
    }

    /// Loss and correct count on the gathered batch, in evaluation mode.
    pub fn eval_batch(&mut self, loss: Loss) -> (f64, usize) {
        self.forward(false);
        let n = self.labels.len();
        let last = self.ops.len() - 1;
        let mut scratch = std::mem::take(&mut self.grads[last]);
        if scratch.len() < n * self.classes {
            scratch.resize(n * self.classes, 0.0);
        }
        let out = loss_and_grad(
            loss,
            &self.acts[last][..n * self.classes],
            &self.labels,
            self.classes,
            &mut scratch,
            1.0,
        );
        self.grads[last] = scratch;
        out
    }

    /// Tells the layers the step of the next training forward (dropout's masks).
    pub fn set_step(&mut self, step: u64) {
        for op in self.ops.iter_mut() {
            op.set_step(step);
        }
    }

    /// Calls `f(index, param)` for every parameter, in the candle model's order.
    pub fn visit(&mut self, f: &mut dyn FnMut(usize, &mut Param)) {
        let mut i = 0;
        for op in self.ops.iter_mut() {
            for p in op.params().into_iter().flatten() {
                f(i, p);
                i += 1;
            }
        }
    }

    /// The logits of the last forward pass (`n x classes`).
    pub fn logits(&self) -> &[f32] {
        let n = self.labels.len();
        &self.acts[self.ops.len() - 1][..n * self.classes]
    }
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
