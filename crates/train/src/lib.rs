//! rudder's trainer as a library: train a model steered by hot-reloading Rhai
//! policies, with checkpoints, `--resume`, metrics, events, reports and many
//! processes, as `rudder train` does.
//!
//! - [`train_with`]: a run from a [`TrainConfig`] (resolve one from options with
//!   [`resolve`]) and any [`Controller`], such as a [`Policies`];
//! - [`fit`]: your own candle model ([`Trainable`]) under the same loop;
//! - [`trainer`]: the loop itself and the [`Learner`] seam (candle's autograd, or
//!   the CPU engine);
//! - [`dist`]: many processes (MPI with feature `mpi`, NCCL with `nccl`).
//!
//! The layers below are re-exported: [`core`] (the vocabulary and configuration),
//! [`policy`] (the policy runtime), [`nn`] (models, losses, optimizers, data),
//! [`engine`] (the CPU kernels) and [`run`] (the run folder).
//!
//! [`TrainConfig`]: rudder_core::TrainConfig
//! [`Controller`]: rudder_policy::Controller
//! [`Policies`]: rudder_policy::Policies
//! [`Learner`]: trainer::Learner

pub use rudder_core as core;
pub use rudder_engine as engine;
pub use rudder_nn as nn;
pub use rudder_policy as policy;
pub use rudder_run as run;

pub mod dist;
mod error;
pub mod fit;
mod launch;
mod setup;
pub mod trainer;

pub use error::Error;
pub use fit::{Trainable, fit};
pub use launch::{train_learner, train_on};
pub use rudder_core::config::resolve;
pub use setup::{
    build_learner, device, flagged, load_data, load_policies, parse_params, train_with,
    with_threads,
};
pub use trainer::{Summary, TrainError, Trainer};
