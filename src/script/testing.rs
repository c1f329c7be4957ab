//! Policy tests (spec section 7): JSON files of hook calls with a `ctx`, an optional
//! starting `this`, and the decisions (a subset) and `this` expected back. Numbers
//! match to 1e-9 relative.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::find::SearchPath;
use super::set::{Param, PolicySet};
use crate::policy::{Best, Controller, Ctx, EpochMetrics, Hook, Rescale, Settings};

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    pub policy: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    pub cases: Vec<Case>,
}

/// One hook call and what it must return.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub hook: String,
    #[serde(default)]
    pub ctx: Map<String, Value>,
    #[serde(default)]
    pub this: Option<Value>,
    pub expect: Map<String, Value>,
}

/// The outcome of a run of test files.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
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

fn hook_named(name: &str) -> Option<Hook> {
    Hook::ALL.into_iter().find(|h| h.function() == name)
}

fn num(ctx: &Map<String, Value>, key: &str) -> Option<f64> {
    ctx.get(key).and_then(Value::as_f64)
}

fn count(ctx: &Map<String, Value>, key: &str, default: usize) -> usize {
    ctx.get(key)
        .and_then(Value::as_u64)
        .map_or(default, |v| v as usize)
}

/// Metrics as `Some(x)`, with `null` read as NaN (as `policy replay` reads it).
fn metric(ctx: &Map<String, Value>, key: &str) -> Option<f64> {
    match ctx.get(key) {
        Some(Value::Null) => Some(f64::NAN),
        Some(v) => v.as_f64(),
        None => None,
    }
}

/// Runs one test file; `label` names it in failures.
pub fn run_file(file: &TestFile, label: &str, search: &SearchPath, out: &mut Outcome) {
    let params: Vec<Param> = file
        .params
        .iter()
        .map(|(k, v)| Param {
            policy: None,
            key: k.clone(),
            value: v.clone(),
            bare: false,
        })
        .collect();
    // One policy instance for the whole file: cases run in order, so `this` carries
    // from one to the next unless a case sets it.
    let mut set = match PolicySet::load(
        std::slice::from_ref(&file.policy),
        &params,
        search,
        Rescale::Linear,
    ) {
        Ok(s) => s,
        Err(e) => {
            out.failed += file.cases.len().max(1);
            out.failures
                .push(format!("FAIL {label}: cannot load {}: {e}", file.policy));
            return;
        }
    };
    set.echo_errors = false;
    for (i, case) in file.cases.iter().enumerate() {
        let fail = |out: &mut Outcome, why: String| {
            out.failed += 1;
            out.failures
                .push(format!("FAIL {label} case {i} ({}): {why}", case.hook));
        };
        let Some(hook) = hook_named(&case.hook) else {
            fail(out, format!("unknown hook {:?}", case.hook));
            continue;
        };
        if let Some(this) = &case.this {
            set.set_this(0, this);
        }
        let c = &case.ctx;
        let lr = num(c, "lr").unwrap_or(0.1);
        let batch = count(c, "batch_size", 64);
        let history: Vec<Value> = c
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let best = c.get("best").and_then(Value::as_object);
        let ctx = Ctx {
            epoch: count(c, "epoch", 0),
            step: count(c, "step", 0) as u64,
            steps_per_epoch: count(c, "steps_per_epoch", 1),
            settings: Settings {
                lr,
                batch_size: batch,
                accumulation: count(c, "accumulation", 1),
                epochs: count(c, "epochs", 10),
                momentum: num(c, "momentum").unwrap_or(0.0),
                weight_decay: num(c, "weight_decay").unwrap_or(0.0),
            },
            base_lr: num(c, "base_lr").unwrap_or(lr),
            base_batch_size: count(c, "base_batch_size", batch),
            optimizer: if c.get("optimizer").and_then(Value::as_str) == Some("adamw") {
                "adamw"
            } else {
                "sgd"
            },
            dataset_size: count(c, "dataset_size", 60_000),
            metrics: EpochMetrics {
                train_loss: metric(c, "train_loss"),
                train_acc: metric(c, "train_acc"),
                val_loss: metric(c, "val_loss"),
                val_acc: metric(c, "val_acc"),
            },
            history: &history,
            best: Best {
                val_loss: best.and_then(|b| metric(b, "val_loss")),
                val_acc: best.and_then(|b| metric(b, "val_acc")),
                epoch: best
                    .and_then(|b| b.get("epoch"))
                    .and_then(Value::as_u64)
                    .map(|e| e as usize),
            },
            resumed: c.get("resumed").and_then(Value::as_bool).unwrap_or(false),
        };
        let reply = set.call(hook, &ctx);
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
            Some(other) => {
                fail(
                    out,
                    format!("expect.error must be true or false, got {other}"),
                );
                continue;
            }
        };
        if let Some(w_this) = want.remove("this") {
            let this = set.this_json(0);
            if !matches(&w_this, &this) {
                fail(out, format!("expected this {w_this}, got {this}"));
                continue;
            }
        }
        if want.get("stop") == Some(&Value::Bool(false)) {
            got.entry("stop").or_insert(Value::Bool(false));
        }
        let errors: Vec<String> = reply
            .events
            .iter()
            .filter(|e| e.kind == "policy_error" || e.kind == "invalid_decision")
            .map(|e| format!("{}: {}", e.kind, e.message.clone().unwrap_or_default()))
            .collect();
        if matches(&Value::Object(want.clone()), &Value::Object(got.clone()))
            && errors.is_empty() != expect_error
        {
            out.passed += 1;
        } else {
            let extra = match (errors.is_empty(), expect_error) {
                (true, true) => " (expected an error, the call succeeded)".to_string(),
                (true, false) => String::new(),
                (false, _) => format!(" ({})", errors.join("; ")),
            };
            fail(
                out,
                format!(
                    "ctx {}\n  expected {}\n  actual   {}{extra}",
                    Value::Object(c.clone()),
                    Value::Object(want),
                    Value::Object(got)
                ),
            );
        }
    }
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
