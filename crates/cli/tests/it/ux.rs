//! What a person reads: epochs counted from 1 wherever people read them (and from 0
//! in the JSON files), report markers that say what happened, an lr-find chart that
//! shows the curve that matters, errors that name the way out, and no surprises.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::{jsonl, rudder, stderr};

fn write(d: &Path, name: &str, text: &str) {
    fs::write(d.join(name), text).unwrap();
}

#[test]
fn epochs_are_counted_from_one_for_people_and_from_zero_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "say.rhai",
        "fn on_epoch_end(ctx) { #{ log: `policy saw epoch ${ctx.epoch_number} (index ${ctx.epoch})` } }\n",
    );
    let o = rudder(
        d,
        &[
            "train", "--epochs", "3", "--policy", "say.rhai", "--out", "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    // The summary line of an epoch, then what its on_epoch_end said about it.
    for n in 1..=3 {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("epoch {n:>3}/3")))
            .unwrap_or_else(|| panic!("no line for epoch {n}: {err}"));
        assert_eq!(
            lines[at + 1],
            format!("policy saw epoch {n} (index {})", n - 1),
            "{err}"
        );
    }
    assert!(err.contains("done: 3 epochs,"), "{err}");
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let epochs: Vec<u64> = m.iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [0, 1, 2], "JSON keeps 0-based indexes");
    let page = fs::read_to_string(d.join("r/report.html")).unwrap();
    assert!(page.contains("<tr><td>1</td>") && page.contains("<tr><td>3</td>"));
    assert!(!page.contains("<tr><td>0</td>"));
    // A resume says where it is as people count.
    let o = rudder(d, &["train", "--resume", "r", "--epochs", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resumed after epoch 3, at step 78"),
        "{}",
        stderr(&o)
    );
    let o = rudder(d, &["train", "--epochs", "1", "--out", "one"]);
    assert!(stderr(&o).contains("done: 1 epoch,"), "{}", stderr(&o));
}

#[test]
fn restored_weights_are_the_numbers_the_summary_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = rudder(
        d,
        &[
            "train",
            "--epochs",
            "40",
            "--lr",
            "0.5",
            "--policy",
            "stop/early_stop",
            "--param",
            "restore_best_weights=true",
            "--param",
            "patience=2",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let (best, row) = m
        .iter()
        .enumerate()
        .min_by(|a, b| {
            a.1["val_loss"]
                .as_f64()
                .partial_cmp(&b.1["val_loss"].as_f64())
                .unwrap()
        })
        .unwrap();
    let err = stderr(&o);
    let n = best + 1;
    assert!(
        err.contains(&format!(
            "rolled back to checkpoints/best (after epoch {n},"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "weights of epoch {n} (restored): val_acc {:.4}, val_loss {:.4}",
            row["val_acc"].as_f64().unwrap(),
            row["val_loss"].as_f64().unwrap()
        )),
        "{err}"
    );
    // The stop reason's numbers are rounded for reading.
    let reason = err.lines().find(|l| l.starts_with("stopping:")).unwrap();
    let best_text = reason
        .rsplit("(best ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert!(best_text.len() <= 6, "{reason}");
}

/// The hover texts (`<title>`) of a chart's event markers, by the SVG of each chart.
fn marker_titles(page: &str) -> Vec<Vec<String>> {
    page.split("<svg viewBox=\"0 0 520")
        .skip(1)
        .map(|chart| {
            chart
                .split("<g class=\"event\"><title>")
                .skip(1)
                .map(|t| t.split("</title>").next().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn report_markers_say_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "demo.rhai",
        "fn on_epoch_end(ctx) {\n\
           if ctx.epoch == 2 { return #{ log: \"asked for a save\", save: \"mid\" }; }\n\
           if ctx.epoch == 4 { throw \"boom\"; }\n\
           if ctx.epoch == 6 { return #{ batch_size: 128 }; }\n\
           if ctx.epoch == 8 { return #{ bogus: 1 }; }\n\
         }\n",
    );
    let o = rudder(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "10",
            "--policy",
            "lr/step",
            "--param",
            "step_size=4",
            "--policy",
            "demo.rhai",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let page = fs::read_to_string(d.join("r/report.html")).unwrap();
    // One legend, of the kinds there are.
    for kind in [
        "decision",
        "log",
        "checkpoint (save)",
        "policy error",
        "invalid decision",
    ] {
        assert!(
            page.contains(&format!("</svg>{kind}</span>")),
            "{kind} not in the legend"
        );
    }
    assert!(!page.contains("</svg>rollback</span>"));
    let charts = marker_titles(&page);
    assert_eq!(charts.len(), 4);
    let titles = &charts[0];
    // lr/step's per-epoch LR decisions are the LR curve, not markers: epoch 3 (the
    // save: decision, log, checkpoint), 5 (error), 7 (batch size), 9 (invalid).
    assert_eq!(titles.len(), 6, "{titles:#?}");
    let find = |needle: &str| {
        titles
            .iter()
            .find(|t| t.contains(needle))
            .unwrap_or_else(|| panic!("no marker with {needle:?}: {titles:#?}"))
    };
    assert!(find("batch_size: 128").starts_with("epoch 7: decision (demo, on_epoch_end)"));
    assert!(find("policy error").contains("demo.rhai:3:"));
    assert!(find("policy error").contains(": boom"));
    assert!(find("invalid decision").contains("bogus"));
    assert!(find("epoch 3: log: ").contains("asked for a save"));
    assert!(find("checkpoint").contains("checkpoints/mid"));
    // Errors are drawn as solid lines through the chart, the rest dashed.
    let solid = page.matches("stroke-opacity=\"0.85\"").count();
    assert_eq!(solid, 2 * 4, "two error markers in each of four charts");

    // Ten runs on one page: markers of one kind in one epoch merge across runs.
    let mut dirs = Vec::new();
    for i in 0..10 {
        let out = format!("c{i}");
        let o = rudder(
            d,
            &[
                "train",
                "-q",
                "--epochs",
                "10",
                "--policy",
                "demo.rhai",
                "--seed",
                &i.to_string(),
                "--out",
                &out,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        dirs.push(out);
    }
    let mut args = vec!["report"];
    args.extend(dirs.iter().map(String::as_str));
    let o = rudder(d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = fs::read_to_string(d.join("compare.html")).unwrap();
    let charts = marker_titles(&page);
    assert_eq!(charts[0].len(), 6, "{:#?}", charts[0]);
    let error = charts[0]
        .iter()
        .find(|t| t.contains("policy error"))
        .unwrap();
    assert!(
        error.contains("c0: policy error") && error.contains("... and 5 more"),
        "{error}"
    );
    assert!(
        page.contains(">10</text>"),
        "the merged marker counts its ten events"
    );
}

#[test]
fn the_lr_find_chart_shows_the_curve_that_matters() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // On digits the raw loss spikes to thousands before the test stops.
    let o = rudder(d, &["lr-find", "--out", "lf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value =
        serde_json::from_str(&fs::read_to_string(d.join("lf/lr_find.json")).unwrap()).unwrap();
    let smoothed: Vec<f64> = report["smoothed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let raw_max = report["losses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    assert!(
        raw_max > 10.0 * smoothed[0],
        "the raw loss ran away: {raw_max}"
    );
    let svg = fs::read_to_string(d.join("lf/lr_find.svg")).unwrap();
    // The y ticks span the smoothed curve, not the spike.
    let ticks: Vec<f64> = svg
        .split("text-anchor=\"end\">")
        .skip(1)
        .filter_map(|t| t.split('<').next()?.parse().ok())
        .collect();
    let top = ticks.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        top <= 1.6 * smoothed[0],
        "y ticks {ticks:?}, smoothed starts at {}",
        smoothed[0]
    );
    for label in [
        "loss per step",
        "smoothed (EMA 0.98)",
        ">loss<",
        "learning rate (log scale)",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    // The suggestions' labels: none overlaps another.
    let tags: Vec<(f64, f64, usize)> = svg
        .split("<text font-weight=\"600\" x=\"")
        .skip(1)
        .map(|t| {
            let x: f64 = t.split('"').next().unwrap().parse().unwrap();
            let y: f64 = t
                .split("y=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let text = t.split('>').nth(1).unwrap().split('<').next().unwrap();
            (x, y, text.chars().count())
        })
        .collect();
    assert!(!tags.is_empty());
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            let same_row = (a.1 - b.1).abs() < 1.0;
            let (left, right) = if a.0 < b.0 { (a, b) } else { (b, a) };
            assert!(
                !same_row || left.0 + 6.5 * left.2 as f64 <= right.0,
                "labels overlap: {tags:?}"
            );
        }
    }
}

#[test]
fn errors_name_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let one_line = |args: &[&str], needles: &[&str]| {
        let o = rudder(d, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
        }
    };
    one_line(
        &["train", "--model", "resnet"],
        &["expected mlp, cnn or a model file FILE.json, got \"resnet\""],
    );
    one_line(
        &["train", "--data", "mnistt"],
        &[
            "not one of digits, diabetes, mnist, fashion-mnist",
            "did you mean mnist?",
        ],
    );
    write(d, "halve.rhai", "fn on_epoch_start(ctx) { () }\n");
    one_line(
        &["train", "--policy", "halve"],
        &["there is a file halve.rhai here: --policy ./halve.rhai"],
    );
    one_line(&["train", "--policy", "cosin"], &["did you mean cosine?"]);
    let o = rudder(
        d,
        &[
            "sweep",
            "-q",
            "--epochs",
            "1",
            "--multipliers",
            "1,2",
            "--out",
            "sw",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A sweep's folder stands for its trials, finished or not (a sweep stopped
    // part-way has no sweep.json, and its finished trials are still drawn).
    std::fs::remove_file(d.join("sw/sweep.json")).unwrap();
    let o = rudder(d, &["report", "sw", "--out", "c.html"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(d.join("c.html")).unwrap();
    assert!(page.contains("2 run(s)") && page.contains("x1") && page.contains("x2"));
    std::fs::create_dir(d.join("empty")).unwrap();
    one_line(
        &["report", "empty"],
        &["empty: no metrics.jsonl there (not a run directory)"],
    );
}

#[test]
fn nothing_changes_or_lands_by_surprise() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = rudder(
        d,
        &[
            "train",
            "--epochs",
            "1",
            "--batch-size",
            "100000",
            "--out",
            "runs/r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("--batch-size 100000 is more than the 1617 training examples; using 1617"),
        "{}",
        stderr(&o)
    );
    // `report` writes beside the first run.
    let o = rudder(d, &["report", "runs/r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("runs/compare.html").is_file());
    assert!(!d.join("report.html").exists() && !d.join("compare.html").exists());
    // policy list: aligned columns, whole words.
    let o = rudder(&super::repo(), &["policy", "list"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let file_col: Vec<usize> = out
        .lines()
        .map(|l| {
            l.find("scripts/")
                .or_else(|| l.find("plugins/"))
                .or_else(|| l.find("<embedded>"))
                .unwrap()
        })
        .collect();
    assert!(file_col.windows(2).all(|w| w[0] == w[1]), "{out}");
    assert!(
        out.contains("Smith et al. 2017"),
        "an abbreviation is not a sentence's end: {out}"
    );
    // policy check of a policy without params or hooks.
    write(d, "bare.rhai", "fn helper() { 1 }\n");
    let o = rudder(d, &["policy", "check", "bare.rhai"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("hooks (none); params (none)"), "{out}");
    // --help shows examples.
    for args in [vec!["--help"], vec!["train", "--help"]] {
        let o = rudder(d, &args);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Examples:"),
            "{args:?}"
        );
    }
}
