//! Building a [`Net`] for a model: the built-in MLP and CNN, and a model file's
//! layers one by one, recording where each parameter lives in the candle model.

use rudder_nn::model::spec::{LayerSpec, Shape, kind};
use rudder_nn::model::{Arch, Io, Model};

use crate::net::{Mapping, Net, Unsupported};
use crate::{Op, block, conv, dense, norm, pool, vector};

impl Net {
    /// Builds the engine twin of `model` (same architecture) and copies its weights.
    pub fn from_model(
        arch: &Arch,
        io: Io,
        model: &Model,
        threads: usize,
    ) -> Result<Net, Unsupported> {
        let mut mappings = Vec::new();
        let mut norms = Vec::new();
        let ops = match arch {
            Arch::Mlp { hidden } => mlp(hidden, io, &mut mappings),
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
                let ops = b.ops(&spec.layers, input, torch_order, "")?;
                if ops.is_empty() {
                    return Err(Unsupported("a model file without layers".into()));
                }
                ops
            }
            Arch::Cnn { channels } => cnn(channels, io, &mut mappings, &mut norms)?,
        };
        let mut net = Net::assemble(ops, mappings, norms, io, threads);
        net.import(model)
            .map_err(|e| Unsupported(format!("this model ({e})")))?;
        Ok(net)
    }
}

/// The built-in MLP: a dense layer with a fused ReLU per hidden width, then the head.
fn mlp(hidden: &[usize], io: Io, mappings: &mut Vec<Mapping>) -> Vec<Box<dyn Op>> {
    let mut ops: Vec<Box<dyn Op>> = Vec::new();
    let mut width = io.features;
    for (i, &h) in hidden.iter().enumerate() {
        ops.push(Box::new(dense::Dense::new(width, h, true)));
        mappings.extend(plain(&format!("fc{}", i + 1), &["weight", "bias"]));
        width = h;
    }
    ops.push(Box::new(dense::Dense::new(width, io.classes, false)));
    mappings.extend(plain("head", &["weight", "bias"]));
    ops
}

/// The built-in CNN: per block a 3x3 convolution and the fused batch norm, ReLU and
/// 2x2 max pool; then the head, whose weight reads channels-last features.
fn cnn(
    channels: &[usize],
    io: Io,
    mappings: &mut Vec<Mapping>,
    norms: &mut Vec<String>,
) -> Result<Vec<Box<dyn Op>>, Unsupported> {
    let Some((c0, mut h, mut w)) = io.image else {
        return Err(Unsupported("a CNN without image input".into()));
    };
    if c0 != 1 {
        return Err(Unsupported(format!("{c0}-channel images")));
    }
    let mut ops: Vec<Box<dyn Op>> = Vec::new();
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
    Ok(ops)
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
            let y =
                rudder_nn::model::spec::output(l, x, self.classes).map_err(|m| Unsupported(m.0))?;
            // Channels-last for an image layer; torch's order for one that flattens.
            let mixed = match x {
                Shape::Image(c, h, w) if c > 1 && h * w > 1 => Some((c, h * w)),
                _ => None,
            };
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
            let at = At {
                name: &name,
                x,
                y,
                // Rows already in torch's order (or no channels to mix).
                channels_last: mixed.filter(|_| !torch_order),
                torch_order,
            };
            // Rows are in torch's order at a flatten: it moves nothing.
            if let Some(op) = self.layer(l, &at)? {
                ops.push(op);
            }
            x = y;
        }
        Ok(ops)
    }

    /// The engine layer for `l` at `at`; `None` for one that needs none (flatten).
    fn layer(&mut self, l: &LayerSpec, at: &At) -> Result<Option<Box<dyn Op>>, Unsupported> {
        let (name, x, y) = (at.name, at.x, at.y);
        let len = x.len();
        Ok(Some(match l {
            LayerSpec::Linear { .. } => {
                self.mappings.extend(plain(name, &["weight", "bias"]));
                Box::new(dense::Dense::new(len, y.len(), false))
            }
            LayerSpec::Conv2d {
                kernel,
                stride,
                padding,
                bias,
                ..
            } => self.conv(name, x, y, (*kernel, *stride, *padding, *bias))?,
            LayerSpec::Batchnorm => {
                self.norms.push(name.to_string());
                self.mappings.extend(plain(name, &["weight", "bias"]));
                // Vectors: each feature a channel of a 1x1 image (BatchNorm1d).
                let channels = match x {
                    Shape::Image(c, ..) => c,
                    Shape::Vector(_) => len,
                };
                Box::new(norm::BnRelu::plain(len, channels))
            }
            LayerSpec::Layernorm => {
                // A weight and bias per value, stored channels-last on images.
                let perm = at.channels_last.map(|(c, hw)| block::torch_order(hw, c));
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
                let Some(&(p, seed)) = self.dropouts.get(name) else {
                    return Err(Unsupported(format!("dropout {name} without its seed")));
                };
                match at.channels_last {
                    Some((c, hw)) => Box::new(vector::Dropout::on_image(p, seed, hw, c)),
                    None => Box::new(vector::Dropout::new(p, seed, len)),
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
            LayerSpec::Flatten => return Ok(None),
            LayerSpec::Residual { layers } => {
                let inner = self.ops(layers, x, at.torch_order, &format!("{name}."))?;
                Box::new(block::Residual::new(inner, len))
            }
        }))
    }

    /// A convolution from `x` to `y`: (kernel, stride, padding, bias).
    fn conv(
        &mut self,
        name: &str,
        x: Shape,
        y: Shape,
        (k, stride, padding, bias): (usize, usize, Option<usize>, bool),
    ) -> Result<Box<dyn Op>, Unsupported> {
        let (Shape::Image(cin, h, w), Shape::Image(cout, ..)) = (x, y) else {
            return Err(Unsupported("conv2d on vectors".into()));
        };
        let g = conv::Geometry {
            h,
            w,
            cin,
            cout,
            k,
            stride,
            pad: rudder_nn::model::spec::padding(k, padding),
        };
        let conv = conv::Conv::new(g, bias);
        self.mappings.push(Mapping {
            name: format!("{name}.weight"),
            perm: Some(conv.torch_order()),
        });
        if bias {
            self.mappings.extend(plain(name, &["bias"]));
        }
        Ok(Box::new(conv))
    }
}

/// Where a layer of a model file is: its name, its input and output shapes, whether
/// its input is a several-channel image stored channels-last (channels, pixels), and
/// whether the buffer is in torch's order.
struct At<'a> {
    name: &'a str,
    x: Shape,
    y: Shape,
    channels_last: Option<(usize, usize)>,
    torch_order: bool,
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
