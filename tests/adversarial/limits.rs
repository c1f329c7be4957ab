//! The limits of SPEC section 9 hold for the worst built-ins: each attack, run in its
//! own epoch's `on_epoch_end`, ends that call with a `policy_error` naming the limit,
//! and the run finishes every epoch within its memory bound.

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
        "Size of array",
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
