//! What can go wrong with a model before it trains: a model file that cannot be
//! read, layers that do not fit the data, a model too large, a layer candle refuses.

/// Why a model file's layers do not fit its input: names the layer (`layer 3
/// (conv2d)`, `layer 2.1` inside a residual block) and the shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Misfit(pub String);

/// A model that cannot be built. Each names the option at fault as the user wrote
/// it (`--model FILE`, `--channels`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model file cannot be read or parsed: `at` names it (and a line and
    /// column).
    #[error("{at}: {message}")]
    File {
        /// `--model FILE`, or `--model FILE:LINE:COLUMN`.
        at: String,
        /// Why.
        message: String,
    },
    /// The layers do not fit the data's shape or its classes.
    #[error("{at}: {misfit}")]
    Misfit {
        /// The option that chose the model.
        at: String,
        /// Which layer, and the shapes.
        misfit: Misfit,
    },
    /// More parameters or memory than rudder trains.
    #[error("{at}: {message}")]
    TooLarge {
        /// The option that chose the model (and the batch size).
        at: String,
        /// The size, and the limit.
        message: String,
    },
    /// A built-in model's option that does not fit the data (`--channels` on too
    /// small an image, the CNN on vectors).
    #[error("{0}")]
    Unfit(String),
    /// candle could not build a layer.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}
