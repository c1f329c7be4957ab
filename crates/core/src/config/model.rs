//! `--model` and `--device`: which model, and where it trains.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// `--model`: a built-in model, or a model file (`*.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// The built-in multi-layer perceptron (`--hidden`).
    Mlp,
    /// The built-in convolutional network (`--channels`).
    Cnn,
    /// A model file's layers.
    File(PathBuf),
}

impl std::str::FromStr for ModelKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<ModelKind, UnknownName> {
        match s {
            "mlp" => Ok(ModelKind::Mlp),
            "cnn" => Ok(ModelKind::Cnn),
            path if path.ends_with(".json") => Ok(ModelKind::File(PathBuf::from(path))),
            other => Err(UnknownName::new(
                "expected mlp, cnn or a model file FILE.json",
                other,
            )),
        }
    }
}

impl ModelKind {
    /// As the command line writes it.
    pub fn name(&self) -> String {
        match self {
            ModelKind::Mlp => "mlp".into(),
            ModelKind::Cnn => "cnn".into(),
            ModelKind::File(p) => p.display().to_string(),
        }
    }
}

impl Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `cpu`, `cuda` or `cuda:N`, as a device ordinal (`None` for the CPU).
pub fn parse_device(s: &str) -> Result<Option<usize>, UnknownName> {
    match s {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| UnknownName::new("expected cpu, cuda or cuda:N", s)),
    }
}
