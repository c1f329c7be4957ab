//! What a policy keeps in `this` is checked after every call (the book's Limits page,
//! docs/src/reference/limits.md): too deep, too large, or not JSON is a `policy_error`
//! naming the key path, the call's changes are dropped, and every checkpoint stays
//! readable. NaN and the infinities survive a checkpoint.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::{event, jsonl, rudder, survives, write};

fn policy(on_step: &str) -> String {
    format!(
        "fn on_train_start(ctx) {{ #{{ lr: 0.05 }} }}\nfn on_step(ctx) {{\n{on_step}\n}}\nfn on_epoch_end(ctx) {{ #{{ metrics: #{{ kept: this.keys().len() }} }} }}\n"
    )
}

#[test]
fn a_this_nested_too_deep_is_dropped_and_checkpoints_stay_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 200 levels at once, then 500 more at every step.
    write(
        d,
        "deep.rhai",
        &policy("let x = #{}; for i in 0..200 { x = #{ d: x }; } this.nest = x; ()"),
    );
    write(
        d,
        "deeper.rhai",
        &policy(
            "if this.n == () { this.n = #{} } let x = this.n; for i in 0..500 { x = #{ d: x }; } this.n = x; ()",
        ),
    );
    for name in ["deep", "deeper"] {
        let events = survives(d.join("").as_path(), name, &format!("{name}.rhai"), 2);
        let e = event(&events, "policy_error", name);
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(".d.d.d") && msg.contains("nested deeper than 32 levels"),
            "{name}: {msg}"
        );
        // The changes were dropped: `this` stayed empty (or the first valid level).
        let m = jsonl(&d.join("r/metrics.jsonl"));
        assert!(
            m.iter().all(|r| r["policy"]["kept"].as_f64() <= Some(1.0)),
            "{m:?}"
        );
        std::fs::remove_dir_all(d.join("r")).unwrap();
    }
}

#[test]
fn a_this_that_grows_every_step_stops_at_its_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "grow.rhai",
        &policy(
            "if this.a == () { this.a = [] } this.a.pad(this.a.len() + 3000, 0.1234567890123456); ()",
        ),
    );
    let events = survives(d, "grow", "grow.rhai", 3);
    let e = event(&events, "policy_error", "grow");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("bytes as JSON, more than the 1024 KiB"),
        "{e}"
    );
    // Each checkpoint holds the last valid `this`: 1 MiB as compact JSON, in a
    // state.json written pretty.
    for c in std::fs::read_dir(d.join("r/checkpoints")).unwrap() {
        let state = c.unwrap().path().join("state.json");
        let len = std::fs::metadata(&state).unwrap().len();
        assert!(len < 3 << 20, "{}: {len} bytes", state.display());
    }
}

#[test]
fn values_json_cannot_hold_are_refused_by_their_key_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (value, says) in [
        (
            "timestamp()",
            "this.history[3].t: timestamp cannot be saved",
        ),
        ("Fn(\"f\")", "this.history[3].t: Fn cannot be saved"),
        ("'c'", "this.history[3].t: a char cannot be saved"),
        ("1..5", "this.history[3].t: "),
        (
            "#{ \"$float\": 1 }",
            "this.history[3].t: the key $float is reserved",
        ),
    ] {
        write(
            d,
            "odd.rhai",
            &policy(&format!("this.history = [1, 2, 3, #{{ t: {value} }}]; ()")),
        );
        let events = survives(d, value, "odd.rhai", 1);
        let e = event(&events, "policy_error", value);
        let msg = e["message"].as_str().unwrap();
        assert!(msg.starts_with(says), "{value}: {msg}");
        let m = jsonl(&d.join("r/metrics.jsonl"));
        assert_eq!(
            m[0]["policy"]["kept"], 0.0,
            "{value}: the change was dropped"
        );
        std::fs::remove_dir_all(d.join("r")).unwrap();
    }
}

#[test]
fn nan_and_infinities_survive_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "odd_numbers.rhai",
        "fn on_train_start(ctx) { if !ctx.resumed { this.n = 0.0 / 0.0; this.p = 1.0 / 0.0; this.m = -1.0 / 0.0; this.l = [0.0 / 0.0]; } () }\n\
         fn on_epoch_end(ctx) { #{ metrics: #{ ok: if this.n.is_nan && this.p.to_string() == \"inf\" && this.m.to_string() == \"-inf\" && this.l[0].is_nan { 1.0 } else { 0.0 } } } }\n",
    );
    // Killed in the second epoch (digits: 26 steps an epoch), after epoch 0's
    // checkpoint; the resumed policy must see its numbers back.
    let mut child = Command::new(super::bin())
        .args([
            "train",
            "-q",
            "--epochs",
            "2",
            "--policy",
            "odd_numbers.rhai",
            "--out",
            "r",
        ])
        .current_dir(d)
        .env("RUDDER_FAULT", "step:30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .any(|l| l.unwrap().contains("fault point step:30 reached"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("r/checkpoints/epoch-0/state.json")).unwrap(),
    )
    .unwrap();
    let this = &state["policies"][0]["this"];
    assert_eq!(this["n"], serde_json::json!({"$float": "NaN"}), "{this}");
    assert_eq!(this["m"], serde_json::json!({"$float": "-inf"}), "{this}");
    rudder(d, &["train", "-q", "--resume", "r"]).ok("resume");
    let m = jsonl(&d.join("r/metrics.jsonl"));
    assert_eq!(m.len(), 2);
    assert_eq!(m[1]["policy"]["ok"], 1.0, "{m:?}");
}

#[test]
fn a_chatty_policy_keeps_checkpoints_small_and_tagged_ones_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 60 KiB logged at every step, and a new tag at every epoch's end.
    write(
        d,
        "chatty.rhai",
        "fn on_step(ctx) { let s = \"x\"; s.pad(61440, 'y'); #{ log: s } }\n\
         fn on_epoch_end(ctx) { #{ save: `tag-${ctx.epoch}` } }\n",
    );
    let size = |run: &str, name: &str| {
        std::fs::metadata(
            d.join(run)
                .join("checkpoints")
                .join(name)
                .join("state.json"),
        )
        .unwrap()
        .len()
    };
    for (run, epochs) in [("two", "2"), ("six", "6")] {
        rudder(
            d,
            &[
                "train",
                "-q",
                "--epochs",
                epochs,
                "--policy",
                "chatty.rhai",
                "--keep-tagged",
                "2",
                "--out",
                run,
            ],
        )
        .ok(run);
    }
    // The log lines are in events.jsonl, not in the checkpoints: the same size
    // after 2 epochs and after 6 (but for the digits of the counters).
    let (a, b) = (size("two", "epoch-1"), size("six", "epoch-5"));
    assert!(
        b < 4096 && b.abs_diff(a) < 64,
        "state.json {a} then {b} bytes"
    );
    assert!(std::fs::metadata(d.join("six/events.jsonl")).unwrap().len() > 10 << 20);
    // The newest two tags are kept.
    let mut tags: Vec<String> = std::fs::read_dir(d.join("six/checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tag-"))
        .collect();
    tags.sort();
    assert_eq!(tags, ["tag-4", "tag-5"]);
}
