//! The limits of the book's Limits page (docs/src/reference/limits.md) hold for the
//! worst built-ins: each attack, run in its own epoch's `on_epoch_end`, ends that call
//! with a `policy_error` naming the limit, and the run finishes every epoch within its
//! memory bound.

use super::{at_epoch_end, rudder, survives, write};

/// (attack, what its error says).
const ATTACKS: &[(&str, &str)] = &[
    // One operation (comparing two 100,000-element arrays) takes milliseconds: the
    // time budget is checked at every operation, not every 1,024.
    (
        "let a = []; a.pad(99999, 1); let b = a; loop { let c = a == b; }",
        "time budget of 1 s",
    ),
    // 64 KiB of 'a' with each 'a' replaced by those 64 KiB: 4 GiB, refused before it
    // is built.
    (
        "let t = \"a\"; for i in 0..16 { t += t; } t.replace(\"a\", t); ()",
        "replace: the result would be 4294967296 bytes",
    ),
    (
        "let t = \"ab\"; for i in 0..15 { t += t; } t.replace('a', t); ()",
        "replace: the result would be",
    ),
    // Many values, each within the limits, together past the memory budget.
    (
        "let m = #{}; let s = \"a\"; for i in 0..15 { s += s; } for i in 0..9000 { m[s + i] = 1; } ()",
        "memory",
    ),
    ("sleep(1000); ()", "sleep is not available"),
    ("let s = \"x\"; loop { s += s; }", "Length of string"),
    (
        "let big = []; big.pad(50000, 1); let a = []; a.pad(100000, big); ()",
        "pad: 100000 copies",
    ),
    // Quadratic: every push checks the array's size.
    ("let x = []; loop { x.push(1); }", "budget"),
    ("let b = blob(100000); ()", "blob"),
    ("let i = 0; loop { i += 1; }", "operations"),
    (
        "let a = []; a.pad(99999, 1.5); let s = a.to_string(); ()",
        "Length of string",
    ),
    ("let a = []; for i in 0..100000 { a = [a]; } ()", "budget"),
    ("fn_that_recurses(0)", "too deep"),
];

#[test]
fn every_attack_ends_its_call_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut body = String::from("switch ctx.epoch {\n");
    for (i, (attack, _)) in ATTACKS.iter().enumerate() {
        body.push_str(&format!("    {i} => {{ {attack} }},\n"));
    }
    body.push_str("    _ => ()\n}");
    let policy = at_epoch_end(&body) + "fn fn_that_recurses(n) { fn_that_recurses(n + 1) }\n";
    write(d, "attacks.rhai", &policy);
    let events = survives(d, "attacks", "attacks.rhai", ATTACKS.len());
    for (i, (attack, says)) in ATTACKS.iter().enumerate() {
        let e = events
            .iter()
            .find(|e| e["kind"] == "policy_error" && e["epoch"] == i)
            .unwrap_or_else(|| panic!("epoch {i} ({attack}): no policy_error"));
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(says), "epoch {i} ({attack}): {msg}");
        assert_eq!(e["hook"], "on_epoch_end");
        assert!(e["line"].as_u64().unwrap() > 0, "{e}");
    }
}

#[test]
fn a_modules_top_level_runs_under_the_budget_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "slow_top.rhai",
        "let a = [];\na.pad(99999, 1);\nlet b = a;\nloop { let c = a == b; }\n",
    );
    write(
        d,
        "uses_slow.rhai",
        "import \"slow_top\" as s;\nfn on_epoch_end(ctx) { () }\n",
    );
    for args in [
        vec!["policy", "check", "uses_slow.rhai"],
        vec!["train", "-q", "--policy", "uses_slow.rhai"],
    ] {
        rudder(d, &args).refused("slow top level", &["time budget of 1 s"]);
    }
    // The policy's own top level too (it runs at every call of a policy that imports).
    write(d, "ops_top.rhai", "let i = 0;\nloop { i += 1; }\n");
    write(
        d,
        "uses_ops.rhai",
        "import \"ops_top\" as s;\nfn on_epoch_end(ctx) { () }\n",
    );
    rudder(d, &["policy", "check", "uses_ops.rhai"]).refused("endless top level", &["operations"]);
}

#[test]
fn a_huge_or_binary_policy_file_is_refused_without_being_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let big = "// padding\n".repeat(200_000);
    write(d, "big.rhai", &big);
    rudder(d, &["policy", "check", "big.rhai"]).refused("big", &["more than the 1024 KiB"]);
    std::fs::write(d.join("bin.rhai"), b"fn on_step(ctx) { \xff\xfe }\n").unwrap();
    rudder(d, &["policy", "check", "bin.rhai"]).refused("binary", &["not UTF-8"]);
}

#[test]
fn ctx_is_a_value_like_any_other() {
    // `ctx` copied, printed, assigned to (a copy: nothing changes) or returned inside
    // a decision: never a crash (rhai cannot hold a shared value inside a map, so
    // nothing in `ctx` is one).
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let body = "switch ctx.epoch {\n\
        0 => { ctx.epoch = 5; },\n\
        1 => { let a = [ctx]; let m = #{ a: ctx }; let s = `${ctx}`; let j = ctx.to_json(); let h = ctx.history; h.push(1); () },\n\
        2 => { let x = ctx; x.epoch = 5; this.c = x.history; () },\n\
        _ => #{ lr: 0.05, bogus: ctx }\n}";
    write(d, "ctx.rhai", &at_epoch_end(body));
    let events = survives(d, "ctx", "ctx.rhai", 4);
    let kinds: Vec<(u64, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "policy_error" || e["kind"] == "invalid_decision")
        .map(|e| (e["epoch"].as_u64().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(3, "invalid_decision")], "{events:?}");
}

#[test]
fn compiling_is_under_the_budget_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // About 1 MiB of `let`s: rhai takes many seconds to compile this.
    let slow: String = (0..70_000).map(|i| format!("let v{i}=1;\n")).collect();
    write(d, "slow.rhai", &slow);
    write(
        d,
        "at_load.rhai",
        "import \"slow\" as s;\nfn on_epoch_end(ctx) { () }\n",
    );
    rudder(d, &["policy", "check", "at_load.rhai"]).refused(
        "compile at load",
        &["slow.rhai", "compiling ran out of the time budget of 1 s"],
    );
    // The path is computed: the module is compiled when the hook runs.
    write(
        d,
        "at_call.rhai",
        &at_epoch_end("let n = \"sl\" + \"ow\";\nimport n as s;\n()"),
    );
    let events = survives(d, "compile at call", "at_call.rhai", 2);
    let e = super::event(&events, "policy_error", "compile at call");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("compiling ran out of the time budget"),
        "{e}"
    );
}

#[test]
fn copies_are_counted_with_their_map_keys() {
    // 150 keys of 64 KiB (keys are not in rhai's string count), then 66 copies of
    // the map in one `pad`: 600 MiB in one operation, refused before it copies.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "keys.rhai",
        &at_epoch_end(
            "let k = \"k\"; k.pad(65000, \"x\");\n\
             let m = #{}; for i in 0..150 { m[k.sub_string(0, 64990) + i] = i; }\n\
             let a = []; a.pad(66, m); ()",
        ),
    );
    let events = survives(d, "keys", "keys.rhai", 1);
    let e = super::event(&events, "policy_error", "keys");
    assert!(
        e["message"].as_str().unwrap().starts_with("pad: 66 copies"),
        "{e}"
    );
}

#[test]
fn what_a_policy_throws_or_returns_is_recorded_within_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A 40 MB map thrown at every step, and a 100,000-number decision at every step.
    write(
        d,
        "loud.rhai",
        "fn on_train_start(ctx) { #{ lr: 0.05 } }\n\
         fn on_step(ctx) {\n\
           if ctx.step % 2 == 0 {\n\
             let k = \"k\"; k.pad(65000, \"x\");\n\
             let m = #{}; for i in 0..600 { m[k + i] = ctx.step; }\n\
             throw m;\n\
           }\n\
           let a = []; a.pad(99999, -1.2345678901234567e-300); #{ bogus: a }\n\
         }\n",
    );
    let ran = rudder(
        d,
        &[
            "train",
            "--epochs",
            "2",
            "--policy",
            "loud.rhai",
            "--out",
            "r",
        ],
    );
    ran.ok("loud");
    assert!(
        ran.stderr.len() < 200_000,
        "stderr: {} bytes",
        ran.stderr.len()
    );
    let events = std::fs::metadata(d.join("r/events.jsonl")).unwrap().len();
    // 52 steps, each event a few KiB at most.
    assert!(events < 52 * 8 * 1024, "events.jsonl: {events} bytes");
    let ev = super::jsonl(&d.join("r/events.jsonl"));
    let thrown = super::event(&ev, "policy_error", "loud");
    assert!(
        thrown["message"].as_str().unwrap().len() <= 1100,
        "{thrown}"
    );
    let invalid = super::event(&ev, "invalid_decision", "loud");
    assert!(invalid["decision"].is_string(), "{invalid}");
}
