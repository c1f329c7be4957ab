//! The sandboxed rhai engine a policy runs in: the checked standard package built once
//! and shared (`safe.rs`), explicit limits (release and debug builds alike), and a
//! budget per call (operations, wall-clock time on the coarse clock, memory on the
//! allocation meter) checked at every script operation; no `eval`, strict variables,
//! and the native `lr` module. The limits are the table of the book's Limits page
//! (docs/src/reference/limits.md).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, LexError, Module, Shared, Token};

use super::{clock, safe};
use crate::meter;

use crate::limits::*;

/// What ended a call that ran out of its budget: the token of rhai's `ErrorTerminated`.
pub(crate) const OUT_OF_TIME: &str = "time";
pub(crate) const OUT_OF_MEMORY: &str = "memory";

fn standard() -> Shared<Module> {
    static STD: OnceLock<Shared<Module>> = OnceLock::new();
    STD.get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

fn checked() -> Shared<Module> {
    static CHECKED: OnceLock<Shared<Module>> = OnceLock::new();
    CHECKED.get_or_init(|| safe::overrides().into()).clone()
}

use super::sched::arg;
pub(crate) use super::sched::number;

/// The native `lr` module: schedule shapes shared by the standard library.
pub(crate) fn lr_module() -> Module {
    let mut m = Module::new();
    m.set_native_fn("cosine", |p: Dynamic, lo: Dynamic, hi: Dynamic| {
        let (p, lo, hi) = (
            arg(&p, "progress")?.clamp(0.0, 1.0),
            arg(&lo, "lo")?,
            arg(&hi, "hi")?,
        );
        Ok(lo + (hi - lo) * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0)
    });
    m.set_native_fn("linear", |p: Dynamic, start: Dynamic, end: Dynamic| {
        let (p, s, e) = (
            arg(&p, "progress")?.clamp(0.0, 1.0),
            arg(&start, "start")?,
            arg(&end, "end")?,
        );
        Ok(s + (e - s) * p)
    });
    m.set_native_fn(
        "polynomial",
        |p: Dynamic, start: Dynamic, end: Dynamic, power: Dynamic| {
            let (p, s, e, k) = (
                arg(&p, "progress")?.clamp(0.0, 1.0),
                arg(&start, "start")?,
                arg(&end, "end")?,
                arg(&power, "power")?,
            );
            Ok(e + (s - e) * (1.0 - p).powf(k))
        },
    );
    m.set_native_fn(
        "scale",
        |lr: Dynamic, old: Dynamic, new: Dynamic, rule: &str| {
            let (lr, old, new) = (
                arg(&lr, "lr")?,
                arg(&old, "old_batch")?,
                arg(&new, "new_batch")?,
            );
            if old <= 0.0 || new <= 0.0 {
                return Err(format!("batch sizes must be > 0, got {old} and {new}").into());
            }
            let rule = crate::Rescale::from_name(rule).map_err(|m| format!("rule {m}"))?;
            Ok(rule.lr(lr, old, new))
        },
    );
    m
}

/// The budget of the call in progress: its deadline on the coarse clock, and the
/// meter reading past which it has allocated too much.
#[derive(Clone)]
pub(crate) struct Budget(Arc<Limits>);

struct Limits {
    deadline_ms: AtomicU64,
    memory: AtomicI64,
    /// Tokens parsed, for the system-clock check while compiling.
    tokens: AtomicU64,
}

impl Budget {
    /// Starts the clock and the memory count of a call.
    pub(crate) fn start(&self) {
        let now = clock::arm();
        self.0
            .deadline_ms
            .store(now + TIME_BUDGET.as_millis() as u64, Ordering::Relaxed);
        // Without the metering allocator there is no reading to compare (the check
        // would read a thread-local at every operation for nothing).
        let limit = if meter::installed() {
            meter::net().saturating_add(MAX_MEMORY)
        } else {
            i64::MAX
        };
        self.0.memory.store(limit, Ordering::Relaxed);
    }

    /// The check at each script operation: `Some(token)` ends the call.
    #[inline]
    fn exceeded(&self, ops: u64) -> Option<&'static str> {
        let deadline = self.0.deadline_ms.load(Ordering::Relaxed);
        if clock::now_ms() >= deadline {
            return Some(OUT_OF_TIME);
        }
        let limit = self.0.memory.load(Ordering::Relaxed);
        if limit != i64::MAX && meter::net() > limit {
            return Some(OUT_OF_MEMORY);
        }
        // The system clock, should the ticker thread lag.
        if ops.is_multiple_of(1024) && clock::precise_ms() >= deadline {
            return Some(OUT_OF_TIME);
        }
        None
    }

    /// The check at each token parsed: compiling a policy or a module counts against
    /// the budget of the load or call that compiles it.
    #[inline]
    fn parse_overrun(&self) -> bool {
        let deadline = self.0.deadline_ms.load(Ordering::Relaxed);
        let n = self.0.tokens.fetch_add(1, Ordering::Relaxed);
        clock::now_ms() >= deadline || (n.is_multiple_of(1024) && clock::precise_ms() >= deadline)
    }
}

/// A fresh sandboxed engine and the budget its calls run under.
pub(crate) fn engine() -> (Engine, Budget) {
    let mut e = Engine::new_raw();
    e.register_global_module(standard());
    // Registered after the standard package: its functions win.
    e.register_global_module(checked());
    e.register_static_module("lr", lr_module().into());
    e.register_static_module("sched", super::sched::module().into());
    super::strict::register(&mut e);
    e.set_max_operations(MAX_OPERATIONS);
    e.set_max_call_levels(MAX_CALL_LEVELS);
    e.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH);
    e.set_max_string_size(MAX_STRING);
    e.set_max_array_size(MAX_ARRAY);
    e.set_max_map_size(MAX_MAP);
    e.set_max_modules(MAX_MODULES);
    e.set_strict_variables(true);
    e.disable_symbol("eval");
    let budget = Budget(Arc::new(Limits {
        deadline_ms: AtomicU64::new(u64::MAX),
        memory: AtomicI64::new(i64::MAX),
        tokens: AtomicU64::new(0),
    }));
    let b = budget.clone();
    e.on_progress(move |ops| b.exceeded(ops).map(Dynamic::from));
    let b = budget.clone();
    // A volatile API in rhai's terms (it may change); rhai is pinned by Cargo.lock.
    #[allow(deprecated)]
    e.on_parse_token(move |token, _, _| {
        if b.parse_overrun() {
            Token::LexError(Box::new(LexError::Runtime(format!(
                "compiling ran out of the time budget of {} s",
                TIME_BUDGET.as_secs_f64()
            ))))
        } else {
            token
        }
    });
    (e, budget)
}
