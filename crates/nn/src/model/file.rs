//! Models built from a [`Spec`] (a model file): the layers of the book's File formats
//! page (docs/src/reference/file-formats.md) as candle ops, so candle's autograd gives
//! their backward pass on any device.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Result, Tensor, Var};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layers::{BatchNorm2d, Init, Linear, Relu};
use super::spec::{LayerSpec, Shape, Spec, kind, output};
use super::{Io, Layer, Model, ModelError};

/// Builds `spec` for `io` (checked first), drawing weights from `init` in layer
/// order and dropout masks from `seed`.
pub fn build(
    spec: &Spec,
    io: Io,
    init: &mut Init,
    seed: u64,
) -> std::result::Result<Model, ModelError> {
    spec.check(io).map_err(|misfit| ModelError::Misfit {
        at: "--model".into(),
        misfit,
    })?;
    let input = match io.image {
        Some((c, h, w)) => Shape::Image(c, h, w),
        None => Shape::Vector(io.features),
    };
    let layers = layers(&spec.layers, input, io.classes, init, seed, "")?;
    Ok(Model::new(layers))
}

type Named = Vec<(String, Box<dyn Layer>)>;

fn layers(
    specs: &[LayerSpec],
    input: Shape,
    classes: usize,
    init: &mut Init,
    seed: u64,
    prefix: &str,
) -> Result<Named> {
    let mut x = input;
    let mut out: Named = Vec::new();
    for (i, l) in specs.iter().enumerate() {
        let y = output(l, x, classes).map_err(candle_core::Error::msg)?;
        let name = format!("{prefix}{}_{}", i + 1, kind(l));
        let layer: Box<dyn Layer> = match l {
            LayerSpec::Linear { .. } => Box::new(Linear::new(init, x.len(), y.len())?),
            LayerSpec::Conv2d {
                kernel,
                stride,
                padding,
                bias,
                ..
            } => {
                let (Shape::Image(ci, ..), Shape::Image(co, ..)) = (x, y) else {
                    candle_core::bail!("conv2d needs images");
                };
                Box::new(Conv2d::new(
                    init,
                    ci,
                    co,
                    *kernel,
                    *stride,
                    super::spec::padding(*kernel, *padding),
                    *bias,
                )?)
            }
            LayerSpec::Batchnorm => Box::new(BatchNorm {
                inner: BatchNorm2d::new(
                    init,
                    match x {
                        Shape::Image(c, ..) => c,
                        Shape::Vector(n) => n,
                    },
                )?,
            }),
            LayerSpec::Layernorm => Box::new(LayerNorm {
                weight: init.constant(&[x.len()], 1.0)?,
                bias: init.constant(&[x.len()], 0.0)?,
            }),
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::Gelu => Box::new(Elementwise::Gelu),
            LayerSpec::Tanh => Box::new(Elementwise::Tanh),
            LayerSpec::Sigmoid => Box::new(Elementwise::Sigmoid),
            LayerSpec::Dropout { p } => Box::new(Dropout::new(
                *p,
                seed ^ (out.len() as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )),
            LayerSpec::Maxpool2d { kernel } => Box::new(Pool {
                kernel: *kernel,
                max: true,
            }),
            LayerSpec::Avgpool2d { kernel } => Box::new(Pool {
                kernel: *kernel,
                max: false,
            }),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Residual { layers: block } => Box::new(Residual {
                block: layers(block, x, classes, init, seed ^ (i as u64 + 1) << 32, "")?,
            }),
        };
        out.push((name, layer));
        x = y;
    }
    Ok(out)
}

/// torch's `Conv2d`: weights and bias uniform in +-1/sqrt(fan_in).
pub struct Conv2d {
    weight: Var,
    bias: Option<Var>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A `kernel` x `kernel` convolution of `inputs` to `outputs` channels, its weights
    /// (and bias if `bias`) drawn from `init`.
    pub fn new(
        init: &mut Init,
        inputs: usize,
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Conv2d> {
        let fan_in = inputs * kernel * kernel;
        Ok(Conv2d {
            weight: init.uniform(&[outputs, inputs, kernel, kernel], fan_in)?,
            bias: if bias {
                Some(init.uniform(&[outputs], fan_in)?)
            } else {
                None
            },
            stride,
            padding,
        })
    }
}

impl Layer for Conv2d {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
            None => Ok(y),
        }
    }

    fn params(&self) -> Vec<(String, &Var)> {
        let mut v = vec![("weight".to_string(), &self.weight)];
        if let Some(b) = &self.bias {
            v.push(("bias".into(), b));
        }
        v
    }
}

/// Batch norm of images (per channel) or of vectors (per feature, as
/// `BatchNorm1d`): vectors are normalised as 1x1 images.
pub struct BatchNorm {
    inner: BatchNorm2d,
}

impl Layer for BatchNorm {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() == 2 {
            let (n, f) = x.dims2()?;
            return self
                .inner
                .forward(&x.reshape((n, f, 1, 1))?, train)?
                .reshape((n, f));
        }
        self.inner.forward(x, train)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        self.inner.params()
    }

    fn buffers(&self) -> Vec<(String, &Var)> {
        self.inner.buffers()
    }
}

/// Layer norm over all of an example's values (eps 1e-5, biased variance, as torch).
pub struct LayerNorm {
    weight: Var,
    bias: Var,
}

impl Layer for LayerNorm {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let flat = x.flatten_from(1)?;
        let mean = flat.mean_keepdim(1)?;
        let centered = flat.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(1)?;
        let y = centered
            .broadcast_div(&(var + 1e-5)?.sqrt()?)?
            .broadcast_mul(&self.weight.unsqueeze(0)?)?
            .broadcast_add(&self.bias.unsqueeze(0)?)?;
        y.reshape(dims)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// Activations without parameters.
pub enum Elementwise {
    /// GELU, the exact (erf) form.
    Gelu,
    /// The hyperbolic tangent.
    Tanh,
    /// The logistic function, 1 / (1 + e^-x).
    Sigmoid,
}

impl Layer for Elementwise {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        match self {
            Elementwise::Gelu => x.gelu_erf(),
            Elementwise::Tanh => x.tanh(),
            // 1 / (1 + e^-x), through ops autograd knows.
            Elementwise::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
        }
    }
}

/// Dropout's mask for `len` values at `step`: each value kept (as 1 / (1 - p))
/// when a 32-bit draw of the stream of (`seed`, `step`) falls below (1 - p) x 2^32,
/// else 0. The candle layer and the engine's both use it, so they drop the same
/// values.
pub fn dropout_mask(seed: u64, step: u64, p: f64, len: usize, out: &mut Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let keep = 1.0 - p;
    let threshold = (keep * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    out.clear();
    out.extend((0..len).map(|_| {
        if u64::from(rng.next_u32()) < threshold {
            scale
        } else {
            0.0
        }
    }));
}

/// Inverted dropout: in training each value is kept with probability 1 - p and
/// scaled by 1 / (1 - p). The mask of a step is drawn from the run's seed and the
/// step ([`Layer::set_step`]), so a resumed run draws the same masks.
pub struct Dropout {
    p: f64,
    seed: u64,
    step: AtomicU64,
}

impl Dropout {
    /// Dropout of probability `p`, its masks drawn from `seed` and the step.
    pub fn new(p: f64, seed: u64) -> Dropout {
        Dropout {
            p,
            seed,
            step: AtomicU64::new(0),
        }
    }
}

impl Layer for Dropout {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let step = self.step.load(Ordering::Relaxed);
        let mut mask = Vec::new();
        dropout_mask(self.seed, step, self.p, x.elem_count(), &mut mask);
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }

    fn set_step(&self, step: u64) {
        self.step.store(step, Ordering::Relaxed);
    }

    fn dropouts(&self) -> Vec<(String, (f64, u64))> {
        vec![(String::new(), (self.p, self.seed))]
    }
}

/// Max or mean over `kernel` x `kernel` windows, stride `kernel` (a remainder of
/// rows or columns is dropped, as torch does). The max's gradient goes to the first
/// maximum of each window ([`super::layers::max_pool`]).
pub struct Pool {
    kernel: usize,
    max: bool,
}

impl Layer for Pool {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let k = self.kernel;
        if self.max {
            return super::layers::max_pool(x, k);
        }
        let (n, c, h, w) = x.dims4()?;
        let (oh, ow) = (h / k, w / k);
        let x = if h % k != 0 || w % k != 0 {
            x.narrow(2, 0, k * oh)?.narrow(3, 0, k * ow)?
        } else {
            x.clone()
        };
        x.reshape((n, c, oh, k, ow, k))?.mean(5)?.mean(3)
    }
}

/// `(n, ...)` to `(n, features)`.
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        x.flatten_from(1)
    }
}

/// `x + block(x)`.
pub struct Residual {
    block: Named,
}

impl Layer for Residual {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for (_, l) in &self.block {
            y = l.forward(&y, train)?;
        }
        x + y
    }

    fn params(&self) -> Vec<(String, &Var)> {
        self.block
            .iter()
            .flat_map(|(n, l)| {
                l.params()
                    .into_iter()
                    .map(move |(p, v)| (format!("{n}.{p}"), v))
            })
            .collect()
    }

    fn buffers(&self) -> Vec<(String, &Var)> {
        self.block
            .iter()
            .flat_map(|(n, l)| {
                l.buffers()
                    .into_iter()
                    .map(move |(p, v)| (format!("{n}.{p}"), v))
            })
            .collect()
    }

    fn set_step(&self, step: u64) {
        for (_, l) in &self.block {
            l.set_step(step);
        }
    }

    fn dropouts(&self) -> Vec<(String, (f64, u64))> {
        super::dropouts_of(&self.block).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::Rng;

    /// f(x) = sum(model(x) * r) for a fixed r; autograd's gradient of f against
    /// central differences, for the input and every parameter.
    fn check(layers: &str, image: Option<(usize, usize, usize)>, features: usize, classes: usize) {
        let spec: Spec = serde_json::from_str(layers).unwrap();
        let io = Io {
            features,
            image,
            classes,
        };
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let init = &mut Init {
            rng: &mut rng,
            device: &dev,
        };
        let model = build(&spec, io, init, 11).unwrap();
        model.set_step(3);
        let n = 3;
        let mut shape = vec![n];
        match image {
            Some((c, h, w)) => shape.extend([c, h, w]),
            None => shape.push(features),
        }
        let count: usize = shape.iter().product();
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<f32> = (0..count).map(|_| r.random_range(-1.0..1.0)).collect();
        let x = Var::from_tensor(&Tensor::from_vec(xs, shape.as_slice(), &dev).unwrap()).unwrap();
        let weights: Vec<f32> = (0..n * classes)
            .map(|_| r.random_range(-1.0..1.0))
            .collect();
        let weights = Tensor::from_vec(weights, (n, classes), &dev).unwrap();
        let f = |m: &Model, x: &Tensor| -> f64 {
            m.forward(x, true)
                .unwrap()
                .mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let loss = model
            .forward(x.as_tensor(), true)
            .unwrap()
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut vars: Vec<(String, Var)> = vec![("input".into(), x.clone())];
        vars.extend(model.params());
        let eps = 2e-3f32;
        for (name, v) in vars {
            let g: Vec<f32> = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{layers}: no gradient for {name}"))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            // Up to 24 coordinates of each.
            for i in (0..base.len()).step_by((base.len() / 24).max(1)) {
                let at = |d: f32| {
                    let mut p = base.clone();
                    p[i] += d;
                    v.set(&Tensor::from_vec(p, v.shape(), &dev).unwrap())
                        .unwrap();
                    let input = if name == "input" {
                        v.as_tensor().clone()
                    } else {
                        x.as_tensor().clone()
                    };
                    f(&model, &input)
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                v.set(&Tensor::from_vec(base.clone(), v.shape(), &dev).unwrap())
                    .unwrap();
                let diff = (numeric - g[i] as f64).abs();
                assert!(
                    diff <= 2e-2 * numeric.abs().max(1.0),
                    "{layers}: d/d{name}[{i}] autograd {} finite differences {numeric}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn each_layers_gradients_match_finite_differences() {
        let img = Some((2, 6, 6));
        check(r#"[{"type":"flatten"},{"type":"linear"}]"#, img, 72, 4);
        check(
            r#"[{"type":"conv2d","out":3,"kernel":3,"stride":2},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"conv2d","out":3,"kernel":5},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"conv2d","out":3,"kernel":1,"bias":false},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"batchnorm"},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"linear","out":5},{"type":"batchnorm"},{"type":"linear"}]"#,
            None,
            6,
            3,
        );
        check(
            r#"[{"type":"layernorm"},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"linear","out":5},{"type":"gelu"},{"type":"linear"}]"#,
            None,
            6,
            3,
        );
        check(
            r#"[{"type":"linear","out":5},{"type":"tanh"},{"type":"linear"}]"#,
            None,
            6,
            3,
        );
        check(
            r#"[{"type":"linear","out":5},{"type":"sigmoid"},{"type":"linear"}]"#,
            None,
            6,
            3,
        );
        check(
            r#"[{"type":"avgpool2d","kernel":3},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
        check(
            r#"[{"type":"linear","out":6},{"type":"dropout","p":0.5},{"type":"linear"}]"#,
            None,
            6,
            3,
        );
        check(
            r#"[{"type":"residual","layers":[{"type":"conv2d","out":2},{"type":"tanh"}]},{"type":"flatten"},{"type":"linear"}]"#,
            img,
            72,
            4,
        );
    }

    fn values(t: candle_core::Result<Tensor>) -> Vec<f32> {
        t.unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn dropout_keeps_one_minus_p_scaled_in_training_and_nothing_in_evaluation() {
        let d = Dropout::new(0.25, 5);
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
        d.set_step(9);
        let y: Vec<f32> = values(d.forward(&x, true));
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        // The same step draws the same mask; another step another.
        let again: Vec<f32> = values(d.forward(&x, true));
        assert_eq!(y, again);
        d.set_step(10);
        let other: Vec<f32> = values(d.forward(&x, true));
        assert_ne!(y, other);
        let eval: Vec<f32> = values(d.forward(&x, false));
        assert!(eval.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn gelu_layernorm_and_pools_match_torch() {
        // torch: F.gelu(torch.tensor([-1.5, -0.2, 0.0, 0.7, 2.0]))
        //   -> [-0.10021086, -0.08414806, 0.0, 0.53062546, 1.95449972]
        let x = Tensor::new(&[[-1.5f32, -0.2, 0.0, 0.7, 2.0]], &Device::Cpu).unwrap();
        let y: Vec<f32> = values(Elementwise::Gelu.forward(&x, false));
        for (a, b) in y
            .iter()
            .zip([-0.100_210_86, -0.084_148_06, 0.0, 0.530_625_46, 1.954_499_7])
        {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // torch: F.layer_norm(x, (5,)) -> [-1.48190141, -0.34868261, -0.17434128, 0.43585342, 1.56907213]
        let ln = LayerNorm {
            weight: Var::from_tensor(
                &Tensor::ones(5, candle_core::DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap(),
            bias: Var::from_tensor(
                &Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap(),
        };
        let y: Vec<f32> = values(ln.forward(&x, false));
        for (a, b) in y.iter().zip([
            -1.481_901_4,
            -0.348_682_6,
            -0.174_341_28,
            0.435_853_4,
            1.569_072_1,
        ]) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
        // torch: F.avg_pool2d / F.max_pool2d(arange(25.).view(1,1,5,5), 2)
        //   -> [[3, 5], [13, 15]] and [[6, 8], [16, 18]]
        let img = Tensor::arange(0f32, 25.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 5, 5))
            .unwrap();
        let avg: Vec<f32> = values(
            Pool {
                kernel: 2,
                max: false,
            }
            .forward(&img, false),
        );
        assert_eq!(avg, [3.0, 5.0, 13.0, 15.0]);
        let max: Vec<f32> = values(
            Pool {
                kernel: 2,
                max: true,
            }
            .forward(&img, false),
        );
        assert_eq!(max, [6.0, 8.0, 16.0, 18.0]);
    }
}
