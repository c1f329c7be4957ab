//! The Rhai side of the runtime: a sandboxed host per policy, `ctx`/`this`/decision
//! conversion, the import resolver, and finding policies by name or path.

mod clock;
pub(crate) mod convert;
pub(crate) mod error;
pub(crate) mod find;
pub(crate) mod host;
pub(crate) mod lint;
pub(crate) mod policy;
mod resolver;
mod safe;
mod sched;
mod source;
pub(crate) mod state;
pub(crate) mod strict;
