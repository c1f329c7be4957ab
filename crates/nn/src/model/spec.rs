//! Model files (`--model FILE.json`; the book's File formats page,
//! docs/src/reference/file-formats.md): a sequential list of layers, each with its
//! options, shape-checked against the data before anything is built.
//!
//! ```json
//! [
//!   {"type": "conv2d", "out": 16, "kernel": 3},
//!   {"type": "batchnorm"}, {"type": "relu"}, {"type": "maxpool2d"},
//!   {"type": "flatten"},
//!   {"type": "dropout", "p": 0.25},
//!   {"type": "linear"}
//! ]
//! ```
//!
//! A `linear` without `out` is the head: its width is the number of classes (or
//! regression targets). The built-in `mlp` and `cnn` are such lists ([`Spec::mlp`],
//! [`Spec::cnn`]), and a file that spells one of them out trains exactly as it does.

use serde::{Deserialize, Serialize};

use super::Io;
use super::error::{Misfit, ModelError};

/// One layer of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// A fully connected layer (inputs flattened); `out` omitted: the head.
    Linear {
        /// The output features; omitted for the head.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<usize>,
    },
    /// A 2-D convolution with bias (as torch's `Conv2d`), kernel 1, 3 or 5.
    Conv2d {
        /// The output channels.
        out: usize,
        /// The kernel's side: 1, 3 or 5 (default 3).
        #[serde(default = "three")]
        kernel: usize,
        /// The step between windows (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Default: `kernel / 2` (the size is kept at stride 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        padding: Option<usize>,
        /// Whether the layer has a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Batch norm over the channels of images (`BatchNorm2d`) or the features of
    /// vectors (`BatchNorm1d`).
    Batchnorm,
    /// Layer norm over all of an example's values, with a weight and bias each.
    Layernorm,
    /// max(0, x).
    Relu,
    /// torch's `GELU()` (the erf form).
    Gelu,
    /// The hyperbolic tangent.
    Tanh,
    /// The logistic function, 1 / (1 + e^-x).
    Sigmoid,
    /// Zeroes each value with probability `p` in training, scaling the rest by
    /// 1 / (1 - p); the identity in evaluation.
    Dropout {
        /// The probability of zeroing a value, in [0, 1).
        p: f64,
    },
    /// Max over `kernel` x `kernel` windows, stride `kernel`.
    Maxpool2d {
        /// The window's side (default 2).
        #[serde(default = "two")]
        kernel: usize,
    },
    /// Mean over `kernel` x `kernel` windows, stride `kernel`.
    Avgpool2d {
        /// The window's side (default 2).
        #[serde(default = "two")]
        kernel: usize,
    },
    /// Images to vectors (`(c, h, w)` to `c * h * w`).
    Flatten,
    /// `x + block(x)`: the block must give back its input's shape.
    Residual {
        /// The block's layers.
        layers: Vec<LayerSpec>,
    },
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// A whole model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Spec {
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

/// An example's shape between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `(channels, height, width)`.
    Image(usize, usize, usize),
    /// A vector of this many values.
    Vector(usize),
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image(c, h, w) => write!(f, "{c}x{h}x{w}"),
            Shape::Vector(n) => write!(f, "{n}"),
        }
    }
}

impl Shape {
    /// Values per example (saturating: a shape [`Spec::check`] passed holds at most
    /// [`MAX_VALUES`]).
    pub fn len(self) -> usize {
        self.values().unwrap_or(usize::MAX)
    }

    /// Values per example, `None` past `usize`.
    fn values(self) -> Option<usize> {
        match self {
            Shape::Image(c, h, w) => c.checked_mul(h)?.checked_mul(w),
            Shape::Vector(n) => Some(n),
        }
    }

    /// Whether the shape holds no value.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The most layers a file may have, nested blocks included.
pub const MAX_LAYERS: usize = 1000;
/// The largest kernel, window, stride or padding a layer may have (2^16).
pub const MAX_WINDOW: usize = 1 << 16;
/// The most values an example may have between two layers (2^29, a data set's
/// limit): every width, channel count and image side is checked against it.
pub const MAX_VALUES: usize = 1 << 29;

impl Spec {
    /// Reads and checks nothing but the JSON: `FILE:LINE:COLUMN: message` on error.
    pub fn read(path: &std::path::Path) -> Result<Spec, ModelError> {
        Ok(Spec::read_fingerprinted(path)?.0)
    }

    /// [`Spec::read`], with the SHA-256 (hex) of the bytes it parsed: what a run's
    /// `config.json` records and a resume checks.
    pub fn read_fingerprinted(path: &std::path::Path) -> Result<(Spec, String), ModelError> {
        let fault = |m: String| ModelError::File {
            at: format!("--model {}", path.display()),
            message: m,
        };
        let limit = 1u64 << 20;
        let bytes = rudder_core::input::read(path, limit).map_err(|e| {
            fault(match e {
                rudder_core::input::ReadError::TooLarge(_) => {
                    format!("more than {} KiB", limit >> 10)
                }
                rudder_core::input::ReadError::Io(e)
                    if e.kind() == std::io::ErrorKind::NotFound =>
                {
                    "no such file (the built-in models are mlp and cnn)".into()
                }
                rudder_core::input::ReadError::Io(e) => e.to_string(),
            })
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let at = rudder_core::text::clip(&e.path().to_string());
            let inner = e.into_inner();
            let msg = rudder_core::text::clip_quoted(&inner.to_string());
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            ModelError::File {
                at: format!(
                    "--model {}:{}:{}",
                    path.display(),
                    inner.line(),
                    inner.column()
                ),
                message: format!("{msg} (at {at})"),
            }
        })?;
        de.end()
            .map_err(|e| fault(format!("{}:{}: text after the list", e.line(), e.column())))?;
        use sha2::Digest;
        let sha = sha2::Sha256::digest(&bytes);
        Ok((spec, sha.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The built-in MLP: `linear(h) relu` per hidden width, then the head.
    pub fn mlp(hidden: &[usize], dropout: f64) -> Spec {
        let mut layers = Vec::new();
        for &h in hidden {
            layers.push(LayerSpec::Linear { out: Some(h) });
            layers.push(LayerSpec::Relu);
            if dropout > 0.0 {
                layers.push(LayerSpec::Dropout { p: dropout });
            }
        }
        layers.push(LayerSpec::Linear { out: None });
        Spec { layers }
    }

    /// The built-in CNN: per channel count a 3x3 convolution without bias, batch
    /// norm, ReLU and a 2x2 max-pool; then the head.
    pub fn cnn(channels: &[usize]) -> Spec {
        let mut layers = Vec::new();
        for &c in channels {
            layers.push(LayerSpec::Conv2d {
                out: c,
                kernel: 3,
                stride: 1,
                padding: Some(1),
                bias: false,
            });
            layers.push(LayerSpec::Batchnorm);
            layers.push(LayerSpec::Relu);
            layers.push(LayerSpec::Maxpool2d { kernel: 2 });
        }
        layers.push(LayerSpec::Flatten);
        layers.push(LayerSpec::Linear { out: None });
        Spec { layers }
    }

    /// The hidden widths when this is the built-in MLP's pattern (so the CPU engine
    /// trains it), else `None`.
    pub fn as_mlp(&self) -> Option<Vec<usize>> {
        let (head, body) = self.layers.split_last()?;
        if *head != (LayerSpec::Linear { out: None }) || !body.len().is_multiple_of(2) {
            return None;
        }
        body.chunks(2)
            .map(|pair| match pair {
                [LayerSpec::Linear { out: Some(h) }, LayerSpec::Relu] => Some(*h),
                _ => None,
            })
            .collect()
    }

    /// The channel counts when this is the built-in CNN's pattern, else `None`.
    pub fn as_cnn(&self) -> Option<Vec<usize>> {
        let n = self.layers.len();
        if n < 2 || !(n - 2).is_multiple_of(4) {
            return None;
        }
        let channels: Vec<usize> = self.layers[..n - 2]
            .chunks(4)
            .map(|b| match b {
                [
                    LayerSpec::Conv2d {
                        out,
                        kernel: 3,
                        stride: 1,
                        padding,
                        bias: false,
                    },
                    LayerSpec::Batchnorm,
                    LayerSpec::Relu,
                    LayerSpec::Maxpool2d { kernel: 2 },
                ] if padding.unwrap_or(1) == 1 => Some(*out),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let tail = [LayerSpec::Flatten, LayerSpec::Linear { out: None }];
        (self.layers[n - 2..] == tail && !channels.is_empty()).then_some(channels)
    }

    /// Follows the example's shape through every layer: each layer's output
    /// shape, or an error naming the layer (`layer 3 (conv2d)`, `layer 2.1` inside
    /// a residual block) and the shapes. The last layer must give `io.classes`.
    pub fn check(&self, io: Io) -> Result<Vec<Shape>, Misfit> {
        let input = match io.image {
            Some((c, h, w)) => Shape::Image(c, h, w),
            None => Shape::Vector(io.features),
        };
        let mut count = 0;
        let shapes = walk(&self.layers, input, io.classes, "", &mut count)?;
        let last = shapes.last().copied().unwrap_or(input);
        if last != Shape::Vector(io.classes) {
            return Err(Misfit(format!(
                "the model gives {last} values per example; the data needs {} (end with {{\"type\": \"linear\"}})",
                io.classes
            )));
        }
        Ok(shapes)
    }

    /// (parameters, floats of activations per example), for the size check.
    pub fn size(&self, io: Io) -> Result<(u128, u128), Misfit> {
        let shapes = self.check(io)?;
        let input = match io.image {
            Some((c, h, w)) => Shape::Image(c, h, w),
            None => Shape::Vector(io.features),
        };
        let (mut params, mut acts) = (0u128, 0u128);
        count_size(&self.layers, input, io.classes, &mut params, &mut acts);
        let _ = shapes;
        Ok((params, acts))
    }
}

/// The layer's type as files write it.
pub fn kind(l: &LayerSpec) -> &'static str {
    match l {
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Batchnorm => "batchnorm",
        LayerSpec::Layernorm => "layernorm",
        LayerSpec::Relu => "relu",
        LayerSpec::Gelu => "gelu",
        LayerSpec::Tanh => "tanh",
        LayerSpec::Sigmoid => "sigmoid",
        LayerSpec::Dropout { .. } => "dropout",
        LayerSpec::Maxpool2d { .. } => "maxpool2d",
        LayerSpec::Avgpool2d { .. } => "avgpool2d",
        LayerSpec::Flatten => "flatten",
        LayerSpec::Residual { .. } => "residual",
    }
}

/// A convolution's padding: as given, else `kernel / 2` (the size kept at stride 1).
pub fn padding(kernel: usize, padding: Option<usize>) -> usize {
    padding.unwrap_or(kernel / 2)
}

/// `Err` naming `field` when `v` is past `max`.
fn at_most(field: &str, v: usize, max: usize, limit: &str) -> Result<usize, Misfit> {
    if v > max {
        return Err(Misfit(format!("{field} {v} is more than {max} ({limit})")));
    }
    Ok(v)
}

/// The output shape of `l` on `x`: every size bounded ([`MAX_WINDOW`],
/// [`MAX_VALUES`]) before any arithmetic, so nothing can wrap.
pub fn output(l: &LayerSpec, x: Shape, classes: usize) -> Result<Shape, Misfit> {
    let image = || match x {
        Shape::Image(c, h, w) => Ok((c, h, w)),
        Shape::Vector(n) => Err(Misfit(format!("needs an image, got {n} values"))),
    };
    let window = |field: &str, v: usize| at_most(field, v, MAX_WINDOW, "2^16");
    let width = |field: &str, v: usize| at_most(field, v, MAX_VALUES, "2^29");
    let y = match l {
        LayerSpec::Linear { out } => {
            let out = width("out", out.unwrap_or(classes))?;
            if out == 0 {
                return Err(Misfit("out must be at least 1".into()));
            }
            Shape::Vector(out)
        }
        LayerSpec::Conv2d {
            out,
            kernel,
            stride,
            padding,
            ..
        } => {
            let (_, h, w) = image()?;
            if ![1, 3, 5].contains(kernel) {
                return Err(Misfit(format!("kernel must be 1, 3 or 5, got {kernel}")));
            }
            let (out, stride) = (width("out", *out)?, window("stride", *stride)?);
            if out == 0 || stride == 0 {
                return Err(Misfit("out and stride must be at least 1".into()));
            }
            let p = window("padding", self::padding(*kernel, *padding))?;
            // h, w <= 2^29 and p <= 2^16: no sum here can wrap.
            let (hp, wp) = (h + 2 * p, w + 2 * p);
            if hp < *kernel || wp < *kernel {
                return Err(Misfit(format!(
                    "a {kernel}x{kernel} kernel does not fit {h}x{w} with padding {p}"
                )));
            }
            Shape::Image(out, (hp - kernel) / stride + 1, (wp - kernel) / stride + 1)
        }
        LayerSpec::Dropout { p } => {
            if !(0.0..1.0).contains(p) {
                return Err(Misfit(format!("p must be in [0, 1), got {p}")));
            }
            x
        }
        LayerSpec::Maxpool2d { kernel } | LayerSpec::Avgpool2d { kernel } => {
            let (c, h, w) = image()?;
            let kernel = &window("kernel", *kernel)?;
            if *kernel == 0 || h < *kernel || w < *kernel {
                return Err(Misfit(format!(
                    "a {kernel}x{kernel} window does not fit {h}x{w}"
                )));
            }
            Shape::Image(c, h / kernel, w / kernel)
        }
        LayerSpec::Flatten => Shape::Vector(x.len()),
        LayerSpec::Batchnorm
        | LayerSpec::Layernorm
        | LayerSpec::Relu
        | LayerSpec::Gelu
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid
        | LayerSpec::Residual { .. } => x,
    };
    match y.values() {
        Some(n) if n <= MAX_VALUES => Ok(y),
        _ => Err(Misfit(format!(
            "gives {y}, more than {MAX_VALUES} (2^29) values per example"
        ))),
    }
}

fn walk(
    layers: &[LayerSpec],
    input: Shape,
    classes: usize,
    prefix: &str,
    count: &mut usize,
) -> Result<Vec<Shape>, Misfit> {
    let mut x = input;
    let mut shapes = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        *count += 1;
        let at = format!("layer {prefix}{} ({})", i + 1, kind(l));
        if *count > MAX_LAYERS {
            return Err(Misfit(format!("{at}: more than {MAX_LAYERS} layers")));
        }
        let y = output(l, x, classes).map_err(|m| Misfit(format!("{at}: {m} (input {x})")))?;
        if let LayerSpec::Residual { layers } = l {
            let inner = walk(layers, x, classes, &format!("{prefix}{}.", i + 1), count)?;
            let out = inner.last().copied().unwrap_or(x);
            if out != x {
                return Err(Misfit(format!(
                    "{at}: the block gives {out} from {x}; a residual block must keep its input's shape"
                )));
            }
        }
        shapes.push(y);
        x = y;
    }
    Ok(shapes)
}

fn count_size(
    layers: &[LayerSpec],
    input: Shape,
    classes: usize,
    params: &mut u128,
    acts: &mut u128,
) {
    let mut x = input;
    for l in layers {
        let Ok(y) = output(l, x, classes) else {
            return;
        };
        let (i, o) = (x.len() as u128, y.len() as u128);
        *params = params.saturating_add(match l {
            LayerSpec::Linear { .. } => i.saturating_mul(o).saturating_add(o),
            LayerSpec::Conv2d { kernel, bias, .. } => {
                let (Shape::Image(ci, ..), Shape::Image(co, ..)) = (x, y) else {
                    return;
                };
                let (ci, co, k) = (ci as u128, co as u128, *kernel as u128);
                ci * co * k * k + if *bias { co } else { 0 }
            }
            LayerSpec::Batchnorm => match x {
                Shape::Image(c, ..) => 2 * c as u128,
                Shape::Vector(n) => 2 * n as u128,
            },
            LayerSpec::Layernorm => 2 * i,
            _ => 0,
        });
        if let LayerSpec::Residual { layers } = l {
            count_size(layers, x, classes, params, acts);
        }
        *acts = acts.saturating_add(o);
        x = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(image: Option<(usize, usize, usize)>, features: usize) -> Io {
        Io {
            features,
            image,
            classes: 10,
        }
    }

    #[test]
    fn the_built_in_models_are_files_and_are_recognised() {
        let mlp = Spec::mlp(&[256, 128], 0.0);
        assert_eq!(mlp.as_mlp(), Some(vec![256, 128]));
        assert_eq!(mlp.as_cnn(), None);
        let cnn = Spec::cnn(&[32, 64]);
        assert_eq!(cnn.as_cnn(), Some(vec![32, 64]));
        assert_eq!(cnn.as_mlp(), None);
        assert_eq!(
            Spec::mlp(&[8], 0.5).as_mlp(),
            None,
            "dropout is not the engine's"
        );
        let shapes = cnn.check(io(Some((1, 28, 28)), 784)).unwrap();
        assert_eq!(shapes[3], Shape::Image(32, 14, 14));
        assert_eq!(*shapes.last().unwrap(), Shape::Vector(10));
        let json = serde_json::to_string(&cnn).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), cnn);
    }

    #[test]
    fn shapes_are_checked_and_the_layer_named() {
        let spec: Spec = serde_json::from_str(
            r#"[{"type":"linear","out":8},{"type":"conv2d","out":4},{"type":"linear"}]"#,
        )
        .unwrap();
        assert_eq!(
            spec.check(io(None, 64)).unwrap_err().0,
            "layer 2 (conv2d): needs an image, got 8 values (input 8)"
        );
        let spec: Spec = serde_json::from_str(
            r#"[{"type":"flatten"},{"type":"residual","layers":[{"type":"linear","out":3}]},{"type":"linear"}]"#,
        )
        .unwrap();
        assert_eq!(
            spec.check(io(None, 64)).unwrap_err().0,
            "layer 2 (residual): the block gives 3 from 64; a residual block must keep its input's shape"
        );
        let spec: Spec = serde_json::from_str(r#"[{"type":"linear","out":5}]"#).unwrap();
        assert!(
            spec.check(io(None, 64))
                .unwrap_err()
                .0
                .starts_with("the model gives 5 values")
        );
        let bad = serde_json::from_str::<Spec>(r#"[{"type":"linear","width":5}]"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `width`")
        );
    }
}
