//! Models as a sequence of layers. A layer is one interface (forward, its parameters,
//! its buffers), so a later layer can bring its own backward kernel underneath.

pub mod cnn;
mod error;
pub mod file;
pub mod layers;
pub mod mlp;
pub mod spec;

pub use error::{Misfit, ModelError};

use candle_core::{Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One step of a model. The backward pass is candle's autograd through `forward`.
pub trait Layer: Send {
    /// Maps a batch to a batch; `train` selects batch statistics over running ones.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// Trainable parameters with their local names (`weight`, `bias`).
    fn params(&self) -> Vec<(String, &Var)> {
        Vec::new()
    }
    /// State that is not trained but must be checkpointed (running statistics).
    fn buffers(&self) -> Vec<(String, &Var)> {
        Vec::new()
    }
    /// The optimizer step (and micro-batch) the next training forward belongs to:
    /// dropout draws its mask from it, so a resumed run draws the same masks.
    fn set_step(&self, _step: u64) {}
    /// The dropout layers in this one (itself: the name `""`; a block's: their names
    /// within it), with their probability and mask seed (the engine draws the same
    /// masks).
    fn dropouts(&self) -> Vec<(String, (f64, u64))> {
        Vec::new()
    }
}

/// The dropout layers among `layers` and inside them, each named by its path
/// (`3_residual.2_dropout`), with its probability and mask seed.
pub(crate) fn dropouts_of(
    layers: &[(String, Box<dyn Layer>)],
) -> impl Iterator<Item = (String, (f64, u64))> + '_ {
    layers.iter().flat_map(|(n, l)| {
        l.dropouts()
            .into_iter()
            .map(move |(sub, d)| match sub.is_empty() {
                true => (n.clone(), d),
                false => (format!("{n}.{sub}"), d),
            })
    })
}

/// A model: named layers applied in order.
pub struct Model {
    layers: Vec<(String, Box<dyn Layer>)>,
}

impl Model {
    /// A model of `layers`, applied in order.
    pub fn new(layers: Vec<(String, Box<dyn Layer>)>) -> Model {
        Model { layers }
    }

    /// Logits for a batch.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (_, layer) in &self.layers {
            x = layer.forward(&x, train)?;
        }
        Ok(x)
    }

    /// Trainable parameters, `layer.name` each, in a stable order.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.named(|l| l.params())
    }

    /// Buffers (batch-norm running statistics), `layer.name` each.
    pub fn buffers(&self) -> Vec<(String, Var)> {
        self.named(|l| l.buffers())
    }

    fn named<'a>(
        &'a self,
        pick: impl Fn(&'a dyn Layer) -> Vec<(String, &'a Var)>,
    ) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|(lname, l)| {
                pick(l.as_ref())
                    .into_iter()
                    .map(move |(n, v)| (format!("{lname}.{n}"), v.clone()))
            })
            .collect()
    }

    /// The dropout layers' (probability, seed), by layer name (`3_residual.2_dropout`
    /// inside a block).
    pub fn dropouts(&self) -> std::collections::HashMap<String, (f64, u64)> {
        dropouts_of(&self.layers).collect()
    }

    /// Tells every layer the step of the next training forward (see
    /// [`Layer::set_step`]).
    pub fn set_step(&self, step: u64) {
        for (_, l) in &self.layers {
            l.set_step(step);
        }
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Which architecture to build, with its sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    /// The multi-layer perceptron.
    Mlp {
        /// The hidden layers' widths (`--hidden`).
        hidden: Vec<usize>,
    },
    /// The convolutional network.
    Cnn {
        /// The output channels of each block (`--channels`).
        channels: Vec<usize>,
    },
    /// A model file's layers (`--model FILE.json`), or the MLP with `--dropout`.
    File {
        /// The file's path, or a description of the MLP with dropout.
        name: String,
        /// The layers.
        spec: spec::Spec,
    },
}

/// What the model is built for: the example shape and the number of classes.
#[derive(Debug, Clone, Copy)]
pub struct Io {
    /// Values per example.
    pub features: usize,
    /// `(channels, height, width)` when the examples are images.
    pub image: Option<(usize, usize, usize)>,
    /// The output width: the classes, or for regression the targets.
    pub classes: usize,
}

/// The most parameters a model may have (the book's Limits page,
/// docs/src/reference/limits.md).
pub const MAX_PARAMS: u128 = 1 << 28;
/// The most memory a model's training may be estimated to need.
pub const MAX_BYTES: u128 = 16 << 30;

impl Arch {
    /// The architecture `cfg` names: a built-in one, or a model file's, read here
    /// (a file that spells out the built-in MLP or CNN is that model, so the CPU
    /// engine trains it). `--dropout` makes the MLP a model of its own.
    pub fn of(cfg: &rudder_core::TrainConfig) -> std::result::Result<Arch, ModelError> {
        use rudder_core::ModelKind;
        Ok(match &cfg.model {
            ModelKind::Mlp if cfg.dropout > 0.0 => Arch::File {
                name: format!("mlp {:?} dropout {}", cfg.hidden, cfg.dropout),
                spec: spec::Spec::mlp(&cfg.hidden, cfg.dropout),
            },
            ModelKind::Mlp => Arch::Mlp {
                hidden: cfg.hidden.clone(),
            },
            ModelKind::Cnn => Arch::Cnn {
                channels: cfg.channels.clone(),
            },
            ModelKind::File(path) => {
                let (spec, sha) = spec::Spec::read_fingerprinted(path)?;
                if cfg.model_sha256.as_ref().is_some_and(|s| *s != sha) {
                    let resume = cfg
                        .resume
                        .as_ref()
                        .map_or(String::new(), |d| format!("--resume {}: ", d.display()));
                    return Err(ModelError::File {
                        at: format!("{resume}--model {}", path.display()),
                        message: "not the model file this run was built from (its SHA-256 differs); a resumed run keeps its model".into(),
                    });
                }
                if let Some(hidden) = spec.as_mlp() {
                    Arch::Mlp { hidden }
                } else if let Some(channels) = spec.as_cnn() {
                    Arch::Cnn { channels }
                } else {
                    Arch::File {
                        name: path.display().to_string(),
                        spec,
                    }
                }
            }
        })
    }

    /// The real path and SHA-256 of the model file `cfg` names (`None` for a
    /// built-in model): what a new run records in its `config.json`.
    pub fn file_record(
        cfg: &rudder_core::TrainConfig,
    ) -> std::result::Result<Option<(std::path::PathBuf, String)>, ModelError> {
        let rudder_core::ModelKind::File(path) = &cfg.model else {
            return Ok(None);
        };
        let (_, sha) = spec::Spec::read_fingerprinted(path)?;
        let real = std::fs::canonicalize(path).map_err(|e| ModelError::File {
            at: format!("--model {}", path.display()),
            message: e.to_string(),
        })?;
        Ok(Some((real, sha)))
    }

    /// The flag that sets the architecture's widths.
    fn flag(&self) -> String {
        match self {
            Arch::Mlp { hidden } => format!("--hidden {}", join(hidden)),
            Arch::Cnn { channels } => format!("--channels {}", join(channels)),
            Arch::File { name, .. } => format!("--model {name}"),
        }
    }

    /// (parameters, floats of activations per example), computed without building.
    fn size(&self, io: Io) -> (u128, u128) {
        if let Arch::File { spec, .. } = self {
            return spec.size(io).unwrap_or((0, 0));
        }
        let (mut params, mut acts) = (0u128, 0u128);
        let linear = |i: u128, o: u128, params: &mut u128, acts: &mut u128| {
            *params = params.saturating_add(i.saturating_mul(o).saturating_add(o));
            *acts = acts.saturating_add(o);
        };
        match self {
            Arch::Mlp { hidden } => {
                let mut w = io.features as u128;
                for &h in hidden {
                    linear(w, h as u128, &mut params, &mut acts);
                    w = h as u128;
                }
                linear(w, io.classes as u128, &mut params, &mut acts);
            }
            Arch::Cnn { channels } => {
                let (mut c, mut h, mut w) = io
                    .image
                    .map_or((1, 1, 1), |(c, h, w)| (c as u128, h as u128, w as u128));
                for &o in channels {
                    let o = o as u128;
                    // 3x3 weights and bias, batch norm's weight and bias.
                    params = params.saturating_add((9 * c).saturating_mul(o) + 3 * o);
                    // convolution, norm and ReLU outputs, then the pooled one.
                    acts =
                        acts.saturating_add((3 * o).saturating_mul(h * w) + o * (h / 2) * (w / 2));
                    (c, h, w) = (o, (h / 2).max(1), (w / 2).max(1));
                }
                linear(c * h * w, io.classes as u128, &mut params, &mut acts);
            }
            Arch::File { .. } => {}
        }
        (params, acts)
    }

    /// Refuses, before anything is allocated, a model past [`MAX_PARAMS`] or whose
    /// training at `batch` would need more than [`MAX_BYTES`] (weights, gradients and
    /// two optimizer states; activations and their gradients).
    pub fn check_size(&self, io: Io, batch: usize) -> std::result::Result<(), ModelError> {
        if let Arch::File { name, spec } = self {
            spec.check(io).map_err(|misfit| ModelError::Misfit {
                at: format!("--model {name}"),
                misfit,
            })?;
        }
        let (params, acts) = self.size(io);
        if params > MAX_PARAMS {
            return Err(ModelError::TooLarge {
                at: self.flag(),
                message: format!(
                    "the model would have {params} parameters, more than the {MAX_PARAMS} (2^28) rudder trains"
                ),
            });
        }
        let bytes = params
            .saturating_mul(16)
            .saturating_add(acts.saturating_mul(batch as u128).saturating_mul(8));
        if bytes > MAX_BYTES {
            return Err(ModelError::TooLarge {
                at: format!("{} at --batch-size {batch}", self.flag()),
                message: format!(
                    "training would need about {} GiB, more than the {} GiB rudder allows",
                    bytes >> 30,
                    MAX_BYTES >> 30
                ),
            });
        }
        Ok(())
    }
}

fn join(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// Builds `arch` for `io` on `device`, initialised as PyTorch does, from `seed`.
pub fn build(
    arch: &Arch,
    io: Io,
    seed: u64,
    device: &candle_core::Device,
) -> std::result::Result<Model, ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ INIT_SALT);
    let init = &mut layers::Init {
        rng: &mut rng,
        device,
    };
    match arch {
        Arch::Mlp { hidden } => Ok(mlp::build(hidden, io, init)?),
        Arch::Cnn { channels } => cnn::build(channels, io, init),
        Arch::File { spec, .. } => file::build(spec, io, init, seed ^ DROPOUT_SALT),
    }
}

/// Mixed into the seed so initialisation and data order draw different streams.
const INIT_SALT: u64 = 0x1417;
/// And for dropout's masks.
const DROPOUT_SALT: u64 = 0xd209_0417;
