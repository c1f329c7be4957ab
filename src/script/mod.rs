//! The Rhai policy runtime: a sandboxed host per policy, `ctx`/`this`/decision
//! conversion, the import resolver, and loading policies by name or path. Usable from
//! any training loop: [`PolicySet::load`], then [`crate::policy::Controller::call`] at
//! each hook, and [`PolicySet::reload_pending`].

mod clock;
mod convert;
mod error;
mod find;
mod host;
pub mod library;
pub mod meter;
pub mod plugin;
mod policy;
mod resolver;
mod safe;
mod set;
pub mod state;
pub mod testing;

pub use error::ScriptError;
pub use find::{EMBEDDED, Located, SearchPath, locate};
pub use host::{MAX_MEMORY, MAX_OPERATIONS, POLICY_STACK, TIME_BUDGET, scale_lr};
pub use policy::Policy;
pub use set::{LoadError, Param, PolicySet};
