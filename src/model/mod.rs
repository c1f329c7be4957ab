//! Models as a sequence of layers. A layer is one interface (forward, its parameters,
//! its buffers), so a later layer can bring its own backward kernel underneath.

pub mod cnn;
pub mod layers;
pub mod mlp;

use candle_core::{Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One step of a model. The backward pass is candle's autograd through `forward`.
pub trait Layer: Send {
    /// Maps a batch to a batch; `train` selects batch statistics over running ones.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// Trainable parameters with their local names (`weight`, `bias`).
    fn params(&self) -> Vec<(&'static str, &Var)> {
        Vec::new()
    }
    /// State that is not trained but must be checkpointed (running statistics).
    fn buffers(&self) -> Vec<(&'static str, &Var)> {
        Vec::new()
    }
}

/// A model: named layers applied in order.
pub struct Model {
    layers: Vec<(String, Box<dyn Layer>)>,
}

impl Model {
    pub(crate) fn new(layers: Vec<(String, Box<dyn Layer>)>) -> Model {
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
        pick: impl Fn(&'a dyn Layer) -> Vec<(&'static str, &'a Var)>,
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

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Which architecture to build, with its sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    Mlp { hidden: Vec<usize> },
    Cnn { channels: Vec<usize> },
}

/// What the model is built for: the example shape and the number of classes.
#[derive(Debug, Clone, Copy)]
pub struct Io {
    pub features: usize,
    pub image: Option<(usize, usize, usize)>,
    pub classes: usize,
}

/// Builds `arch` for `io` on `device`, initialised as PyTorch does, from `seed`.
pub fn build(
    arch: &Arch,
    io: Io,
    seed: u64,
    device: &candle_core::Device,
) -> std::result::Result<Model, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ INIT_SALT);
    let init = &mut layers::Init {
        rng: &mut rng,
        device,
    };
    match arch {
        Arch::Mlp { hidden } => mlp::build(hidden, io, init).map_err(|e| e.to_string()),
        Arch::Cnn { channels } => cnn::build(channels, io, init),
    }
}

/// Mixed into the seed so initialisation and data order draw different streams.
const INIT_SALT: u64 = 0x1417;
