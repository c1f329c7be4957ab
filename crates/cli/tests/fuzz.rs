//! Fuzzing of the readers that take files from outside: IDX (raw and gzip, parsed
//! and read from a file), CSV, `plugin.json`, checkpoints (`state.json` and
//! safetensors), the `--config` file, the JSONL reader (`policy replay`, `report`,
//! resume) and policy test files. Each target starts from a valid file, mutates it
//! (overwritten bytes, inserted and deleted runs, truncation) or replaces it with
//! random bytes, and requires an `Ok` or a one-line error naming the file: never a
//! panic. `train_never_crashes_on_mutated_data` runs the binary end to end on mutated
//! IDX and CSV files: exit 0 or 2, never a panic or a signal.
//!
//! CI runs 256 cases per target. A long run, as in the README:
//! `PROPTEST_CASES=1500000 cargo test --release --test fuzz` (about 9 minutes here).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

#[path = "common/idx.rs"]
mod idx_files;
use rudder_nn::data::{csv, idx};
use rudder_policy::plugin;
use rudder_run::checkpoint;

/// One change to a file.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Set(i, b) if !bytes.is_empty() => bytes[i % n] = *b,
            Edit::Insert(i, v) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Edit::Delete(i, len) if !bytes.is_empty() => {
                let at = i % n;
                let end = (at + len).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

/// A valid file mutated by up to 8 edits, or (one case in eight) random bytes.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        7 => prop::collection::vec(edit(), 0..8).prop_map(move |e| apply(seed.clone(), &e)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    b.extend((0..48).map(|i| (i * 5) as u8));
    b
}

fn idx_labels() -> Vec<u8> {
    vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 9]
}

/// An error must name the file it is about.
fn names(path: &str, e: impl std::fmt::Display) -> Result<(), TestCaseError> {
    let e = e.to_string();
    prop_assert!(e.contains(path), "error does not name {path}: {e}");
    prop_assert!(!e.contains('\n'), "one line: {e}");
    Ok(())
}

fn state_json() -> Vec<u8> {
    let s = checkpoint::State {
        format: checkpoint::FORMAT.into(),
        epoch: 2,
        step: 52,
        partial: Some(checkpoint::Partial {
            loss_sum: 12.5,
            correct: 40.0,
            seen: 64,
            train_time_s: 0.1,
        }),
        settings: {
            let mut s = rudder_policy::Settings::new(0.1, 64);
            s.epochs = 8;
            s.momentum = 0.9;
            s
        },
        optimizer_steps: 52,
        rng: checkpoint::Shuffle {
            seed: 9,
            shuffles: 3,
            cursor: 64,
        },
        best: Default::default(),
        monitored: checkpoint::Monitored {
            metric: rudder_core::metric::Metric::ValLoss,
            value: Some(0.3),
            epoch: Some(1),
        },
        policies: vec![rudder_policy::PolicyState::new(
            "default",
            "0123456789ab",
            serde_json::json!({"best": 0.3, "wait": 0}),
        )],
        logs: Default::default(),
        policy_metrics: BTreeMap::from([("n".to_string(), 1.0)]),
        checksums: BTreeMap::from([
            (checkpoint::MODEL_FILE.to_string(), "0".repeat(64)),
            (checkpoint::OPTIMIZER_FILE.to_string(), "f".repeat(64)),
        ]),
    };
    serde_json::to_vec_pretty(&s).unwrap()
}

fn safetensors_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let w = candle_core::Tensor::arange(0f32, 12.0, &candle_core::Device::Cpu)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    let b =
        candle_core::Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let model = vec![("fc1.weight".to_string(), w), ("fc1.bias".to_string(), b)];
    let s: checkpoint::State = serde_json::from_slice(&state_json()).unwrap();
    checkpoint::write(
        dir.path(),
        "epoch-0",
        &checkpoint::Snapshot {
            state: &s,
            model: &model,
            optimizer: &[],
        },
    )
    .unwrap();
    std::fs::read(dir.path().join("epoch-0/model.safetensors")).unwrap()
}

const CONFIG: &str = r#"{
  "data": "digits",
  "lr": 0.05,
  "hidden": [32, 16],
  "epochs": 3,
  "policy": ["lr/cosine"],
  "param": ["T_max=3"],
  "monitor": "val_acc"
}"#;

const METRICS: &str = concat!(
    r#"{"epoch":0,"step":26,"epochs":3,"lr":0.1,"batch_size":64,"train_loss":2.2,"val_loss":null,"policy":{"n":1}}"#,
    "\n",
    r#"{"epoch":1,"step":52,"epochs":3,"lr":0.05,"batch_size":64,"train_loss":1.2,"val_loss":0.9,"policy":{}}"#,
    "\n"
);

const TESTS: &str = r#"{"policy": "lr/step", "params": {"step_size": 2}, "cases": [
  {"hook": "on_epoch_start", "ctx": {"epoch": 0, "base_lr": 0.1}, "expect": {"lr": 0.1}},
  {"hook": "on_epoch_start", "ctx": {"epoch": 3, "base_lr": 0.1}, "this": {}, "expect": {"lr": 0.01, "error": false}}
]}"#;

const MANIFEST: &str = r#"{
  "name": "fuzzed",
  "version": "1.2.3",
  "description": "a plugin",
  "api": 1,
  "policies": { "p": "p.rhai" },
  "license": "MIT"
}"#;

proptest! {
    #[test]
    fn idx_images_never_panic(bytes in mutated(idx_images())) {
        let p = Path::new("img-idx3-ubyte");
        if let Err(e) = idx::parse_images(&bytes, p) {
            names("img-idx3-ubyte", e)?;
        }
    }

    #[test]
    fn idx_labels_never_panic(bytes in mutated(idx_labels())) {
        let p = Path::new("lab-idx1-ubyte");
        if let Err(e) = idx::parse_labels(&bytes, p) {
            names("lab-idx1-ubyte", e)?;
        }
    }

    #[test]
    fn gzipped_idx_never_panics(bytes in mutated(gzip(&idx_images()))) {
        let p = Path::new("img-idx3-ubyte.gz");
        match idx::inflate_maybe(bytes, p) {
            Ok(raw) => {
                if let Err(e) = idx::parse_images(&raw, p) {
                    names("img-idx3-ubyte.gz", e)?;
                }
            }
            Err(e) => names("img-idx3-ubyte.gz", e)?,
        }
    }

    #[test]
    fn csv_never_panics(bytes in mutated(b"a,b,label\n0.5,1,3\n2,-1e3,0\n4.25,7,1\n".to_vec())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = csv::parse(&text, Path::new("data.csv")) {
            names("data.csv", e)?;
        }
    }

    #[test]
    fn plugin_manifest_never_panics(bytes in mutated(MANIFEST.as_bytes().to_vec())) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rhai"), "fn on_step(ctx) { }").unwrap();
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = plugin::parse(&text, dir.path()) {
            names("plugin.json", e)?;
        }
    }

    #[test]
    fn checkpoint_state_never_panics(bytes in mutated(state_json())) {
        if let Err(e) = checkpoint::parse_state(&bytes, Path::new("ck/state.json")) {
            names("ck/state.json", e)?;
        }
    }

    #[test]
    fn idx_files_are_read_boundedly_and_never_panic(
        bytes in mutated(idx_images()),
        zipped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let name = if zipped { "img-idx3-ubyte.gz" } else { "img-idx3-ubyte" };
        let path = dir.path().join(name);
        std::fs::write(&path, if zipped { gzip(&bytes) } else { bytes }).unwrap();
        match idx::read_idx(&path, 4) {
            Ok(raw) => {
                prop_assert!(raw.len() <= 16 + 48 * 100 + 1, "read {} bytes", raw.len());
                if let Err(e) = idx::parse_images(&raw, &path) {
                    names(name, e)?;
                }
            }
            Err(e) => names(name, e)?,
        }
    }

    #[test]
    fn config_file_never_panics(bytes in mutated(CONFIG.as_bytes().to_vec())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(&path, &bytes).unwrap();
        match rudder_core::TrainOptions::from_file(&path) {
            Ok(o) => {
                // A file that parses is still checked; neither step may panic.
                let _ = o.check(&|k| k.to_string());
                let _ = o.resolve();
            }
            Err(e) => {
                names("run.json", &e)?;
                prop_assert!(e.to_string().len() < 600, "long error: {e}");
            }
        }
    }

    #[test]
    fn jsonl_reader_never_panics(bytes in mutated(METRICS.as_bytes().to_vec())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = rudder_run::files::read_jsonl(&path) {
            names("metrics.jsonl", e)?;
        }
    }

    #[test]
    fn policy_test_files_never_panic(bytes in mutated(TESTS.as_bytes().to_vec())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(file) = serde_json::from_str::<rudder_policy::testing::TestFile>(&text) {
            let mut out = rudder_policy::testing::Outcome::default();
            rudder_policy::testing::run_file(
                &file,
                "t.json",
                &rudder_policy::SearchPath::new(vec![]),
                &mut out,
            );
            prop_assert!(out.passed + out.failed >= file.cases.len().min(1));
        }
    }

    #[test]
    fn safetensors_never_panic(bytes in mutated(safetensors_file())) {
        if let Err(e) = checkpoint::parse_tensors(&bytes, Path::new("ck/model.safetensors")) {
            names("ck/model.safetensors", e)?;
        }
    }
}

/// A whole checkpoint folder with one file mutated reads back or fails with an
/// error; a quarter of the cases (at least 64), as each writes files.
#[test]
fn checkpoint_folder_never_panics() {
    let config = proptest::test_runner::Config::default();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: (config.cases / 4).max(64),
        ..config
    });
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("epoch-0");
    std::fs::create_dir(&ck).unwrap();
    let files = [
        ("state.json", state_json()),
        ("model.safetensors", safetensors_file()),
        ("optimizer.safetensors", safetensors_file()),
    ];
    runner
        .run(
            &(0..3usize, prop::collection::vec(edit(), 1..6)),
            |(which, edits)| {
                for (i, (name, bytes)) in files.iter().enumerate() {
                    let b = if i == which {
                        apply(bytes.clone(), &edits)
                    } else {
                        bytes.clone()
                    };
                    std::fs::write(ck.join(name), b).unwrap();
                }
                if let Err(e) = checkpoint::latest(dir.path()) {
                    names("epoch-0/", e)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

/// The binary on mutated data sets: a CSV and the MNIST-format IDX files, each cut,
/// overwritten or replaced; `train` must end with 0 or 2, never a panic or a
/// signal. 48 cases (each starts a process).
#[test]
fn train_never_crashes_on_mutated_data() {
    use std::os::unix::process::ExitStatusExt;
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: String = (0..60)
        .map(|i| format!("{},{},{},{}\n", i % 7, (i * 3) % 5, i % 4, i % 3))
        .collect();
    let csv = format!("a,b,c,label\n{rows}");
    let images = |n: u32| idx_files::images(n, 4, 4);
    let labels = |n: u32| idx_files::labels(n, 3);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("data.csv", csv.into_bytes()),
        ("idx/train-images-idx3-ubyte", images(40)),
        ("idx/train-labels-idx1-ubyte", labels(40)),
        ("idx/t10k-images-idx3-ubyte.gz", gzip(&images(10))),
        ("idx/t10k-labels-idx1-ubyte", labels(10)),
    ];
    std::fs::create_dir_all(d.join("idx")).unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(
            &(0..files.len(), prop::collection::vec(edit(), 1..6)),
            |(which, edits)| {
                for (i, (name, bytes)) in files.iter().enumerate() {
                    let b = if i == which {
                        apply(bytes.clone(), &edits)
                    } else {
                        bytes.clone()
                    };
                    std::fs::write(d.join(name), b).unwrap();
                }
                let out = format!("r{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let data = if which == 0 {
                    vec!["--data", "data.csv"]
                } else {
                    vec!["--data", "mnist", "--data-dir", "idx"]
                };
                let mut args = vec![
                    "train", "-q", "--epochs", "1", "--watch", "off", "--out", &out,
                ];
                args.extend(data);
                let o = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
                    .args(&args)
                    .current_dir(d)
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                prop_assert!(o.status.signal().is_none(), "signal: {err}");
                prop_assert!(
                    matches!(o.status.code(), Some(0 | 2)),
                    "exit {:?}: {err}",
                    o.status.code()
                );
                if o.status.code() == Some(2) {
                    prop_assert_eq!(err.trim_end().lines().count(), 1, "one line: {}", err);
                }
                Ok(())
            },
        )
        .unwrap();
}
