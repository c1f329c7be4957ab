//! `--tensorboard`: the event files are read back by the real `tensorboard` Python
//! package's event reader (from PyPI, in `.venv`, which `.ci/run` installs): the
//! scalars equal `metrics.jsonl`, policy events are text summaries, a sweep has a
//! run per trial, and a resume that replays epochs leaves each epoch once.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{jsonl, rudder, stderr};

/// The Python of the venv that has `tensorboard`: `$RUDDER_PYTHON`, else `.venv`.
fn python() -> Option<PathBuf> {
    let p = std::env::var_os("RUDDER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{}: no tensorboard package (.ci/run installs it)",
            p.display()
        );
    }
    super::skip(
        "the TensorBoard read-back: no .venv with the tensorboard package (python3 -m venv .venv && .venv/bin/pip install tensorboard)",
    );
    None
}

/// What TensorBoard reads in `dir`: `{scalars: {tag: [[step, value]]}, texts: {tag:
/// [[step, text]]}, hparams: {start: {name: value}, end: status}}` (the HParams
/// plugin's data parsed by the plugin's own functions).
fn read(py: &Path, dir: &Path) -> Value {
    let script = r#"
import json, sys
from google.protobuf.json_format import MessageToDict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata
ea = EventAccumulator(sys.argv[1]); ea.Reload()
texts = {}
for t in ea.Tags()["tensors"]:
    shown = [[e.step, e.tensor_proto.string_val[0].decode()] for e in ea.Tensors(t) if e.tensor_proto.string_val]
    if shown:
        texts[t] = shown
hparams = {}
try:
    content = ea.PluginTagToContent(metadata.PLUGIN_NAME)
except KeyError:
    content = {}
if metadata.SESSION_START_INFO_TAG in content:
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    hparams["start"] = {k: MessageToDict(v) for k, v in start.hparams.items()}
if metadata.SESSION_END_INFO_TAG in content:
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    hparams["end"] = api_pb2.Status.Name(end.status)
out = {"scalars": {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]},
       "texts": texts, "hparams": hparams}
print(json.dumps(out))
"#;
    let o = Command::new(py)
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Each `metrics.jsonl` field equals its scalar (as f32), one point per epoch.
fn matches_metrics(tb: &Value, run: &Path) {
    let m = jsonl(&run.join("metrics.jsonl"));
    for (tag, key) in [
        ("loss/train", "train_loss"),
        ("loss/val", "val_loss"),
        ("accuracy/val", "val_acc"),
        ("lr", "lr"),
        ("batch_size", "batch_size"),
    ] {
        let points = tb["scalars"][tag].as_array().unwrap();
        assert_eq!(points.len(), m.len(), "{tag}: {points:?}");
        for (p, r) in points.iter().zip(&m) {
            assert_eq!(
                p[0],
                r["epoch"].as_u64().unwrap() + 1,
                "{tag}: step = epoch number"
            );
            // TensorBoard keeps f32.
            let (got, want) = (p[1].as_f64().unwrap(), r[key].as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{tag} at {}: {got} {want}",
                p[0]
            );
        }
    }
}

#[test]
fn tensorboard_reads_back_what_the_run_recorded() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("p.rhai"),
        "fn on_epoch_end(ctx) { if ctx.epoch == 1 { #{ log: \"halfway\", metrics: #{ n: 3 } } } }\n",
    )
    .unwrap();
    let o = rudder(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "3",
            "--policy",
            "p.rhai",
            "--tensorboard",
            "tb",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let tb = read(&py, &d.join("tb/r"));
    matches_metrics(&tb, &d.join("r"));
    assert_eq!(tb["scalars"]["policy/n"], serde_json::json!([[2, 3.0]]));
    assert_eq!(
        tb["texts"]["events/log"],
        serde_json::json!([[2, "log: halfway"]])
    );

    // A sweep: a TensorBoard run per trial, under the sweep's folder name.
    let o = rudder(
        d,
        &[
            "sweep",
            "-q",
            "--epochs",
            "2",
            "--multipliers",
            "1,2",
            "--tensorboard",
            "tb",
            "--out",
            "sw",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for trial in ["x1", "x2"] {
        matches_metrics(
            &read(&py, &d.join("tb/sw").join(trial)),
            &d.join("sw").join(trial),
        );
    }

    // The same from a `--config` file's `tensorboard` key.
    std::fs::write(d.join("c.json"), r#"{"epochs": 2, "tensorboard": "tb2"}"#).unwrap();
    let o = rudder(d, &["train", "-q", "--config", "c.json", "--out", "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    matches_metrics(&read(&py, &d.join("tb2/c")), &d.join("c"));
}

#[test]
fn a_resume_that_replays_epochs_leaves_each_once() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Checkpoints after epochs 2 and 4 (at LR 0 the `best` one stays at epoch 1);
    // killed in epoch 4 (digits: 26 steps an epoch), so the resume replays epoch 3,
    // which TensorBoard already has.
    let args = [
        "train",
        "--epochs",
        "5",
        "--checkpoint-every",
        "2",
        "--lr",
        "0",
        "--policy",
        "lr/constant",
        "--tensorboard",
        "tb",
        "--out",
        "r",
    ];
    let mut child = Command::new(super::bin())
        .args(args)
        .current_dir(d)
        .env("RUDDER_FAULT", "step:83")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let reached = std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .any(|l| l.unwrap().contains("fault point step:83 reached"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached);
    let o = rudder(d, &["train", "-q", "--resume", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tb = read(&py, &d.join("tb/r"));
    matches_metrics(&tb, &d.join("r"));
}

#[test]
fn steps_hyperparameters_config_and_sources_reach_tensorboard() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "-q", "--log-steps", "--tensorboard", "tb"];
        args.extend_from_slice(extra);
        let o = rudder(d, &args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    train(&[
        "--epochs",
        "2",
        "--policy",
        "lr/cosine",
        "--param",
        "eta_min=0.001",
        "--out",
        "r",
    ]);
    // Resumed for a third epoch: each step once in TensorBoard, as in steps.jsonl.
    train(&["--resume", "r", "--epochs", "3"]);
    let steps = jsonl(&d.join("r/steps.jsonl"));
    let tb = read(&py, &d.join("tb/r/steps"));
    for (tag, key) in [("loss/train_step", "loss"), ("lr_step", "lr")] {
        let points = tb["scalars"][tag].as_array().unwrap();
        assert_eq!(points.len(), steps.len(), "{tag}");
        for (p, s) in points.iter().zip(&steps) {
            assert_eq!(p[0], s["step"], "{tag}: the optimizer step");
            let (got, want) = (p[1].as_f64().unwrap(), s[key].as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{tag}: {got} {want}"
            );
        }
    }
    let tb = read(&py, &d.join("tb/r"));
    let start = &tb["hparams"]["start"];
    assert_eq!(start["lr"], 0.1, "{start}");
    assert_eq!(start["optimizer"], "sgd");
    // TensorBoard keeps a run's first session start (a resume writes its own too).
    assert_eq!(start["epochs"], 2.0);
    assert_eq!(start["lr/cosine.eta_min"], 0.001);
    assert_eq!(tb["hparams"]["end"], "STATUS_SUCCESS");
    let config = tb["texts"]["config"][0][1].as_str().unwrap();
    assert!(config.contains("\"batch_size\": 64"), "{config}");
    let source = tb["texts"]["policies/lr/cosine"][0][1].as_str().unwrap();
    assert!(source.contains("CosineAnnealingLR"), "{source}");
}
