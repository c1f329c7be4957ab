//! The limits of the book's Limits page (docs/src/reference/limits.md), in one place:
//! what one hook call may do, what `this` may hold, what a decision may ask for.

use std::time::Duration;

/// Operations one call may run.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Wall-clock time one call may take.
pub const TIME_BUDGET: Duration = Duration::from_secs(1);
/// Memory one call may add (bytes allocated minus freed), where the binary meters it.
pub const MAX_MEMORY: i64 = 64 << 20;
/// Nested script function calls.
pub const MAX_CALL_LEVELS: usize = 48;
/// Nested expressions at a script's top level.
pub const MAX_EXPR_DEPTH: usize = 64;
/// Nested expressions inside a function.
pub const MAX_FN_EXPR_DEPTH: usize = 32;
/// Items of one array.
pub const MAX_ARRAY: usize = 100_000;
/// Entries of one map.
pub const MAX_MAP: usize = 10_000;
/// Modules one call may load.
pub const MAX_MODULES: usize = 64;
/// The stack a thread that calls policies should have (address space; only the pages
/// used become memory): rhai drops, compares and prints script data recursively, and
/// a call may build 100,000 nested arrays.
pub const POLICY_STACK: usize = 512 << 20;
/// The largest policy or module source read, in bytes.
pub const MAX_SOURCE: u64 = 1 << 20;

/// The longest string a script may build, in bytes.
pub const MAX_STRING: usize = 64 * 1024;
/// How deep `this` may nest: `this.a.b` is 2 deep.
pub const MAX_THIS_DEPTH: usize = 32;
/// The most `this` may take as compact JSON.
pub const MAX_THIS_BYTES: usize = 1 << 20;
pub use rudder_core::{MAX_ACCUMULATION, MAX_EPOCHS};
