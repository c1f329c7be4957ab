//! The sandboxed rhai engine a policy runs in: the standard package built once and
//! shared, explicit limits (release and debug builds alike), an operation and a
//! wall-clock budget per hook call, no `eval`, strict variables, and the native `lr`
//! module.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, EvalAltResult, Module, Shared};

/// Operations one hook call may run.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Wall-clock time one hook call may take.
pub const TIME_BUDGET: Duration = Duration::from_secs(1);

fn standard() -> Shared<Module> {
    static STD: OnceLock<Shared<Module>> = OnceLock::new();
    STD.get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// A number from a script: integer or float.
pub fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

fn arg(v: &Dynamic, name: &str) -> Result<f64, Box<EvalAltResult>> {
    number(v).ok_or_else(|| format!("{name} must be a number, got {}", v.type_name()).into())
}

/// The LR after a batch-size change from `old` to `new` by `rule`.
pub fn scale_lr(lr: f64, old: f64, new: f64, rule: &str) -> Result<f64, String> {
    match rule {
        "linear" => Ok(lr * new / old),
        "sqrt" => Ok(lr * (new / old).sqrt()),
        "none" => Ok(lr),
        other => Err(format!(
            "rule must be \"linear\", \"sqrt\" or \"none\", got {other:?}"
        )),
    }
}

/// The native `lr` module: schedule shapes shared by the standard library.
pub fn lr_module() -> Module {
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
            scale_lr(lr, old, new, rule).map_err(Into::into)
        },
    );
    m
}

/// The deadline of the hook call in progress, in nanoseconds after `base`.
#[derive(Clone)]
pub struct Budget {
    base: Instant,
    deadline: Arc<AtomicU64>,
}

impl Budget {
    /// Starts the clock of a call.
    pub fn start(&self) {
        let at = self.base.elapsed() + TIME_BUDGET;
        self.deadline.store(at.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A fresh sandboxed engine and the budget its hook calls run under.
pub fn engine() -> (Engine, Budget) {
    let mut e = Engine::new_raw();
    e.register_global_module(standard());
    e.register_static_module("lr", lr_module().into());
    e.set_max_operations(MAX_OPERATIONS);
    e.set_max_call_levels(48);
    e.set_max_expr_depths(64, 32);
    e.set_max_string_size(64 * 1024);
    e.set_max_array_size(100_000);
    e.set_max_map_size(10_000);
    e.set_max_modules(64);
    e.set_strict_variables(true);
    e.disable_symbol("eval");
    let budget = Budget {
        base: Instant::now(),
        deadline: Arc::new(AtomicU64::new(u64::MAX)),
    };
    let b = budget.clone();
    e.on_progress(move |ops| {
        if ops % 1024 == 0
            && b.base.elapsed().as_nanos() as u64 > b.deadline.load(Ordering::Relaxed)
        {
            Some(Dynamic::UNIT)
        } else {
            None
        }
    });
    (e, budget)
}
