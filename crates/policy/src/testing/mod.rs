//! Policy tests (the book's File formats page, docs/src/reference/file-formats.md):
//! JSON files of hook calls with a `ctx`, an optional starting `this`, and the
//! decisions (a subset) and `this` expected back. Numbers match to 1e-9 relative.

mod embedded;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    Controller, Ctx, EpochMetrics, EventKind, Hook, Messages, Param, Policies, SearchPath, Settings,
};

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The policy under test, by name or path.
    pub policy: String,
    /// Parameters given to it, as `--param` would.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The hook calls, run in order on one instance.
    #[serde(default)]
    pub cases: Vec<Case>,
    /// For a sweep policy: recorded curves replayed through it, and what it must do.
    #[serde(default)]
    pub sweep: Option<crate::sweep::replay::Replay>,
}

/// One hook call and what it must return.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The hook's script function (`on_step`).
    pub hook: String,
    /// The `ctx` fields it sets; the others take a default.
    #[serde(default)]
    pub ctx: Map<String, Value>,
    /// `this` before the call; by default the previous case's.
    #[serde(default)]
    pub this: Option<Value>,
    /// The decisions expected (a subset), and optionally `this` and `error`.
    pub expect: Map<String, Value>,
}

/// The outcome of a run of test files.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed (all of a file's cases when it does not load).
    pub failed: usize,
    /// One readable paragraph per failed case.
    pub failures: Vec<String>,
}

/// Relative closeness for numbers, equality otherwise; `want` may be a subset.
fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
        }
        // `null` expects the key to be absent (no such decision).
        (Value::Object(w), Value::Object(g)) => w.iter().all(|(k, v)| {
            if v.is_null() {
                g.get(k).is_none_or(Value::is_null)
            } else {
                g.get(k).is_some_and(|x| matches(v, x))
            }
        }),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        _ => want == got,
    }
}

fn count(ctx: &Map<String, Value>, key: &str, default: usize) -> usize {
    ctx.get(key)
        .and_then(Value::as_u64)
        .map_or(default, |v| v as usize)
}

/// The `ctx` a case describes; what it leaves out takes a default (lr 0.1, batch 64,
/// 10 epochs, 60,000 examples, one step per epoch).
fn case_ctx<'a>(c: &'a Map<String, Value>, history: &'a [Value]) -> Ctx<'a> {
    let num = |key: &str| c.get(key).and_then(Value::as_f64);
    let mut settings = Settings::new(num("lr").unwrap_or(0.1), count(c, "batch_size", 64));
    settings.accumulation = count(c, "accumulation", 1);
    settings.epochs = count(c, "epochs", 10);
    settings.momentum = num("momentum").unwrap_or(0.0);
    settings.weight_decay = num("weight_decay").unwrap_or(0.0);
    let mut ctx = Ctx::new(settings, count(c, "dataset_size", 60_000));
    ctx.epoch = count(c, "epoch", 0);
    ctx.step = count(c, "step", 0) as u64;
    ctx.steps_per_epoch = count(c, "steps_per_epoch", 1);
    ctx.base_lr = num("base_lr").unwrap_or(settings.lr);
    ctx.base_batch_size = count(c, "base_batch_size", settings.batch_size);
    ctx.optimizer = c.get("optimizer").and_then(Value::as_str).unwrap_or("sgd");
    ctx.metrics = EpochMetrics::from_json(c);
    ctx.history = history;
    if let Some(b) = c.get("best").and_then(Value::as_object) {
        let m = EpochMetrics::from_json(b);
        ctx.best.val_loss = m.val_loss;
        ctx.best.val_acc = m.val_acc;
        ctx.best.epoch = b.get("epoch").and_then(Value::as_u64).map(|e| e as usize);
    }
    ctx.resumed = c.get("resumed").and_then(Value::as_bool).unwrap_or(false);
    ctx
}

/// Runs one test file; `label` names it in failures.
pub fn run_file(file: &TestFile, label: &str, search: &SearchPath, out: &mut Outcome) {
    if let Some(replay) = &file.sweep {
        return run_replay(file, replay, label, search, out);
    }
    let params = file.params.iter().map(|(k, v)| Param::new(k, v.clone()));
    // One policy instance for the whole file: cases run in order, so `this` carries
    // from one to the next unless a case sets it.
    let built = Policies::builder()
        .policy(file.policy.as_str())
        .params(params)
        .search_path(search.clone())
        .messages(Messages::none())
        .build();
    let mut set = match built {
        Ok(s) => s,
        Err(e) => {
            out.failed += file.cases.len().max(1);
            out.failures
                .push(format!("FAIL {label}: cannot load {}: {e}", file.policy));
            return;
        }
    };
    for (i, case) in file.cases.iter().enumerate() {
        match run_case(&mut set, case) {
            Ok(()) => out.passed += 1,
            Err(why) => {
                out.failed += 1;
                out.failures
                    .push(format!("FAIL {label} case {i} ({}): {why}", case.hook));
            }
        }
    }
}

/// A sweep policy's test: the replay's outcome against `expect` (`stopped` exactly,
/// the others as subsets).
fn run_replay(
    file: &TestFile,
    replay: &crate::sweep::replay::Replay,
    label: &str,
    search: &SearchPath,
    out: &mut Outcome,
) {
    let params: Vec<Param> = file
        .params
        .iter()
        .map(|(k, v)| Param::new(k, v.clone()))
        .collect();
    let mut s = match crate::sweep::Scheduler::load(&file.policy, &params, search) {
        Ok(s) => s,
        Err(e) => {
            out.failed += 1;
            out.failures
                .push(format!("FAIL {label}: cannot load {}: {e}", file.policy));
            return;
        }
    };
    let got = crate::sweep::replay::run(&mut s, replay);
    let mut want = replay.expect.clone();
    want.entry("errors").or_insert(Value::Array(Vec::new()));
    let exact = want
        .get("stopped")
        .is_none_or(|w| w.as_object().map(Map::len) == got["stopped"].as_object().map(Map::len));
    if exact && matches(&Value::Object(want.clone()), &got) {
        out.passed += 1;
    } else {
        out.failed += 1;
        out.failures.push(format!(
            "FAIL {label} (replay): expected {}, got {got}",
            Value::Object(want)
        ));
    }
}

/// One case: the hook called on its `ctx` (and `this`), its reply held against
/// `expect`.
fn run_case(set: &mut Policies, case: &Case) -> Result<(), String> {
    let hook =
        Hook::from_function(&case.hook).ok_or_else(|| format!("unknown hook {:?}", case.hook))?;
    if let Some(this) = &case.this {
        set.set_this(0, this);
    }
    let c = &case.ctx;
    let history: Vec<Value> = c
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let reply = Controller::call(set, hook, &case_ctx(c, &history));
    let mut got = match serde_json::to_value(&reply.decision) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut want = case.expect.clone();
    // `"error": true`: the case expects the call to fail (a policy_error or an
    // invalid_decision); any other case fails on one.
    let expect_error = match want.remove("error") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => return Err(format!("expect.error must be true or false, got {other}")),
    };
    if let Some(w_this) = want.remove("this") {
        let this = set.this(0);
        if !matches(&w_this, &this) {
            return Err(format!("expected this {w_this}, got {this}"));
        }
    }
    if want.get("stop") == Some(&Value::Bool(false)) {
        got.entry("stop").or_insert(Value::Bool(false));
    }
    let errors: Vec<String> = reply
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PolicyError | EventKind::InvalidDecision))
        .map(|e| {
            format!(
                "{}: {}",
                e.kind.as_str(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    if matches(&Value::Object(want.clone()), &Value::Object(got.clone()))
        && errors.is_empty() != expect_error
    {
        return Ok(());
    }
    let extra = match (errors.is_empty(), expect_error) {
        (true, true) => " (expected an error, the call succeeded)".to_string(),
        (true, false) => String::new(),
        (false, _) => format!(" ({})", errors.join("; ")),
    };
    Err(format!(
        "ctx {}\n  expected {}\n  actual   {}{extra}",
        Value::Object(c.clone()),
        Value::Object(want),
        Value::Object(got)
    ))
}

/// Why `policy test` could not run its cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// A policy named without a test file.
    #[error("policy test {policy}: no test file for it in scripts/tests or plugins/*/tests")]
    NoTests {
        /// The policy, clipped.
        policy: String,
    },
    /// A test file that cannot be read or is not a test file.
    #[error("{at}: {message}")]
    File {
        /// The file (and line and column).
        at: String,
        /// What is wrong.
        message: String,
    },
}

/// `policy test [WHICH...]` under `root`: every test file, or those of the named
/// policies (by their `policy` key) and the `.json` files named; a standard-library
/// policy with no test file under `root` runs its embedded tests ([`run_std`]). An
/// error names a policy without tests or a file that is not a test file.
pub fn run(root: &Path, which: &[String], search: &SearchPath) -> Result<Outcome, TestError> {
    let all = discover(root);
    let mut files = Vec::new();
    let mut out = Outcome::default();
    for w in which {
        if w.ends_with(".json") {
            files.push(PathBuf::from(w));
            continue;
        }
        let before = files.len();
        for f in &all {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            if serde_json::from_str::<Value>(&text).is_ok_and(|v| v["policy"] == w.as_str()) {
                files.push(f.clone());
            }
        }
        if files.len() == before && run_embedded(Some(w), &mut out)? == 0 {
            return Err(TestError::NoTests {
                policy: crate::text::clip(w),
            });
        }
    }
    if which.is_empty() {
        files = all;
    }
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| TestError::File {
            at: f.display().to_string(),
            message: e.to_string(),
        })?;
        let file: TestFile = serde_json::from_str(&text).map_err(|e| TestError::File {
            at: crate::text::one_line(&format!("{}:{}:{}", f.display(), e.line(), e.column())),
            message: crate::text::one_line(&e.to_string()),
        })?;
        run_file(&file, &f.display().to_string(), search, &mut out);
    }
    Ok(out)
}

/// `policy test --std [NAME...]`: the standard library's own tests, compiled into
/// the binary, against the embedded policies (nothing on disk shadows them); those
/// of the named policies only, when names are given.
pub fn run_std(which: &[String]) -> Result<Outcome, TestError> {
    let mut out = Outcome::default();
    if which.is_empty() {
        run_embedded(None, &mut out)?;
    }
    for w in which {
        if run_embedded(Some(w), &mut out)? == 0 {
            return Err(TestError::NoTests {
                policy: crate::text::clip(w),
            });
        }
    }
    Ok(out)
}

/// Runs the embedded test files of `policy` (all of them for `None`) into `out`;
/// returns how many files ran.
fn run_embedded(policy: Option<&str>, out: &mut Outcome) -> Result<usize, TestError> {
    let search = SearchPath::default();
    let mut ran = 0;
    for (name, text) in embedded::EMBEDDED_TESTS {
        let at = format!("<embedded>/tests/{name}.json");
        let file: TestFile = serde_json::from_str(text).map_err(|e| TestError::File {
            at: at.clone(),
            message: crate::text::one_line(&e.to_string()),
        })?;
        if policy.is_some_and(|p| p != file.policy) {
            continue;
        }
        run_file(&file, &at, &search, out);
        ran += 1;
    }
    Ok(ran)
}

/// Test files: `scripts/tests/*.json` and `plugins/*/tests/*.json` under `root`.
pub fn discover(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("scripts/tests")];
    if let Ok(plugins) = std::fs::read_dir(root.join("plugins")) {
        dirs.extend(plugins.flatten().map(|p| p.path().join("tests")));
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}
