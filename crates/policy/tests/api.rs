//! rudder-policy as a library user sees it: the builder, typed errors, composition,
//! hot reload through the watcher, state for checkpoints, the message sink, and the
//! standard library's own test cases.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rudder_policy::{
    Ctx, EventKind, HookErrorKind, LoadErrorKind, Messages, Param, Policies, Rescale, SearchPath,
    Settings, WatchMode,
};

/// This crate: its `scripts/` is the standard library and its test cases.
fn library() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root: the shipped plugins.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ctx<'a>() -> Ctx<'a> {
    let mut s = Settings::new(0.1, 64);
    s.epochs = 10;
    let mut c = Ctx::new(s, 6400);
    c.steps_per_epoch = 100;
    c
}

fn policy(dir: &Path, name: &str, text: &str) -> String {
    let f = dir.join(name);
    // As an editor saves: a new file renamed over the old one.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &f).unwrap();
    f.display().to_string()
}

fn quiet(specs: &[&str]) -> Policies {
    Policies::builder()
        .policies(specs.iter().copied())
        .messages(Messages::none())
        .build()
        .unwrap()
}

#[test]
fn the_standard_librarys_cases_all_pass() {
    let search = SearchPath::new(vec![root().join("plugins"), library().join("scripts")]);
    let mut passed = 0;
    for r in [library(), root()] {
        let out = rudder_policy::testing::run(&r, &[], &search).unwrap();
        assert_eq!(out.failed, 0, "{:#?}", out.failures);
        passed += out.passed;
    }
    assert!(passed >= 948, "{passed} cases");
}

#[test]
fn load_errors_are_typed_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = policy(
        dir.path(),
        "bad.rhai",
        "fn on_step(ctx) {\n    let x = ;\n}\n",
    );
    let e = Policies::builder().policy(&bad).build().err().unwrap();
    assert_eq!(e.kind, LoadErrorKind::Script);
    assert_eq!(
        (e.file.as_deref(), e.line, e.column),
        (Some(Path::new(&bad)), 2, 13)
    );
    assert!(e.message.contains("Unexpected ';'"), "{}", e.message);

    let e = Policies::builder()
        .policy("lr/cosin")
        .build()
        .err()
        .unwrap();
    assert_eq!(
        (e.kind, e.spec.as_deref()),
        (LoadErrorKind::NotFound, Some("lr/cosin"))
    );
    assert!(
        e.message.contains("lr/cosine"),
        "a suggestion: {}",
        e.message
    );

    let e = Policies::builder()
        .policy("lr/cosine")
        .param(Param::new("eta_min", "low"))
        .build()
        .err()
        .unwrap();
    assert_eq!(e.kind, LoadErrorKind::Param);
    assert!(e.message.contains("eta_min"), "{}", e.message);
}

#[test]
fn a_misspelled_ctx_field_is_an_error_with_the_nearest_name() {
    let t = tempfile::tempdir().unwrap();
    let typo = policy(
        t.path(),
        "typo.rhai",
        "fn on_epoch_end(ctx) {\n    if ctx.val_los < 1.0 { #{ lr: ctx.lr / 2.0 } }\n}\n",
    );
    let Err(e) = Policies::builder().policy(typo.as_str()).build() else {
        panic!("a typo in ctx loads");
    };
    assert_eq!((e.kind, e.line, e.column), (LoadErrorKind::Script, 2, 12));
    assert_eq!(
        e.message,
        "ctx.val_los: no such field; did you mean val_loss?"
    );
    // A key built at run time: a hook error with the same message, and no decision.
    let dynamic = policy(
        t.path(),
        "dynamic.rhai",
        "fn on_epoch_end(ctx) { let k = \"val_\" + \"los\"; if ctx[k] < 9.0 { #{ lr: 0.01 } } }\n",
    );
    let mut set = quiet(&[dynamic.as_str()]);
    let reply = set.on_epoch_end(&ctx());
    assert_eq!(reply.decision.lr, None);
    assert_eq!(reply.errors.len(), 1);
    assert_eq!(reply.errors[0].kind, HookErrorKind::Script);
    assert_eq!(
        reply.errors[0].message,
        "ctx.val_los: no such field; did you mean val_loss?"
    );
}

#[test]
fn hook_errors_are_typed_and_the_other_policies_decide() {
    let dir = tempfile::tempdir().unwrap();
    let boom = policy(
        dir.path(),
        "boom.rhai",
        "fn on_epoch_start(ctx) {\n    throw \"boom\";\n}\n",
    );
    let bad = policy(
        dir.path(),
        "bad.rhai",
        "fn on_epoch_start(ctx) { #{ momentum: 2.0 } }\n",
    );
    let mut set = quiet(&[&boom, &bad, "lr/step"]);
    let reply = set.on_epoch_start(&ctx());
    assert_eq!(reply.decision.lr, Some(0.1));
    assert_eq!(reply.errors.len(), 2);
    let e = &reply.errors[0];
    assert_eq!(
        (e.kind, e.file.display().to_string(), e.line),
        (HookErrorKind::Script, boom.clone(), 2)
    );
    assert!(e.message.contains("boom"));
    let e = &reply.errors[1];
    assert_eq!(
        (e.kind, e.key.as_deref()),
        (HookErrorKind::InvalidDecision, Some("momentum"))
    );
    let kinds: Vec<EventKind> = reply.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::PolicyError,
            EventKind::InvalidDecision,
            EventKind::Decision
        ]
    );
}

#[test]
fn later_policies_win_and_a_batch_change_rescales_an_earlier_lr() {
    let dir = tempfile::tempdir().unwrap();
    let a = policy(
        dir.path(),
        "a.rhai",
        "fn on_epoch_start(ctx) { #{ lr: 0.4, stop: true, reason: \"a\" } }\n",
    );
    let b = policy(
        dir.path(),
        "b.rhai",
        "fn on_epoch_start(ctx) { #{ batch_size: 128 } }\n",
    );
    let mut set = Policies::builder()
        .policies([a.as_str(), b.as_str()])
        .rescale(Rescale::Sqrt)
        .messages(Messages::none())
        .build()
        .unwrap();
    let d = set.on_epoch_start(&ctx()).decision;
    // b saw a's LR 0.4 and doubled the batch: sqrt rule, 0.4 * sqrt(2).
    assert_eq!(d.batch_size, Some(128));
    assert!((d.lr.unwrap() - 0.4 * 2f64.sqrt()).abs() < 1e-12);
    assert!(d.stop);
    assert_eq!(d.reason.as_deref(), Some("a"));
}

#[test]
fn an_edit_reloads_at_the_next_call_and_a_broken_one_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let f = policy(
        dir.path(),
        "rate.rhai",
        "fn on_step(ctx) { #{ lr: 0.1 } }\n",
    );
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = said.clone();
    let mut set = Policies::builder()
        .policy(&f)
        .watch(WatchMode::Auto)
        .messages(Messages::to(move |m| sink.lock().unwrap().push(m.into())))
        .build()
        .unwrap();
    assert!(set.watching().is_some());
    assert_eq!(set.on_step(&ctx()).decision.lr, Some(0.1));

    let wait = |set: &Policies| {
        let end = Instant::now() + Duration::from_secs(10);
        while !set.edit_seen() {
            assert!(Instant::now() < end, "the watcher never saw the save");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    policy(
        dir.path(),
        "rate.rhai",
        "fn on_step(ctx) { #{ lr: 0.2 } }\n",
    );
    wait(&set);
    let reply = set.on_step(&ctx());
    assert_eq!(reply.decision.lr, Some(0.2));
    assert_eq!(reply.events[0].kind, EventKind::Reload);
    assert_eq!(reply.events[0].message.as_deref(), Some("v2"));

    policy(dir.path(), "rate.rhai", "fn on_step(ctx) { #{ lr: } }\n");
    wait(&set);
    let reply = set.on_step(&ctx());
    assert_eq!(reply.decision.lr, Some(0.2));
    let failed = &reply.events[0];
    assert_eq!(failed.kind, EventKind::ReloadFailed);
    assert_eq!(failed.at.as_ref().map(|a| a.line), Some(1));
    assert!(
        said.lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("reload failed")),
        "{said:?}"
    );
}

#[test]
fn state_carries_this_to_a_new_set() {
    let mut a = Policies::builder()
        .policy("stop/early_stop")
        .param(Param::new("patience", 3))
        .build()
        .unwrap();
    let mut c = ctx();
    for (epoch, loss) in [1.0, 1.1, 1.2].into_iter().enumerate() {
        c.epoch = epoch;
        c.metrics.val_loss = Some(loss);
        assert!(!a.on_epoch_end(&c).decision.stop);
    }
    let saved = a.state();
    assert_eq!(saved[0].this["wait"], 2);
    let mut b = Policies::builder()
        .policy("stop/early_stop")
        .param(Param::new("patience", 3))
        .build()
        .unwrap();
    assert!(b.load_state(&saved).is_empty());
    c.epoch = 3;
    c.metrics.val_loss = Some(1.3);
    assert!(b.on_epoch_end(&c).decision.stop, "the 4th bad epoch stops");
    let notes = quiet(&["lr/cosine"]).load_state(&saved);
    assert_eq!(
        notes,
        ["policy lr/cosine is not in the checkpoint; its this starts empty"]
    );
}

#[test]
fn a_script_error_is_said_once_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = policy(
        dir.path(),
        "boom.rhai",
        "fn on_step(ctx) {\n    let x = 1 / 0;\n}\n",
    );
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = said.clone();
    let mut set = Policies::builder()
        .policy(&f)
        .messages(Messages::to(move |m| sink.lock().unwrap().push(m.into())))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(set.on_step(&ctx()).errors.len(), 1);
    }
    let said = said.lock().unwrap();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains(&format!("{f}:2:")) && said[0].contains("let x = 1 / 0;"),
        "{}",
        said[0]
    );
}

#[test]
fn a_step_schedule_of_lr_and_momentum_is_not_an_event_but_other_step_decisions_are() {
    // lr/onecycle cycles momentum with the LR at every step: like an LR-only schedule,
    // steps.jsonl has its values, and an event per step would bury the rest.
    let mut set = quiet(&["lr/onecycle"]);
    set.on_train_start(&ctx());
    let mut c = ctx();
    c.step = 5;
    let reply = set.on_step(&c);
    assert!(reply.decision.lr.is_some() && reply.decision.momentum.is_some());
    assert_eq!(reply.events.len(), 0, "{:?}", reply.events);
    let dir = tempfile::tempdir().unwrap();
    let wd = policy(
        dir.path(),
        "wd.rhai",
        "fn on_step(ctx) { #{ lr: 0.1, weight_decay: 0.01 } }\n",
    );
    let reply = quiet(&[&wd]).on_step(&c);
    let kinds: Vec<EventKind> = reply.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Decision]);
}
