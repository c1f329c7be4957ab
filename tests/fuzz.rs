//! Fuzzing of the readers that take files from outside: IDX (raw and gzip), CSV,
//! `plugin.json` and checkpoints (`state.json` and safetensors). Each target starts
//! from a valid file, mutates it (overwritten bytes, inserted and deleted runs,
//! truncation) or replaces it with random bytes, and requires an `Ok` or an error
//! naming the file: never a panic.
//!
//! CI runs 256 cases per target. A long run, as in the README:
//! `PROPTEST_CASES=1500000 cargo test --release --test fuzz` (about 9 minutes here).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use rudder::checkpoint;
use rudder::data::{csv, idx};
use rudder::script::plugin;

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
        settings: rudder::policy::Settings {
            lr: 0.1,
            batch_size: 64,
            accumulation: 1,
            epochs: 8,
            momentum: 0.9,
            weight_decay: 0.0,
        },
        optimizer_steps: 52,
        rng: checkpoint::Shuffle {
            seed: 9,
            shuffles: 3,
            cursor: 64,
        },
        best: Default::default(),
        monitored: checkpoint::Monitored {
            metric: "val_loss".into(),
            value: Some(0.3),
            epoch: Some(1),
        },
        policies: vec![rudder::policy::PolicyState {
            name: "default".into(),
            version: "0123456789ab".into(),
            this: serde_json::json!({"best": 0.3, "wait": 0}),
        }],
        logs: Default::default(),
        markers: Vec::new(),
        policy_metrics: BTreeMap::from([("n".to_string(), 1.0)]),
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
