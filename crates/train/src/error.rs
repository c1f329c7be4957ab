//! Everything a training run can fail with, by cause: what it was given (options,
//! files, data, a model, a checkpoint, the run folder, a policy), or the run itself.

use rudder_core::ConfigError;
use rudder_nn::data::DataError;
use rudder_nn::model::ModelError;
use rudder_policy::LoadError;
use rudder_run::checkpoint::CheckpointError;
use rudder_run::lock::LockError;

use crate::TrainError;

/// A run that could not start or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad option or configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Data that cannot be read or does not fit the task.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A model that cannot be built for the data.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint to resume from that is damaged or does not fit.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run folder another process holds, or that a new run cannot take.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A policy that does not load, or a `--param` no policy takes.
    #[error("{}", crate::flagged(.0))]
    Policy(#[from] LoadError),
    /// A failure during the run.
    #[error(transparent)]
    Train(#[from] TrainError),
}

impl Error {
    /// Whether the fault is in what the run was given (options, files, data, model,
    /// checkpoint, run folder, policies), as opposed to one during the run.
    pub fn is_input(&self) -> bool {
        !matches!(self, Error::Train(_))
    }
}
