//! The LR workflow end to end: `rescale`, `lr-find`, `sweep`, `report` (rendered in
//! headless Chromium).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{data_path, jsonl, rudder, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn rescale_carries_the_papers_lr_to_batch_64() {
    let d = tempfile::tempdir().unwrap();
    let args = [
        "rescale",
        "--lr",
        "16",
        "--batch-size",
        "1024",
        "--to-batch-size",
        "64",
    ];
    let o = rudder(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\n");
    let o = rudder(d.path(), &[&args[..], &["--rule", "sqrt"]].concat());
    assert_eq!(stdout(&o), "4\n");
    let o = rudder(
        d.path(),
        &[
            &args[..],
            &["--dataset-size", "60000", "--epochs", "10", "--json"],
        ]
        .concat(),
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["to"]["lr"], 1.0);
    assert_eq!(
        (
            v["from"]["steps_per_epoch"].as_u64(),
            v["to"]["steps_per_epoch"].as_u64()
        ),
        (Some(59), Some(938))
    );
    assert_eq!(
        (v["from"]["updates"].as_u64(), v["to"]["updates"].as_u64()),
        (Some(590), Some(9380))
    );
    let o = rudder(
        d.path(),
        &[
            "rescale",
            "--lr",
            "16",
            "--batch-size",
            "0",
            "--to-batch-size",
            "64",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn lr_find_ramps_stops_when_the_loss_runs_away_and_suggests() {
    let d = tempfile::tempdir().unwrap();
    let o = rudder(d.path(), &["lr-find", "--out", "lf", "--steps", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json_file(&d.path().join("lf/lr_find.json"));
    let lrs: Vec<f64> = r["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Exponential: a constant ratio between steps, from 1e-7 toward 10.
    assert!((lrs[0] - 1e-7).abs() < 1e-20);
    let ratio = (10f64 / 1e-7).powf(1.0 / 99.0);
    for w in lrs.windows(2) {
        assert!((w[1] / w[0] - ratio).abs() < 1e-9);
    }
    // Stopped before 10: at 10 the loss of plain SGD on the MLP has run away.
    assert_eq!(r["stopped_early"], true);
    assert!(lrs.len() < 100 && lrs.len() > 50, "{}", lrs.len());
    assert_eq!(r["losses"].as_array().unwrap().len(), lrs.len());
    let s = &r["suggestion"];
    for k in ["steepest", "valley", "minimum"] {
        let v = s[k].as_f64().unwrap();
        assert!(v > 1e-7 && v < 10.0, "{k} {v}");
    }
    let printed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(&printed, s);
    let svg = std::fs::read_to_string(d.path().join("lf/lr_find.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns") && svg.contains("valley"));
}

#[test]
fn lr_finds_valley_on_mnist_trains_the_mlp_to_97_percent_in_3_epochs() {
    let Some(mnist) = data_path("mnist") else {
        return;
    };
    let dir = mnist.display().to_string();
    let d = tempfile::tempdir().unwrap();
    let base = [
        "--data",
        "mnist",
        "--data-dir",
        dir.as_str(),
        "--optimizer",
        "adamw",
    ];
    let o = rudder(d.path(), &[&["lr-find", "--out", "lf"], &base[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let valley = json_file(&d.path().join("lf/lr_find.json"))["suggestion"]["valley"]
        .as_f64()
        .unwrap();
    let lr = valley.to_string();
    let o = rudder(
        d.path(),
        &[
            &[
                "train",
                "--epochs",
                "3",
                "--quiet",
                "--watch",
                "off",
                "--out",
                "r",
                "--lr",
                lr.as_str(),
            ],
            &base[..],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let last = jsonl(&d.path().join("r/metrics.jsonl")).pop().unwrap();
    assert!(
        last["val_acc"].as_f64().unwrap() >= 0.97,
        "valley {valley}: {last}"
    );
}

#[test]
fn a_sweep_runs_a_trial_per_multiplier_marks_divergence_and_names_a_winner() {
    let d = tempfile::tempdir().unwrap();
    let o = rudder(
        d.path(),
        &[
            "sweep",
            "--epochs",
            "4",
            "--out",
            "sw",
            "--multipliers",
            "1,4,0.25,200",
            "--jobs",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json_file(&d.path().join("sw/sweep.json"));
    let trials = s["trials"].as_array().unwrap();
    let dirs: Vec<&str> = trials.iter().map(|t| t["dir"].as_str().unwrap()).collect();
    assert_eq!(dirs, ["x1", "x4", "x0.25", "x200"]);
    // Same seed and data order: each trial is the run `train --lr` would give.
    let o = rudder(
        d.path(),
        &[
            "train", "--epochs", "4", "--quiet", "--watch", "off", "--lr", "0.4", "--out", "alone",
        ],
    );
    assert!(o.status.success());
    let strip = |p: &Path| -> Vec<Value> {
        jsonl(p)
            .into_iter()
            .map(|mut v| {
                v.as_object_mut()
                    .unwrap()
                    .retain(|k, _| k != "epoch_time_s" && k != "samples_per_s");
                v
            })
            .collect()
    };
    assert_eq!(
        strip(&d.path().join("sw/x4/metrics.jsonl")),
        strip(&d.path().join("alone/metrics.jsonl"))
    );
    // LR 20 blows up: stopped within its first epoch and marked.
    let big = &trials[3];
    assert_eq!(big["diverged"], true);
    assert_eq!(big["epochs_run"], 1);
    let stop = jsonl(&d.path().join("sw/x200/events.jsonl"))
        .into_iter()
        .find(|e| e["kind"] == "stop")
        .unwrap();
    assert!(stop["reason"].as_str().unwrap().starts_with("diverged"));
    // The winner has the lowest best val_loss among those that did not diverge.
    let w = s["winner"].as_u64().unwrap() as usize;
    let score = |t: &Value| t["score"].as_f64().unwrap_or(f64::INFINITY);
    for t in trials.iter().filter(|t| t["diverged"] == false) {
        assert!(score(&trials[w]) <= score(t));
    }
    assert_eq!(trials[w]["dir"], "x4");
    let page = std::fs::read_to_string(d.path().join("sw/report.html")).unwrap();
    // Four runs: a solid and a dashed loss line each, on a log scale.
    assert!(page.contains("Loss (log scale)"));
    assert_eq!(page.matches("stroke-dasharray=\"5 4\"").count(), 2 * 4);
}

#[test]
fn a_sweep_of_the_mnist_mlp_over_the_five_multipliers() {
    let Some(mnist) = data_path("mnist") else {
        return;
    };
    let dir = mnist.display().to_string();
    let d = tempfile::tempdir().unwrap();
    let o = rudder(
        d.path(),
        &[
            "sweep",
            "--data",
            "mnist",
            "--data-dir",
            dir.as_str(),
            "--epochs",
            "3",
            "--out",
            "sw",
            "--jobs",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json_file(&d.path().join("sw/sweep.json"));
    let lrs: Vec<f64> = s["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, [0.1, 0.2, 0.4, 0.05, 0.025]);
    assert!(s["winner"].is_u64());
    let e = stderr(&o);
    assert!(e.contains("winner: x"), "{e}");
    let page = std::fs::read_to_string(d.path().join("sw/report.html")).unwrap();
    assert_eq!(
        page.matches("stroke-dasharray=\"5 4\"").count(),
        2 * 5,
        "five runs' train curves"
    );
}

/// Debian's Chromium, if installed (`.ci/run` installs it).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is missing: .ci/run installs it");
        }
        super::skip("chromium is not installed (apt-get install chromium)");
    }
    found
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let d = tempfile::tempdir().unwrap();
    for (out, lr) in [("a", "0.1"), ("b", "0.4")] {
        let o = rudder(
            d.path(),
            &[
                "train", "--epochs", "4", "--quiet", "--watch", "off", "--lr", lr, "--out", out,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = rudder(d.path(), &["report", "a", "b", "--out", "both.html"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(d.path().join("both.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(page.contains(">a<") && page.contains(">b<"));
    let o = rudder(d.path(), &["report", "nothing-here"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing-here: no metrics.jsonl there"));

    let Some(chrome) = chromium() else {
        return;
    };
    let shot = d.path().join("shot.png");
    let status = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            d.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", d.path().join("both.html").display()))
        .output()
        .expect("chromium runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Not blank: decode the PNG and find the charts' colours in it.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 900));
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let near = |p: &[u8], rgb: [u8; 3]| (0..3).all(|c| (p[c] as i32 - rgb[c] as i32).abs() <= 12);
    let count = |rgb| pixels.iter().filter(|p| near(p, rgb)).count();
    let (blue, orange, header) = (
        count([0x3b, 0x5b, 0xdb]),
        count([0xe8, 0x59, 0x0c]),
        count([0x1d, 0x23, 0x30]),
    );
    assert!(
        blue > 200 && orange > 200,
        "the two runs' lines: {blue} blue, {orange} orange pixels"
    );
    assert!(header > 20_000, "the dark header: {header} pixels");
    let distinct: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 50, "{} colours", distinct.len());
}
