//! `policy test` fails a case whose call fails, unless the case expects the failure:
//! a crashing policy cannot pass on expectations that only assert absences.

use super::{rudder, write};

#[test]
fn a_case_passes_only_if_the_call_did_what_it_expects() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "crash.rhai",
        "fn on_epoch_end(ctx) { if ctx.epoch == 1 { throw \"boom\" } #{ lr: 0.5 } }\n",
    );
    let case = |epoch: u32, expect: &str| {
        format!(r#"{{"hook": "on_epoch_end", "ctx": {{"epoch": {epoch}}}, "expect": {expect}}}"#)
    };
    let file = |cases: &[String]| {
        format!(
            r#"{{"policy": "crash.rhai", "cases": [{}]}}"#,
            cases.join(", ")
        )
    };
    // Absences only: `stop: false` and no `epochs`, while the hook throws.
    write(
        d,
        "absent.json",
        &file(&[case(1, r#"{"stop": false, "epochs": null}"#)]),
    );
    let r = rudder(d, &["policy", "test", "absent.json"]);
    r.sane("absent");
    assert_ne!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("policy_error: boom"), "{}", r.stdout);
    assert!(r.stdout.ends_with("0 passed, 1 failed\n"), "{}", r.stdout);
    // Expecting the error passes; expecting one where the call succeeds fails.
    write(
        d,
        "expects.json",
        &file(&[
            case(1, r#"{"error": true}"#),
            case(0, r#"{"lr": 0.5}"#),
            case(0, r#"{"error": true}"#),
        ]),
    );
    let r = rudder(d, &["policy", "test", "expects.json"]);
    assert!(r.stdout.ends_with("2 passed, 1 failed\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("expected an error, the call succeeded"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_invalid_decision_fails_its_case_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A momentum of 2 is rejected whole: the case expects only an absence (no
    // stop), which a dropped decision satisfies; the rejection must fail it.
    write(
        d,
        "bad.rhai",
        "fn on_epoch_end(ctx) { #{ momentum: 2.0 } }\n",
    );
    write(
        d,
        "bad.json",
        r#"{"policy": "bad.rhai", "cases": [{"hook": "on_epoch_end", "ctx": {"epoch": 0}, "expect": {"stop": false}}]}"#,
    );
    let r = rudder(d, &["policy", "test", "bad.json"]);
    r.sane("invalid");
    assert_ne!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("invalid_decision"), "{}", r.stdout);
    assert!(r.stdout.ends_with("0 passed, 1 failed\n"), "{}", r.stdout);
    // Expecting the error passes.
    write(
        d,
        "bad.json",
        r#"{"policy": "bad.rhai", "cases": [{"hook": "on_epoch_end", "ctx": {"epoch": 0}, "expect": {"error": true}}]}"#,
    );
    let r = rudder(d, &["policy", "test", "bad.json"]);
    assert!(r.stdout.ends_with("1 passed, 0 failed\n"), "{}", r.stdout);
}
