//! The convolutional network: per entry of `--channels` a block of 3x3 convolution,
//! batch norm, ReLU and 2x2 max-pool, then a linear head.

use super::layers::{BatchNorm2d, Conv3x3, Init, Linear, MaxPool2, Relu};
use super::{Io, Layer, Model, ModelError};

/// Errors are messages for the user (a shape that cannot work) or candle's.
pub fn build(channels: &[usize], io: Io, init: &mut Init) -> Result<Model, ModelError> {
    let Some((mut c, mut h, mut w)) = io.image else {
        return Err(ModelError::Unfit(format!(
            "--model cnn needs images; this data has {} features, not a square number",
            io.features
        )));
    };
    let mut layers: Vec<(String, Box<dyn Layer>)> = Vec::new();
    for (i, &out) in channels.iter().enumerate() {
        if h < 2 || w < 2 {
            return Err(ModelError::Unfit(format!(
                "--channels: {} blocks pool a {}x{} image below 1x1",
                channels.len(),
                io.image.map_or(0, |i| i.1),
                io.image.map_or(0, |i| i.2)
            )));
        }
        let b = i + 1;
        layers.push((format!("conv{b}"), Box::new(Conv3x3::new(init, c, out)?)));
        layers.push((format!("bn{b}"), Box::new(BatchNorm2d::new(init, out)?)));
        layers.push((format!("relu{b}"), Box::new(Relu)));
        layers.push((format!("pool{b}"), Box::new(MaxPool2)));
        (c, h, w) = (out, h / 2, w / 2);
    }
    layers.push((
        "head".into(),
        Box::new(Linear::new(init, c * h * w, io.classes)?),
    ));
    Ok(Model::new(layers))
}
