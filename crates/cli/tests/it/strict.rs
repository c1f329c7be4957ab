//! Writing a policy without silent mistakes: a misspelled `ctx` field is an error with
//! the nearest name (at load, in `policy check`, and at run time), `policy check`
//! warns of what loads but does nothing, and `--param` names what was meant.

use std::path::Path;

use super::{jsonl, rudder, stderr};

fn write(d: &Path, name: &str, text: &str) {
    std::fs::write(d.join(name), text).expect("write");
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The typo that used to halve the LR every epoch: `ctx.val_los` was `()`.
const TYPO: &str = "fn on_epoch_end(ctx) {
    if this.best == () { this.best = 1e9; }
    if ctx.val_los < this.best { return #{ lr: ctx.lr / 2.0 }; }
}
";

#[test]
fn a_misspelled_ctx_field_is_an_error_with_the_nearest_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "typo.rhai", TYPO);
    let want = "typo.rhai:3:12: ctx.val_los: no such field; did you mean val_loss?";
    for args in [
        vec!["policy", "check", "typo.rhai"],
        vec![
            "train",
            "--epochs",
            "1",
            "--policy",
            "typo.rhai",
            "--out",
            "r",
        ],
    ] {
        let o = rudder(d, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert!(
        !d.join("r").exists(),
        "a policy that cannot load starts no run"
    );

    // Out of the static check's sight (a key built at run time): a policy_error with
    // the same message, and the run goes on at its LR.
    write(
        d,
        "dynamic.rhai",
        "fn on_epoch_end(ctx) { let k = \"val_\" + \"los\"; if ctx[k] < 9.0 { #{ lr: 0.01 } } }\n",
    );
    let o = rudder(
        d,
        &[
            "train",
            "--epochs",
            "2",
            "--policy",
            "dynamic.rhai",
            "--out",
            "r",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let events = jsonl(&d.join("r/events.jsonl"));
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "policy_error")
        .collect();
    assert_eq!(errors.len(), 2, "one per epoch end: {events:?}");
    assert_eq!(
        errors[0]["message"],
        "ctx.val_los: no such field; did you mean val_loss?"
    );
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(1), Some(54))
    );
    let metrics = jsonl(&d.join("r/metrics.jsonl"));
    assert!(
        metrics.iter().all(|m| m["lr"] == 0.1),
        "no decision was taken: {metrics:?}"
    );

    // A field with no value yet is (), not an error; ctx.params is held to fn params().
    write(
        d,
        "params.rhai",
        "fn params() { #{ factor: 0.5 } }\nfn on_epoch_start(ctx) { if ctx.val_loss == () { #{ lr: ctx.lr * ctx.params.factr } } }\n",
    );
    let o = rudder(d, &["policy", "check", "params.rhai"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "params.rhai:2:77: ctx.params.factr: policy params declares no parameter factr; did you mean factor?"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn policy_check_warns_of_what_loads_but_does_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(
        d,
        "lint.rhai",
        "fn params() { #{ patience: 3, factor: 0.5 } }
fn on_epoch_ends(ctx) { #{ lr: 0.1 } }
fn on_epoch_end(ctx) {
    if ctx.epoch > ctx.params.patience { return #{ stop: true, reasn: \"done\" }; }
}
",
    );
    let o = rudder(d, &["policy", "check", "lint.rhai"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "warnings are not errors: {}",
        stderr(&o)
    );
    let out = stdout(&o);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "warning: lint.rhai:1:13: parameter factor is declared in fn params() but never read",
            "warning: lint.rhai:2:23: fn on_epoch_ends is not a hook, so it is never called; did you mean on_epoch_end?",
            "warning: lint.rhai:4:49: decision key reasn does not exist, so the decision will be rejected; did you mean reason?",
        ],
        "{out}"
    );

    // The standard library and the shipped plugins pass with no warning.
    let repo = super::repo();
    let list = rudder(&repo, &["policy", "list"]);
    let names: Vec<String> = stdout(&list)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(names.len() >= 26, "{names:?}");
    let mut args = vec!["policy".to_string(), "check".into()];
    args.extend(names);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = rudder(&repo, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));
}

#[test]
fn a_param_names_what_was_meant() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let check = |args: &[&str]| {
        let mut all = vec!["policy", "check", "lr/cosine"];
        all.extend_from_slice(args);
        rudder(d, &all)
    };
    let o = check(&["--param", "t_max=5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "--param t_max: no policy declares \"t_max\" in fn params(); did you mean T_max?"
        ),
        "{}",
        stderr(&o)
    );
    let o = check(&["--param", "T_max=five"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("T_max=five: not valid JSON (policy lr/cosine declares T_max = null)"),
        "the default shown as JSON: {}",
        stderr(&o)
    );
    let o = check(&["--param", "lr/cosine.eta_mn=0"]);
    assert!(
        stderr(&o).contains("did you mean eta_min?"),
        "{}",
        stderr(&o)
    );

    // An unprefixed key reaching several policies: a warning naming them, in check and
    // at train start; the prefixed form sets one.
    let o = rudder(
        d,
        &[
            "train",
            "--epochs",
            "1",
            "--policy",
            "default",
            "--policy",
            "adapt/overfit_guard",
            "--param",
            "patience=1",
            "--out",
            "r",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "warning: --param patience=1 sets patience in 2 policies (default, adapt/overfit_guard); write default.patience=... to set one"
        ),
        "{}",
        stderr(&o)
    );
    let o = rudder(
        d,
        &[
            "policy",
            "check",
            "default",
            "adapt/overfit_guard",
            "--param",
            "adapt/overfit_guard.patience=1",
        ],
    );
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));
}
