//! Training policies as Rhai scripts that hot-reload while a run goes on, for any
//! training loop: an LR schedule, an early stop, a batch-size change, a rollback,
//! edited in a text file while training continues.
//!
//! A policy defines hooks (`on_train_start`, `on_epoch_start`, `on_step`,
//! `on_epoch_end`, `on_train_end`, `on_reload`); each gets a read-only `ctx` and
//! returns a map of decisions (`lr`, `batch_size`, `stop`, `save`, `rollback`, ...).
//! This crate loads policies by name (the embedded standard library: `lr/cosine`,
//! `adapt/plateau`, `stop/early_stop`, ...) or path, runs them sandboxed, validates
//! and composes their decisions, watches their files and reloads an edit at the next
//! hook call. It knows no tensor library and no trainer: the loop calls a hook and
//! applies the [`Decision`] it gets back.
//!
//! ```
//! use rudder_policy::{Ctx, Param, Policies, Settings};
//!
//! let mut policies = Policies::builder()
//!     .policy("lr/onecycle")
//!     .param(Param::new("max_lr", 0.1))
//!     .build()?;
//! let mut settings = Settings::new(0.004, 32);
//! settings.epochs = 3;
//! let mut ctx = Ctx::new(settings, 3_200);
//! ctx.steps_per_epoch = 100;
//! let mut lrs = Vec::new();
//! for step in 0..300u64 {
//!     ctx.step = step;
//!     ctx.epoch = step as usize / 100;
//!     let reply = policies.on_step(&ctx);
//!     // Apply it: here, only the LR changes.
//!     ctx.settings = reply.decision.apply(ctx.settings, rudder_policy::Rescale::Linear);
//!     lrs.push(ctx.settings.lr);
//! }
//! // torch's OneCycleLR(max_lr=0.1, total_steps=300): peaks at step 89.
//! assert!((lrs[89] - 0.1).abs() < 1e-12);
//! # Ok::<(), rudder_policy::LoadError>(())
//! ```
//!
//! Memory per hook call is metered only where the program installs
//! [`meter::Metered`] as its global allocator (see its docs); the other limits
//! (operations, time, sizes) hold everywhere.

pub mod catalog;
pub mod checksum;
pub mod contain;
mod controller;
mod decision;
mod errors;
mod hooks;
mod params;
mod policies;
mod run_state;
mod script;

pub mod library;
pub mod limits;
pub mod meter;
pub mod plugin;
pub mod project;
pub mod simulate;
pub mod sweep;
pub mod testing;
pub mod watch;

pub use controller::{
    Controller, EventKind, HookError, HookErrorKind, Location, PolicyEvent, PolicyState, Reply,
};
pub use decision::{Decision, Invalid, Rescale, Save, Target, check_count, check_hyper};
pub use errors::{LoadError, LoadErrorKind};
pub use hooks::{Best, Ctx, EpochMetrics, Hook, METRIC_NAMES, Settings};
pub use params::Param;
pub use policies::{Builder, Messages, Policies, PolicyInfo};
pub use rudder_core::text;
pub use rudder_core::{ParamError, UnknownName};
pub use run_state::RunState;
pub use script::find::{EMBEDDED, SearchPath};
pub use watch::WatchMode;

/// This crate's version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
