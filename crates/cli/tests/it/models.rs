//! Model files (`--model FILE.json`; the book's File formats page,
//! docs/src/reference/file-formats.md) and dropout: a file that spells out a built-in
//! model trains exactly as it does, every layer type trains, shapes are checked before
//! training, and dropout's masks survive a resume.

use std::path::Path;

use serde_json::Value;

use super::{jsonl, rudder, stderr};

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// The lines of metrics.jsonl without the timings.
fn metrics(dir: &Path) -> Vec<Value> {
    jsonl(&dir.join("metrics.jsonl"))
        .into_iter()
        .map(|mut v| {
            let m = v.as_object_mut().unwrap();
            m.remove("epoch_time_s");
            m.remove("samples_per_s");
            v
        })
        .collect()
}

fn weights(dir: &Path, ck: &str) -> Vec<u8> {
    std::fs::read(dir.join("checkpoints").join(ck).join("model.safetensors")).unwrap()
}

#[test]
fn files_that_spell_out_the_built_in_models_train_exactly_as_they_do() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("mlp.json"),
        r#"[{"type":"linear","out":32},{"type":"relu"},{"type":"linear","out":16},{"type":"relu"},{"type":"linear"}]"#,
    )
    .unwrap();
    std::fs::write(
        d.join("cnn.json"),
        r#"[
  {"type":"conv2d","out":4,"kernel":3,"bias":false},{"type":"batchnorm"},{"type":"relu"},{"type":"maxpool2d"},
  {"type":"conv2d","out":8,"kernel":3,"padding":1,"bias":false},{"type":"batchnorm"},{"type":"relu"},{"type":"maxpool2d","kernel":2},
  {"type":"flatten"},{"type":"linear"}
]"#,
    )
    .unwrap();
    let common = ["train", "--quiet", "--epochs", "3"];
    for (file, builtin) in [
        (&["--model", "mlp.json"][..], &["--hidden", "32,16"][..]),
        (
            &["--model", "cnn.json", "--threads", "2"][..],
            &["--model", "cnn", "--channels", "4,8"][..],
        ),
    ] {
        let a: Vec<&str> = common
            .iter()
            .chain(file)
            .chain(&["--out", "a"])
            .copied()
            .collect();
        let b: Vec<&str> = common
            .iter()
            .chain(builtin)
            .chain(&["--out", "b"])
            .copied()
            .collect();
        ok(&rudder(d, &a));
        ok(&rudder(d, &b));
        assert_eq!(metrics(&d.join("a")), metrics(&d.join("b")), "{file:?}");
        assert_eq!(
            weights(&d.join("a"), "epoch-2"),
            weights(&d.join("b"), "epoch-2")
        );
        std::fs::remove_dir_all(d.join("a")).unwrap();
        std::fs::remove_dir_all(d.join("b")).unwrap();
    }
}

#[test]
fn a_model_with_every_layer_type_learns_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("all.json"),
        r#"[
  {"type":"conv2d","out":8,"kernel":3},{"type":"batchnorm"},{"type":"gelu"},
  {"type":"residual","layers":[{"type":"conv2d","out":8,"kernel":1},{"type":"tanh"}]},
  {"type":"maxpool2d"},{"type":"conv2d","out":8,"kernel":5,"stride":1},{"type":"relu"},
  {"type":"avgpool2d","kernel":2},{"type":"flatten"},{"type":"layernorm"},
  {"type":"dropout","p":0.1},{"type":"linear","out":32},{"type":"sigmoid"},{"type":"linear"}
]"#,
    )
    .unwrap();
    let args = |epochs: &'static str, out: &'static str| {
        [
            "train",
            "--quiet",
            "--model",
            "all.json",
            "--policy",
            "lr/constant",
            "--lr",
            "0.2",
            "--epochs",
            epochs,
            "--out",
            out,
        ]
    };
    ok(&rudder(d, &args("8", "whole")));
    let m = metrics(&d.join("whole"));
    let acc = m.last().unwrap()["val_acc"].as_f64().unwrap();
    assert!(acc >= 0.6, "val_acc {acc} (chance is 0.1)");
    // The same run in two parts: the same numbers, dropout's masks included.
    ok(&rudder(d, &args("4", "parts")));
    ok(&rudder(
        d,
        &["train", "--quiet", "--resume", "parts", "--epochs", "8"],
    ));
    let (a, b) = (metrics(&d.join("whole")), metrics(&d.join("parts")));
    for (x, y) in a.iter().zip(&b) {
        for k in ["train_loss", "train_acc", "val_loss", "val_acc"] {
            assert_eq!(x[k], y[k], "epoch {}: {k}", x["epoch"]);
        }
    }
    assert_eq!(a.len(), b.len());
    assert_eq!(
        weights(&d.join("whole"), "epoch-7"),
        weights(&d.join("parts"), "epoch-7")
    );
}

#[test]
fn dropout_on_the_built_in_mlp_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = [
        "train",
        "--quiet",
        "--dropout",
        "0.3",
        "--policy",
        "lr/constant",
        "--epochs",
    ];
    let run = |epochs: &str, out: &str| {
        let a: Vec<&str> = base.iter().copied().chain([epochs, "--out", out]).collect();
        ok(&rudder(d, &a));
    };
    run("4", "whole");
    run("2", "parts");
    ok(&rudder(
        d,
        &["train", "--quiet", "--resume", "parts", "--epochs", "4"],
    ));
    let (a, b) = (metrics(&d.join("whole")), metrics(&d.join("parts")));
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["train_loss"], y["train_loss"]);
        assert_eq!(x["val_loss"], y["val_loss"]);
    }
    assert_eq!(
        weights(&d.join("whole"), "epoch-3"),
        weights(&d.join("parts"), "epoch-3")
    );
    // Dropout changed the training: not the run without it.
    ok(&rudder(
        d,
        &[
            "train",
            "--quiet",
            "--policy",
            "lr/constant",
            "--epochs",
            "1",
            "--out",
            "plain",
        ],
    ));
    assert_ne!(
        a[0]["train_loss"],
        metrics(&d.join("plain"))[0]["train_loss"]
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("whole/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["dropout"], 0.3);
    // The engine and candle's autograd drop the same values: the same run on both.
    let a: Vec<&str> = base
        .iter()
        .copied()
        .chain(["4", "--kernels", "candle", "--out", "candle"])
        .collect();
    ok(&rudder(d, &a));
    let c = metrics(&d.join("candle"));
    for (x, y) in metrics(&d.join("whole")).iter().zip(&c) {
        for k in ["train_loss", "val_loss"] {
            let (x, y) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * x.abs(),
                "{k}: engine {x} candle {y}"
            );
        }
    }
}

#[test]
fn a_bad_model_file_is_named_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("shape.json"),
        r#"[{"type":"linear","out":8},{"type":"conv2d","out":4},{"type":"linear"}]"#,
    )
    .unwrap();
    std::fs::write(
        d.join("typo.json"),
        "[\n  {\"type\": \"linear\", \"width\": 5}\n]",
    )
    .unwrap();
    std::fs::write(d.join("head.json"), r#"[{"type":"linear","out":7}]"#).unwrap();
    // Hostile files: a block nested 200 deep, 1,500 layers in one block, a layer of
    // 10^12 outputs.
    let mut deep = String::from(r#"{"type":"relu"}"#);
    for _ in 0..200 {
        deep = format!(r#"{{"type":"residual","layers":[{deep}]}}"#);
    }
    std::fs::write(
        d.join("deep.json"),
        format!(r#"[{deep},{{"type":"linear"}}]"#),
    )
    .unwrap();
    let many = vec![r#"{"type":"relu"}"#; 1500].join(",");
    std::fs::write(
        d.join("many.json"),
        format!(r#"[{{"type":"residual","layers":[{many}]}},{{"type":"linear"}}]"#),
    )
    .unwrap();
    std::fs::write(
        d.join("big.json"),
        r#"[{"type":"linear","out":100000000},{"type":"linear"}]"#,
    )
    .unwrap();
    for (file, want) in [
        (
            "shape.json",
            "--model shape.json: layer 2 (conv2d): needs an image, got 8 values (input 8)",
        ),
        (
            "typo.json",
            "unknown field `width`, expected `out` (at [0])",
        ),
        (
            "head.json",
            "--model head.json: the model gives 7 values per example; the data needs 10",
        ),
        ("none.json", "--model none.json: no such file"),
        ("deep.json", "recursion limit exceeded"),
        (
            "many.json",
            "--model many.json: layer 1.1000 (relu): more than 1000 layers",
        ),
        (
            "big.json",
            "--model big.json: the model would have 7500000010 parameters",
        ),
    ] {
        let o = rudder(d, &["train", "--model", file, "--out", "r"]);
        assert_eq!(o.status.code(), Some(2), "{file}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{file}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.len() < 300, "a short line: {err}");
        assert!(!d.join("r").exists(), "nothing written before the check");
    }
    let o = rudder(d, &["train", "--model", "cnn", "--dropout", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--dropout: is for the built-in mlp"));
}

/// A model file of images with convolutions, batch norm, a residual block, both
/// pools, layer norm and dropout trains on the CPU engine (the `run_start` event
/// says so), learns the 8x8 digits, and gives candle's autograd's numbers.
#[test]
fn an_image_model_file_trains_on_the_engine_with_candles_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("net.json"),
        r#"[{"type":"conv2d","out":8,"kernel":3},{"type":"batchnorm"},{"type":"relu"},
            {"type":"residual","layers":[
                {"type":"conv2d","out":8,"kernel":5,"bias":false},{"type":"batchnorm"},
                {"type":"gelu"}]},
            {"type":"maxpool2d"},{"type":"dropout","p":0.1},
            {"type":"conv2d","out":12,"kernel":1},{"type":"layernorm"},{"type":"tanh"},
            {"type":"avgpool2d","kernel":2},{"type":"flatten"},{"type":"linear"}]"#,
    )
    .unwrap();
    let mut runs = Vec::new();
    for kernels in ["rudder", "candle"] {
        let args = [
            "train",
            "--model",
            "net.json",
            "--epochs",
            "5",
            "--kernels",
            kernels,
            "--out",
            kernels,
            "--quiet",
        ];
        ok(&rudder(d, &args));
        let events = jsonl(&d.join(kernels).join("events.jsonl"));
        let start = events.iter().find(|e| e["kind"] == "run_start").unwrap();
        assert_eq!(start["kernels"], kernels);
        runs.push(metrics(&d.join(kernels)));
    }
    let acc = runs[0].last().unwrap()["val_acc"].as_f64().unwrap();
    assert!(acc >= 0.9, "val_acc {acc}");
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        for k in ["train_loss", "val_loss", "val_acc"] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-3 * x.abs().max(1.0),
                "{k}: engine {x} candle {y}"
            );
        }
    }
}
