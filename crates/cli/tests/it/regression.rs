//! Regression (the book's Models page, docs/src/guide/models.md): the embedded diabetes
//! set against the mean predictor, several real targets from a CSV, the regression
//! metrics in metrics.jsonl, `--monitor` and policies' `ctx`, and the errors that point
//! to `--task`.

use std::path::Path;

use super::{jsonl, rudder, stderr};

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

#[test]
fn diabetes_beats_the_mean_predictor_by_a_margin() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "--data",
            "diabetes",
            "--val-fraction",
            "0.2",
            "--epochs",
            "100",
            "--out",
            "r",
            "--quiet",
        ],
    );
    ok(&o);
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    let last = m.last().unwrap();
    // R^2 0 is the mean predictor; this split's reference (LinearRegression) is 0.33.
    let r2 = last["val_r2"].as_f64().unwrap();
    assert!(r2 >= 0.25, "val_r2 {r2}");
    // Errors in the target's units (disease progression, 25 to 346): RMSE beside
    // the split's own spread.
    let rmse = last["val_rmse"].as_f64().unwrap();
    let mae = last["val_mae"].as_f64().unwrap();
    assert!(
        rmse > 30.0 && rmse < 75.0 && mae < rmse,
        "rmse {rmse} mae {mae}"
    );
    // A regression has no accuracy.
    assert!(last.get("val_acc").is_none() && last.get("train_acc").is_none());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["task"], "regression");
    assert_eq!(config["loss"], "mse");
}

/// y1 = 2 a - b + 1 and y2 = a b / 4 on a grid: two real targets, the last two
/// columns.
fn two_targets(dir: &Path) {
    let mut text = String::from("a,b,y1,y2\n");
    for i in 0..40 {
        for j in 0..10 {
            let (a, b) = (i as f64 / 8.0 - 2.5, j as f64 / 2.0 - 2.0);
            text += &format!("{a},{b},{},{}\n", 2.0 * a - b + 1.0, a * b / 4.0);
        }
    }
    std::fs::write(dir.join("two.csv"), text).unwrap();
}

#[test]
fn two_real_targets_are_learned_with_each_loss() {
    let tmp = tempfile::tempdir().unwrap();
    two_targets(tmp.path());
    for loss in ["mse", "mae", "huber"] {
        let out = format!("r-{loss}");
        let o = rudder(
            tmp.path(),
            &[
                "train",
                "--data",
                "two.csv",
                "--task",
                "regression",
                "--targets",
                "2",
                "--loss",
                loss,
                "--huber-delta",
                "0.5",
                "--epochs",
                "60",
                "--policy",
                "lr/cosine",
                "--out",
                &out,
                "--quiet",
            ],
        );
        ok(&o);
        let m = jsonl(&tmp.path().join(&out).join("metrics.jsonl"));
        let r2 = m.last().unwrap()["val_r2"].as_f64().unwrap();
        assert!(r2 > 0.9, "{loss}: val_r2 {r2}");
    }
}

#[test]
fn policies_and_monitor_see_the_regression_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("watch.rhai"),
        r#"fn on_epoch_end(ctx) { #{ metrics: #{ seen_rmse: ctx.val_rmse, seen_r2: ctx.val_r2 } } }"#,
    )
    .unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "--data",
            "diabetes",
            "--epochs",
            "200",
            "--policy",
            "./watch.rhai",
            "--policy",
            "stop/early_stop",
            "--param",
            "stop/early_stop.monitor=\"val_rmse\"",
            "--monitor",
            "val_r2",
            "--out",
            "r",
            "--quiet",
        ],
    );
    ok(&o);
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert!(m.len() < 200, "early_stop on val_rmse stopped the run");
    for r in &m {
        assert_eq!(r["policy"]["seen_rmse"], r["val_rmse"]);
        assert_eq!(r["policy"]["seen_r2"], r["val_r2"]);
    }
    let events = jsonl(&tmp.path().join("r/events.jsonl"));
    let stop = events.iter().find(|e| e["kind"] == "stop").unwrap();
    assert!(
        stop["reason"]
            .as_str()
            .unwrap()
            .starts_with("val_rmse did not improve"),
        "{stop}"
    );
    // The best checkpoint is the epoch of the highest R^2.
    let best = m
        .iter()
        .max_by(|a, b| {
            a["val_r2"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["val_r2"].as_f64().unwrap())
        })
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("r/checkpoints/best/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["epoch"].as_u64(),
        Some(best["epoch"].as_u64().unwrap() + 1)
    );
}

#[test]
fn the_wrong_task_is_named_with_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("real.csv"),
        "a,y\n1,0.5\n2,1.5\n3,2.5\n4,0.25\n",
    )
    .unwrap();
    for (args, want) in [
        (
            &["train", "--data", "real.csv"][..],
            "real.csv:2:2: the label must be a class number 0, 1, 2, ...: got \"0.5\" (real-valued targets: --task regression)",
        ),
        (
            &["train", "--loss", "mae"][..],
            "--loss mae: not a classification loss",
        ),
        (
            &["train", "--data", "diabetes", "--loss", "cross_entropy"][..],
            "--loss cross_entropy: not a regression loss",
        ),
        (
            &["train", "--task", "regression"][..],
            "--task regression: digits is a classification set (try --data diabetes)",
        ),
        (
            &["train", "--data", "diabetes", "--monitor", "val_acc"][..],
            "--monitor: val_acc is a classification metric; regression has val_rmse, val_mae, val_r2",
        ),
        (
            &["train", "--targets", "2"][..],
            "--targets 2: only for --task regression",
        ),
    ] {
        let o = rudder(tmp.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn sweep_lr_find_and_reports_speak_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "sweep",
            "--data",
            "diabetes",
            "--epochs",
            "5",
            "--multipliers",
            "1,0.5",
            "--metric",
            "val_r2",
            "--out",
            "s",
        ],
    );
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("best val_r2") && err.contains("final rmse"),
        "{err}"
    );
    let page = std::fs::read_to_string(tmp.path().join("s/report.html")).unwrap();
    assert!(page.contains("Validation RMSE"), "the overlay plots RMSE");
    let run = std::fs::read_to_string(tmp.path().join("s/x1/report.html")).unwrap();
    assert!(run.contains("best val rmse") && !run.contains(">Accuracy<"));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("s/sweep.json")).unwrap())
            .unwrap();
    let best = &sweep["trials"][0]["best"];
    assert!(best["val_r2"]["value"].as_f64().is_some() && best["val_rmse"]["value"].is_number());
    let o = rudder(
        tmp.path(),
        &[
            "sweep", "--data", "diabetes", "--metric", "val_acc", "--out", "t",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--metric: val_acc is a classification metric"));
    let o = rudder(tmp.path(), &["lr-find", "--data", "diabetes", "--out", "f"]);
    ok(&o);
    assert!(tmp.path().join("f/lr_find.json").is_file());
}

/// The value of field `key` in the run's `run_start` event.
fn run_start(dir: &Path, key: &str) -> serde_json::Value {
    let events = jsonl(&dir.join("events.jsonl"));
    let start = events.iter().find(|e| e["kind"] == "run_start").unwrap();
    start[key].clone()
}

/// A regression trains on the CPU engine (the `run_start` event says whose kernels
/// ran), with candle's autograd's numbers: every metric of every epoch, for each
/// loss.
#[test]
fn a_regression_trains_on_the_engine_with_candles_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for loss in ["mse", "mae", "huber"] {
        let mut runs = Vec::new();
        for kernels in ["rudder", "candle"] {
            let out = format!("{loss}-{kernels}");
            let args = [
                "train",
                "--data",
                "diabetes",
                "--loss",
                loss,
                "--huber-delta",
                "0.5",
                "--epochs",
                "4",
                "--kernels",
                kernels,
                "--out",
                &out,
                "--quiet",
            ];
            ok(&rudder(d, &args));
            assert_eq!(run_start(&d.join(&out), "kernels"), kernels);
            runs.push(jsonl(&d.join(&out).join("metrics.jsonl")));
        }
        assert_eq!(runs[0].len(), 4);
        for (a, b) in runs[0].iter().zip(&runs[1]) {
            for k in ["train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"] {
                let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{loss} {k}: engine {x} candle {y}"
                );
            }
        }
    }
}
