//! rudder: a native trainer (candle on CPU, CUDA optional) whose training policies are
//! Rhai scripts that hot-reload while the run goes on.
//!
//! As a library: train from Rust with [`pipeline::train_with`] (a [`config::TrainConfig`]
//! and any [`rudder_policy::Controller`], such as a [`rudder_policy::Policies`]), train
//! your own candle model with rudder's loop through [`fit::fit`], read
//! data with [`data`], models and optimizers in [`model`] and [`optim`], checkpoints in
//! [`checkpoint`], reports in [`report`]. The policy runtime is its own crate,
//! `rudder-policy`, re-exported as [`policy`]. The command line (`cli`, the
//! `policy`, `sweep`, `lr-find`, `rescale` and `report` commands) is the binary's.

pub use rudder_policy as policy;

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dist;
pub mod engine;
mod fault;
pub mod fit;
pub use fit::fit;
pub mod interrupt;
pub mod loss;
pub mod model;
pub mod optim;
pub mod pipeline;
pub mod report;
pub mod runlog;
pub mod tensorboard;
pub mod train;
