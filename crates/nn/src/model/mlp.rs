//! The multi-layer perceptron: Linear-ReLU blocks and a linear head.

use candle_core::Result;

use super::layers::{Init, Linear, Relu};
use super::{Io, Layer, Model};

/// The MLP with `hidden` layer widths for `io`, initialised from `init`.
pub fn build(hidden: &[usize], io: Io, init: &mut Init) -> Result<Model> {
    let mut layers: Vec<(String, Box<dyn Layer>)> = Vec::new();
    let mut width = io.features;
    for (i, &h) in hidden.iter().enumerate() {
        layers.push((
            format!("fc{}", i + 1),
            Box::new(Linear::new(init, width, h)?),
        ));
        layers.push((format!("relu{}", i + 1), Box::new(Relu)));
        width = h;
    }
    layers.push((
        "head".into(),
        Box::new(Linear::new(init, width, io.classes)?),
    ));
    Ok(Model::new(layers))
}
