//! The policy runtime through the binary: the corpus of broken policies in
//! `tests/policies/` never kills a run (or is refused up front, exit 2, when the fault
//! is visible at compile time), composition, `batch/rescale`, and the `policy`
//! commands.

use std::fs;
use std::path::Path;

use super::{jsonl, rudder, stderr};

fn corpus(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(format!("{name}.rhai"))
        .display()
        .to_string()
}

/// Trains 2 epochs on digits with `policy`; the run must end well, every epoch's LR
/// must be the 0.05 its `on_train_start` set, and the first event after that decision
/// must be of `kind` with `fields`.
fn survives(name: &str, kind: &str, fields: &[(&str, serde_json::Value)]) {
    let tmp = tempfile::tempdir().unwrap();
    let epochs = if name == "runaway_array" { "1" } else { "2" };
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            epochs,
            "--policy",
            &corpus(name),
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert_eq!(
        m.len(),
        epochs.parse::<usize>().unwrap(),
        "{name}: every epoch ran"
    );
    assert!(
        m.iter().all(|r| r["lr"] == 0.05),
        "{name}: lr stays at its last good value"
    );
    let ev = jsonl(&tmp.path().join("r/events.jsonl"));
    let e = ev
        .iter()
        .find(|e| e["kind"] != "run_start" && e["kind"] != "decision")
        .unwrap_or_else(|| panic!("{name}: no event"));
    assert_eq!(e["kind"], kind, "{name}: {e}");
    assert_eq!(e["hook"], "on_epoch_end", "{name}");
    for (k, v) in fields {
        assert_eq!(&e[*k], v, "{name}: {k} in {e}");
    }
    if kind == "policy_error" {
        let file = e["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("{name}.rhai")), "{name}: {file}");
        // One rustc-style report per distinct error, whatever the epochs.
        let err = stderr(&o);
        assert_eq!(err.matches("error: ").count(), 1, "{name}: {err}");
        assert!(
            err.contains(&format!("{name}.rhai:{}:{}: ", e["line"], e["column"])),
            "{name}: {err}"
        );
        assert!(err.contains(" | ") && err.contains('^'), "{name}: {err}");
    }
}

#[test]
fn runtime_faults_are_events_with_their_place() {
    use serde_json::json;
    let at = |line: u32, column: u32| vec![("line", json!(line)), ("column", json!(column))];
    survives("type_mismatch", "policy_error", &at(5, 17));
    survives("unknown_ctx_field", "policy_error", &at(7, 15));
    survives("integer_division_by_zero", "policy_error", &at(6, 14));
    // Budgets: rhai gives no place, so the hook that ran out is named.
    survives("infinite_loop", "policy_error", &at(4, 1));
    survives("deep_recursion", "policy_error", &at(6, 1));
    survives("runaway_string", "policy_error", &at(4, 1));
    survives("runaway_array", "policy_error", &at(4, 1));
}

#[test]
fn bad_decisions_are_dropped_whole() {
    use serde_json::json;
    let key = |k: &str| vec![("key", json!(k))];
    survives("wrong_return_type", "invalid_decision", &key("decision"));
    survives("lr_nan", "invalid_decision", &key("lr"));
    survives("lr_infinite", "invalid_decision", &key("lr"));
    survives("lr_negative", "invalid_decision", &key("lr"));
    survives("lr_string", "invalid_decision", &key("lr"));
    survives("batch_size_zero", "invalid_decision", &key("batch_size"));
    survives("batch_size_too_big", "invalid_decision", &key("batch_size"));
    survives("unknown_key", "invalid_decision", &key("learning_rate"));
    survives("one_good_one_bad", "invalid_decision", &key("batch_size"));
}

#[test]
fn compile_time_faults_are_exit_2_with_file_line_column() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, place) in [
        ("syntax_error", ":5:16: "),
        ("import_absolute", ":4:8: "),
        ("import_parent", ":4:8: "),
    ] {
        for args in [
            vec!["train", "-q", "--policy", &corpus(name)],
            vec!["policy", "check", &corpus(name)],
        ] {
            let o = rudder(tmp.path(), &args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{name} {args:?}: {err}");
            assert!(
                err.lines()
                    .next()
                    .unwrap()
                    .contains(&format!("{name}.rhai{place}")),
                "{name}: {err}"
            );
        }
    }
    let o = rudder(tmp.path(), &["train", "--param", "nope=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--param nope: no policy declares \"nope\""),
        "{}",
        stderr(&o)
    );
    let o = rudder(tmp.path(), &["train", "--policy", "no_such_policy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: --policy no_such_policy: no policy"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_second_policy_sees_the_first_and_wins_per_key_and_any_stop_stops() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("first.rhai"),
        "fn on_epoch_start(ctx) { #{ lr: 0.02, momentum: 0.5 } }\nfn on_epoch_end(ctx) { if ctx.epoch == 1 { #{ stop: true, reason: \"first says stop\" } } }\n",
    )
    .unwrap();
    fs::write(
        tmp.path().join("second.rhai"),
        "fn on_epoch_start(ctx) { #{ lr: ctx.lr * 2.0, metrics: #{ seen_lr: ctx.lr } } }\n",
    )
    .unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "5",
            "--policy",
            "first.rhai",
            "--policy",
            "second.rhai",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert_eq!(
        m.len(),
        2,
        "the first policy's stop ends the run after epoch 1"
    );
    for r in &m {
        assert_eq!(
            r["policy"]["seen_lr"], 0.02,
            "the second sees the first's lr"
        );
        assert_eq!(r["lr"], 0.04, "the second wins on lr");
    }
    let ev = jsonl(&tmp.path().join("r/events.jsonl"));
    let stop = ev.iter().find(|e| e["kind"] == "stop").unwrap();
    assert_eq!(
        (stop["reason"].as_str(), stop["epoch"].as_u64()),
        (Some("first says stop"), Some(1))
    );
}

#[test]
fn batch_rescale_carries_a_papers_lr_to_this_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--policy",
            "batch/rescale",
            "--param",
            "ref_batch_size=1024",
            "--param",
            "ref_lr=16",
            "--batch-size",
            "64",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert_eq!(m[0]["lr"], 1.0);
    // The same, without training.
    let o = rudder(
        tmp.path(),
        &[
            "policy",
            "schedule",
            "batch/rescale",
            "--param",
            "ref_batch_size=1024",
            "--param",
            "ref_lr=16",
            "--batch-size",
            "64",
            "--epochs",
            "2",
            "--per-epoch",
        ],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"epoch": 0, "step": 0, "lr": 1.0, "batch_size": 64}),
            serde_json::json!({"epoch": 1, "step": 1, "lr": 1.0, "batch_size": 64})
        ]
    );
}

#[test]
fn replay_reproduces_the_lr_a_run_used() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(tmp.path(), &["train", "-q", "--epochs", "4", "--out", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = jsonl(&tmp.path().join("r/metrics.jsonl"));
    let o = rudder(
        tmp.path(),
        &[
            "policy",
            "replay",
            "default",
            "--metrics",
            "r/metrics.jsonl",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let replay: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replay.len(), run.len());
    for (r, p) in run.iter().zip(&replay) {
        assert_eq!(
            (&r["epoch"], &r["lr"], &r["batch_size"]),
            (&p["epoch"], &p["lr"], &p["batch_size"])
        );
        assert_eq!(p["stop"], false);
    }
}

#[test]
fn this_keeps_a_policys_state_between_calls_and_params_merge() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("count.rhai"),
        "/// every: record each `every`-th epoch\nfn params() { #{ every: 1, scale: 1.0 } }\nfn on_epoch_end(ctx) {\n    this.n = (this.n ?? 0) + 1;\n    #{ metrics: #{ n: this.n * ctx.params.scale, history: ctx.history.len() } }\n}\n",
    )
    .unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "3",
            "--policy",
            "count.rhai",
            "--param",
            "count.scale=10",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    for (i, r) in m.iter().enumerate() {
        assert_eq!(r["policy"]["n"], 10.0 * (i + 1) as f64);
        assert_eq!(r["policy"]["history"], i as f64);
    }
}

#[test]
fn policy_test_runs_the_standard_librarys_cases_and_shows_a_wrong_one() {
    // The standard library's cases in its crate, the shipped plugins' at the top.
    let mut all = 0;
    for root in [super::library(), super::repo()] {
        let o = rudder(&root, &["policy", "test"]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{out}{}", stderr(&o));
        let last = out.lines().last().unwrap();
        // Every case of every test file ran, and passed.
        let cases: usize = rudder_policy::testing::discover(&root)
            .iter()
            .map(|f| {
                let v: serde_json::Value =
                    serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap();
                // A sweep policy's file is one case (its replay).
                v["cases"].as_array().map_or(1, Vec::len)
            })
            .sum();
        assert_eq!(last, format!("{cases} passed, 0 failed"));
        all += cases;
    }
    assert!(all >= 948, "{all} cases: none may go missing");
    let root = &super::library();

    let tmp = tempfile::tempdir().unwrap();
    let mut file: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join("scripts/tests/lr_step_1.json")).unwrap(),
    )
    .unwrap();
    file["cases"][4]["expect"]["lr"] = serde_json::json!(0.123);
    let wrong = tmp.path().join("wrong.json");
    fs::write(&wrong, file.to_string()).unwrap();
    let o = rudder(root, &["policy", "test", wrong.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("case 4 (on_epoch_start)")
            && out.contains("expected {\"lr\":0.123}")
            && out.contains("actual   {\"lr\":0.05}"),
        "{out}"
    );
    assert!(out.ends_with("13 passed, 1 failed\n"), "{out}");
}

#[test]
fn every_script_in_the_library_is_embedded_and_compiles() {
    use rudder_policy::{EMBEDDED, Policies, SearchPath};
    let root = super::library().join("scripts");
    let mut on_disk = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rhai") {
                on_disk.push(
                    p.strip_prefix(&root)
                        .unwrap()
                        .with_extension("")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(
        on_disk, embedded,
        "scripts/ and the embedded library differ"
    );
    for name in &embedded {
        // An empty search path: only the embedded copy can answer.
        if name.starts_with("sweep/") {
            let s = rudder_policy::sweep::Scheduler::load(name, &[], &SearchPath::new(vec![]));
            assert!(s.is_ok(), "{name}: {:?}", s.err());
            continue;
        }
        let set = Policies::builder()
            .policy(name.as_str())
            .search_path(SearchPath::new(vec![]))
            .build();
        assert!(set.is_ok(), "{name}: {:?}", set.err());
    }
}

#[test]
fn policy_list_doc_and_defs() {
    let root = &super::library();
    let o = rudder(root, &["policy", "list"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success());
    let plateau = out
        .lines()
        .find(|l| l.starts_with("adapt/plateau "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        plateau.contains("torch `ReduceLROnPlateau`")
            && plateau.ends_with("scripts/adapt/plateau.rhai"),
        "{plateau}"
    );
    // Away from the checkout, the embedded library answers.
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(tmp.path(), &["policy", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with("lr/onecycle ") && l.ends_with("<embedded>/lr/onecycle.rhai"))
    );
    let o = rudder(tmp.path(), &["policy", "doc", "lr/step"]);
    let doc = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        doc.contains("torch `StepLR`")
            && doc.contains("hooks: on_epoch_start")
            && doc.contains("gamma = 0.1")
            && doc.contains("step_size = 30"),
        "{doc}"
    );
    let o = rudder(tmp.path(), &["policy", "defs", "--out", "defs.d.rhai"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let defs = fs::read_to_string(tmp.path().join("defs.d.rhai")).unwrap();
    assert!(
        defs.contains("module lr {") && defs.contains("fn cosine("),
        "lr module in the definitions"
    );
}

#[test]
fn plugins_resolve_by_name_and_bad_manifests_are_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(tmp.path(), &["plugin", "new", "mine"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "3",
            "--policy",
            "mine/halve",
            "--param",
            "every=1",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lrs: Vec<f64> = jsonl(&tmp.path().join("r/metrics.jsonl"))
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, [0.1, 0.05, 0.025]);
    let o = rudder(tmp.path(), &["policy", "test"]);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("2 passed, 0 failed\n"));
    let o = rudder(tmp.path(), &["plugin", "new", "mine"]);
    assert_eq!(o.status.code(), Some(2));

    let manifest = tmp.path().join("plugins/mine/plugin.json");
    let good = fs::read_to_string(&manifest).unwrap();
    for (bad, needle) in [
        (
            good.replacen("\"license\"", "\"licence\"", 1),
            "unknown field `licence`",
        ),
        (
            good.replacen("0.1.0", "1.0", 1),
            "version must be MAJOR.MINOR.PATCH",
        ),
        (
            good.replacen("\"halve.rhai\"", "\"gone.rhai\"", 1),
            "policy halve: file gone.rhai is missing",
        ),
        (
            good.replacen("\"api\": 1", "\"api\": 7", 1),
            "api 7 is not supported",
        ),
    ] {
        fs::write(&manifest, bad).unwrap();
        let o = rudder(tmp.path(), &["train", "-q", "--policy", "mine/halve"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("plugins/mine/plugin.json") && err.contains(needle),
            "{err}"
        );
    }
}
