//! rudder: a native trainer (candle on CPU, CUDA optional) whose training policies are
//! Rhai scripts that hot-reload while the run goes on.

pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod engine;
pub mod fault;
pub mod interrupt;
pub mod loss;
pub mod model;
pub mod optim;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod runlog;
pub mod script;
pub mod tensorboard;
pub mod train;
pub mod watch;
pub mod workflow;
