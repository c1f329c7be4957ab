//! `rudder sweep` as a search (the book's Workflows page, docs/src/guide/workflows.md):
//! a grid over options and policy parameters with the LR coupled to the batch size,
//! random samples reproducible from the seed, the best-LR-per-batch table, and the
//! refusals of a bad search before any trial trains.

use std::path::Path;

use serde_json::Value;

use super::{jsonl, rudder, stderr};

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn sweep(dir: &Path, out: &str, extra: &[&str]) -> Value {
    let mut args = vec!["sweep", "-q", "--epochs", "1", "--out", out];
    args.extend_from_slice(extra);
    let o = rudder(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json_file(&dir.join(out).join("sweep.json"))
}

#[test]
fn a_grid_over_batch_size_carries_the_lr_by_the_rule_exactly() {
    let d = tempfile::tempdir().unwrap();
    for (rule, scale) in [("linear", 1.0f64), ("sqrt", 0.5)] {
        let out = format!("g-{rule}");
        let s = sweep(
            d.path(),
            &out,
            &[
                "--lr",
                "0.2",
                "--batch-size",
                "64",
                "--lr-scaling",
                rule,
                "--grid",
                "batch_size=16,64,256",
                "--multipliers",
                "1,2",
                "--policy",
                "stop/early_stop",
                "--grid",
                "stop/early_stop.patience=1,3",
            ],
        );
        let trials = s["trials"].as_array().unwrap();
        assert_eq!(
            trials.len(),
            3 * 2 * 2,
            "the axes' cross product and the multipliers"
        );
        for t in trials {
            let b = t["settings"]["batch_size"].as_f64().unwrap();
            let m = t["multiplier"].as_f64().unwrap();
            // As the rule computes it: lr x (new/old) or x sqrt(new/old), then x M.
            let base = if scale == 1.0 {
                0.2 * b / 64.0
            } else {
                0.2 * (b / 64.0).sqrt()
            };
            let want = base * m;
            assert_eq!(t["lr"].as_f64(), Some(want), "{t}");
            let dir = d.path().join(&out).join(t["dir"].as_str().unwrap());
            let config = json_file(&dir.join("config.json"));
            assert_eq!(config["lr"].as_f64(), Some(want));
            assert_eq!(config["batch_size"].as_f64(), Some(b));
            let patience = t["settings"]["stop/early_stop.patience"].clone();
            let params = config["param"].as_array().unwrap();
            assert_eq!(
                params.last().unwrap().as_str().unwrap(),
                format!("stop/early_stop.patience={patience}")
            );
            assert_eq!(
                jsonl(&dir.join("metrics.jsonl"))[0]["batch_size"].as_f64(),
                Some(b)
            );
        }
        assert_eq!(
            trials[0]["dir"],
            "batch_size-16_stop-early_stop.patience-1_x1"
        );
        assert_eq!(
            s["searched"]["grid"]["batch_size"],
            serde_json::json!([16, 64, 256])
        );
        // The best LR at each batch size, against the rules from batch 64's best.
        let rule = &s["lr_rule"];
        assert_eq!(rule["reference"], 64);
        let rows = rule["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let ref_lr = rows[1]["best_lr"].as_f64().unwrap();
        assert_eq!(rows[0]["linear"].as_f64(), Some(ref_lr * (16.0 / 64.0)));
        assert_eq!(
            rows[2]["sqrt"].as_f64(),
            Some(ref_lr * (256.0f64 / 64.0).sqrt())
        );
        assert!(["linear", "sqrt"].contains(&rule["closer"].as_str().unwrap()));
    }
    let page = std::fs::read_to_string(d.path().join("g-linear/report.html")).unwrap();
    assert!(page.contains("The best LR at each batch size: the best LRs are"));
    assert!(page.contains("The best LR at each batch size, and the two rules (log scales)"));
    // Three dimensions (two axes and the multipliers): no heatmap.
    assert!(!page.contains("class=\"heatmap\""));
    let s = sweep(
        d.path(),
        "g2",
        &["--grid", "batch_size=32,64", "--multipliers", "1,2,4"],
    );
    assert_eq!(s["trials"].as_array().unwrap().len(), 6);
    let page = std::fs::read_to_string(d.path().join("g2/report.html")).unwrap();
    assert!(page.contains("<table class=\"heatmap\"><caption>best val_loss of each trial"));
    assert_eq!(page.matches("<td style=\"background:rgb(").count(), 6);
}

#[test]
fn random_samples_are_the_seeds_and_stay_in_their_space() {
    let d = tempfile::tempdir().unwrap();
    let space = [
        "--samples",
        "4",
        "--space",
        "lr=log(0.01,0.5)",
        "--space",
        "momentum=uniform(0,0.9)",
        "--space",
        "optimizer=choice(sgd,adamw)",
        "--space",
        "hidden=int(16,64)",
    ];
    let settings = |s: &Value| -> Vec<Value> {
        s["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["settings"].clone())
            .collect()
    };
    let a = sweep(d.path(), "a", &[&space[..], &["--seed", "5"]].concat());
    let b = sweep(d.path(), "b", &[&space[..], &["--seed", "5"]].concat());
    let c = sweep(d.path(), "c", &[&space[..], &["--seed", "6"]].concat());
    assert_eq!(
        settings(&a),
        settings(&b),
        "the same seed draws the same trials"
    );
    assert_ne!(settings(&a), settings(&c));
    for t in a["trials"].as_array().unwrap() {
        let s = &t["settings"];
        let lr = s["lr"].as_f64().unwrap();
        assert!((0.01..0.5).contains(&lr));
        assert_eq!(
            t["lr"].as_f64(),
            Some(lr),
            "no batch size drawn: the LR as drawn"
        );
        assert!((0.0..0.9).contains(&s["momentum"].as_f64().unwrap()));
        let h = s["hidden"].as_u64().unwrap();
        assert!((16..=64).contains(&h));
        let config = json_file(
            &d.path()
                .join("a")
                .join(t["dir"].as_str().unwrap())
                .join("config.json"),
        );
        assert_eq!(config["hidden"], serde_json::json!([h]));
        assert_eq!(config["optimizer"], s["optimizer"]);
    }
    let dirs: Vec<&str> = a["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dir"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["s000", "s001", "s002", "s003"]);
}

#[test]
fn a_bad_search_is_refused_before_any_trial() {
    let d = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["--grid", "data=mnist,digits"][..],
            "--grid data=mnist,digits: data is the same for every trial",
        ),
        (&["--samples", "3"], "--samples: needs at least one --space"),
        (
            &["--space", "lr=log(0.1,1)"],
            "--space: draws only with --samples N",
        ),
        (
            &[
                "--grid",
                "lr=0.1,0.2",
                "--samples",
                "2",
                "--space",
                "momentum=uniform(0,1)",
            ],
            "not both",
        ),
        (
            &["--grid", "batch_size=8,big"],
            "--grid/--space batch_size big",
        ),
        (&["--grid", "patiense=1,2"], "patiense"),
        (
            &["--grid", "lr=0.1", "--grid", "lr=0.2"],
            "--grid: lr is given twice",
        ),
    ] {
        let mut all = vec!["sweep", "--epochs", "1", "--out", "no"];
        all.extend_from_slice(args);
        let o = rudder(d.path(), &all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(!d.path().join("no").exists(), "{args:?}: nothing written");
    }
}
