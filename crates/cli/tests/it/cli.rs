//! The binary: the default run learns, the run directory is complete, and bad input is
//! exit code 2 with one line that names what is wrong.

use std::fs;

use super::{jsonl, rudder, stderr};

#[test]
fn default_run_on_digits_learns_and_writes_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = rudder(tmp.path(), &["train", "--quiet", "--out", "run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("run");
    let m = jsonl(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 20, "the default is 20 epochs");
    for (i, r) in m.iter().enumerate() {
        assert_eq!(r["epoch"], i);
        // 1617 training digits in batches of 64: 26 steps per epoch.
        assert_eq!(r["step"], 26 * (i + 1));
        // The default policy: warmup over epoch 0, then cosine to zero; `lr` is the one
        // the epoch's last step used (step index 26 (i + 1) - 1).
        let s = (26 * (i + 1) - 1) as f64;
        let want = if i == 0 {
            0.1 * (0.1 + 0.9 * s / 26.0)
        } else {
            0.05 * (1.0 + (std::f64::consts::PI * (s - 26.0) / (520.0 - 26.0)).cos())
        };
        assert!(
            (r["lr"].as_f64().unwrap() - want).abs() < 1e-12,
            "epoch {i}: lr {} vs {want}",
            r["lr"]
        );
        assert_eq!(r["batch_size"], 64);
        assert!(r["samples_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["policy"].is_object());
    }
    let first = m[0]["train_loss"].as_f64().unwrap();
    let last = &m[19];
    assert!(
        last["train_loss"].as_f64().unwrap() < first / 5.0,
        "the loss falls: {first} -> {}",
        last["train_loss"]
    );
    assert!(
        last["val_acc"].as_f64().unwrap() >= 0.95,
        "val_acc {}",
        last["val_acc"]
    );
    let ev = jsonl(&run.join("events.jsonl"));
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let (ckpts, others): (Vec<&str>, Vec<&str>) = kinds.iter().partition(|k| **k == "checkpoint");
    assert_eq!(others, ["run_start", "run_end"]);
    // A checkpoint after every epoch, and `best` whenever val_loss improved.
    assert!(ckpts.len() > m.len(), "{kinds:?}");
    assert!(run.join("checkpoints/best/model.safetensors").is_file());
    assert!(ev[0]["time"].as_str().unwrap().ends_with('Z'));
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (
            cfg["data"].as_str(),
            cfg["lr"].as_f64(),
            cfg["epochs"].as_u64()
        ),
        (Some("digits"), Some(0.1), Some(20))
    );
    assert_eq!(cfg["policy"], serde_json::json!(["default"]));
    let report = fs::read_to_string(run.join("report.html")).unwrap();
    // Loss, accuracy and LR: the batch size never changed, so no chart of it.
    assert_eq!(report.matches("<svg").count(), 3);
    assert!(!report.contains("Batch size"));
    assert!((1..=20).all(|n| report.contains(&format!("<tr><td>{n}</td>"))));
    assert!(!report.contains("<tr><td>21</td>"));
    assert!(
        report.contains("<th>learning rate used</th>"),
        "the header says what ran"
    );
}

#[test]
fn same_seed_same_numbers_other_seed_other_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str, seed: &str| {
        let o = rudder(
            tmp.path(),
            &["train", "-q", "--epochs", "3", "--seed", seed, "--out", out],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        jsonl(&tmp.path().join(out).join("metrics.jsonl"))
            .into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("epoch_time_s");
                o.remove("samples_per_s");
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run("a", "7"), run("b", "7"));
    assert_ne!(run("a2", "7"), run("c", "8"));
}

#[test]
fn accumulation_takes_one_step_per_group_of_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "2",
            "--accumulation",
            "2",
            "--log-steps",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    // 26 batches per epoch, two per optimizer step.
    assert_eq!(
        (m[0]["step"].as_u64(), m[1]["step"].as_u64()),
        (Some(13), Some(26))
    );
    assert_eq!(m[1]["accumulation"], 2);
    let steps = jsonl(&tmp.path().join("r/steps.jsonl"));
    assert_eq!(steps.len(), 26);
    assert_eq!(steps[25]["step"], 26);
}

#[test]
fn a_one_cycle_run_writes_its_momentum_per_step_and_no_event_per_step() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--epochs",
            "2",
            "--policy",
            "lr/onecycle",
            "--log-steps",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let steps = jsonl(&tmp.path().join("r/steps.jsonl"));
    assert_eq!(steps.len(), 52);
    let column = |k: &str| -> Vec<f64> { steps.iter().map(|s| s[k].as_f64().unwrap()).collect() };
    let (lr, momentum) = (column("lr"), column("momentum"));
    // torch's OneCycleLR: momentum falls from max_momentum (0.95) to base_momentum
    // (0.85) while the LR rises, and rises while it falls.
    assert!((momentum[0] - 0.95).abs() < 1e-12, "{momentum:?}");
    let peak = (0..52).max_by(|&a, &b| lr[a].total_cmp(&lr[b])).unwrap();
    let lowest = (0..52)
        .min_by(|&a, &b| momentum[a].total_cmp(&momentum[b]))
        .unwrap();
    assert_eq!(peak, lowest);
    assert!(momentum[lowest] < 0.851, "{momentum:?}");
    for i in 1..52 {
        assert!(
            (lr[i] - lr[i - 1]) * (momentum[i] - momentum[i - 1]) <= 0.0,
            "step {i}"
        );
    }
    let events = jsonl(&tmp.path().join("r/events.jsonl"));
    let per_step: Vec<_> = events.iter().filter(|e| e["hook"] == "on_step").collect();
    assert!(per_step.is_empty(), "{per_step:?}");
}

#[test]
fn config_file_applies_and_the_command_line_wins() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("c.json"),
        r#"{"epochs": 2, "lr": 0.05, "hidden": [32], "optimizer": "adamw"}"#,
    )
    .unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train", "-q", "--config", "c.json", "--lr", "0.01", "--out", "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("r/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (cfg["epochs"].as_u64(), cfg["lr"].as_f64()),
        (Some(2), Some(0.01))
    );
    assert_eq!(
        (cfg["optimizer"].as_str(), cfg["lr_scaling"].as_str()),
        (Some("adamw"), Some("sqrt"))
    );
    assert_eq!(jsonl(&tmp.path().join("r/metrics.jsonl")).len(), 2);
}

/// Runs `args` in a temp dir holding `files`; expects exit 2 and one stderr line
/// containing every one of `needles`.
fn fails_with(files: &[(&str, &[u8])], args: &[&str], needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let p = tmp.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    let o = rudder(tmp.path(), args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
}

#[test]
fn an_existing_run_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(tmp.path(), &["train", "-q", "--epochs", "1", "--out", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rudder(tmp.path(), &["train", "-q", "--epochs", "1", "--out", "r"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("--out r: not empty (holds checkpoints, config.json, events.jsonl, ...)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(jsonl(&tmp.path().join("r/metrics.jsonl")).len(), 1);
}

#[test]
fn usage_errors_name_the_flag() {
    fails_with(&[], &["train", "--lrr", "0.1"], &["--lrr", "'--lr'"]);
    fails_with(&[], &["train", "--epochs", "many"], &["--epochs", "many"]);
    fails_with(
        &[],
        &["train", "--batch-size", "0"],
        &["--batch-size: must be at least 1"],
    );
    fails_with(
        &[],
        &["train", "--lr", "-1"],
        &["--lr: must be a finite number >= 0"],
    );
    fails_with(&[], &["train", "--model", "rnn"], &["--model", "rnn"]);
    fails_with(&[], &["train", "--nesterov"], &["--nesterov"]);
    fails_with(&[], &["train", "--device", "cuda"], &["--device cuda"]);
    fails_with(&[], &["train", "--device", "tpu"], &["--device", "tpu"]);
    fails_with(&[], &["trian"], &["trian"]);
}

#[test]
fn config_file_errors_name_file_line_and_column() {
    fails_with(
        &[("c.json", b"{\"lr\": 0.1,\n  \"lrr\": 2}")],
        &["train", "--config", "c.json"],
        &["c.json:2:7: unknown field `lrr`"],
    );
    fails_with(
        &[("c.json", b"{\"epochs\": 2.5}")],
        &["train", "--config", "c.json"],
        &["c.json:1:14: epochs: invalid type: floating point `2.5`"],
    );
    fails_with(
        &[("c.json", b"{\"momentum\": 1.5}")],
        &["train", "--config", "c.json"],
        &["c.json: momentum: must be < 1"],
    );
    fails_with(
        &[],
        &["train", "--config", "nope.json"],
        &["--config nope.json"],
    );
}

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

#[test]
fn data_errors_name_the_file_and_what_is_wrong() {
    fails_with(
        &[],
        &["train", "--data", "mnist", "--data-dir", "nowhere"],
        &["nowhere/train-images-idx3-ubyte", "missing"],
    );
    let mut images = idx_header(0x803, &[2, 2, 2]);
    images.extend([0u8; 8]);
    let labels = [idx_header(0x801, &[2]), vec![1, 0]].concat();
    let bad_magic = [idx_header(0x802, &[2, 2, 2]), vec![0; 8]].concat();
    fails_with(
        &[
            ("d/train-images-idx3-ubyte", &bad_magic),
            ("d/train-labels-idx1-ubyte", &labels),
        ],
        &["train", "--data", "mnist", "--data-dir", "d"],
        &["d/train-images-idx3-ubyte: bad IDX magic 0x00000802"],
    );
    fails_with(
        &[
            ("d/train-images-idx3-ubyte", &images[..20]),
            ("d/train-labels-idx1-ubyte", &labels),
        ],
        &["train", "--data", "mnist", "--data-dir", "d"],
        &["d/train-images-idx3-ubyte: truncated: 4 data bytes, the header promises 8"],
    );
    let three_labels = [idx_header(0x801, &[3]), vec![1, 0, 1]].concat();
    fails_with(
        &[
            ("d/train-images-idx3-ubyte", &images),
            ("d/train-labels-idx1-ubyte", &three_labels),
        ],
        &["train", "--data", "mnist", "--data-dir", "d"],
        &["d/train-labels-idx1-ubyte: 3 labels for 2 images"],
    );
    fails_with(
        &[("t.csv", b"1,2,0\n3,4,1\n5,1\n")],
        &["train", "--data", "t.csv"],
        &["t.csv:3:1: ragged row"],
    );
    fails_with(
        &[("t.csv", b"1,2,0\n3,oops,1\n")],
        &["train", "--data", "t.csv"],
        &["t.csv:2:2: not a finite number"],
    );
    fails_with(
        &[],
        &["train", "--data", "none.csv"],
        &["none.csv: no such file"],
    );
    let three_wide = "1,2,3,0\n3,4,5,1\n".repeat(10);
    fails_with(
        &[("t.csv", three_wide.as_bytes())],
        &["train", "--data", "t.csv", "--model", "cnn"],
        &["--model cnn needs images"],
    );
}

#[test]
fn a_csv_with_a_header_trains() {
    let tmp = tempfile::tempdir().unwrap();
    // Two separable blobs.
    let mut csv = String::from("x,y,label\n");
    for i in 0..200 {
        let (c, l) = if i % 2 == 0 { (-1.0, 0) } else { (1.0, 1) };
        csv.push_str(&format!(
            "{},{},{l}\n",
            c + (i % 7) as f64 * 0.05,
            c - (i % 5) as f64 * 0.05
        ));
    }
    fs::write(tmp.path().join("blobs.csv"), csv).unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train",
            "-q",
            "--data",
            "blobs.csv",
            "--epochs",
            "5",
            "--hidden",
            "8",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert_eq!(m[4]["val_acc"], 1.0);
}

#[test]
fn a_few_thousand_mnist_images_are_learned_by_the_mlp() {
    let Some(csv) = super::data_path("mnist_5k.csv.gz") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let csv = csv.to_str().unwrap();
    let o = rudder(
        tmp.path(),
        &["train", "-q", "--data", csv, "--epochs", "3", "--out", "r"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    // 4500 training images, 500 held out.
    assert_eq!(m[0]["step"], 4500_usize.div_ceil(64));
    assert!(
        m[2]["val_acc"].as_f64().unwrap() >= 0.9,
        "val_acc {}",
        m[2]["val_acc"]
    );
}

#[test]
fn the_cnn_learns_8x8_digits() {
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(
        tmp.path(),
        &[
            "train", "-q", "--model", "cnn", "--epochs", "4", "--lr", "0.05", "--out", "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = jsonl(&tmp.path().join("r/metrics.jsonl"));
    assert!(
        m[3]["val_acc"].as_f64().unwrap() >= 0.9,
        "val_acc {}",
        m[3]["val_acc"]
    );
}
