//! Written checkpoints read back, crashes between renames, damaged files, pruning.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rudder_core::metric::Metric;
use rudder_policy::{Best, Settings};

use super::*;

fn state() -> State {
    State {
        format: FORMAT.into(),
        epoch: 2,
        step: 40,
        partial: None,
        settings: {
            let mut s = Settings::new(0.1, 32);
            s.epochs = 5;
            s.momentum = 0.9;
            s
        },
        optimizer_steps: 40,
        rng: Shuffle {
            seed: 7,
            shuffles: 2,
            cursor: 0,
        },
        best: Best::default(),
        monitored: Monitored {
            metric: Metric::ValLoss,
            value: None,
            epoch: None,
        },
        policies: Vec::new(),
        logs: LogSizes::default(),
        policy_metrics: BTreeMap::new(),
        checksums: BTreeMap::new(),
    }
}

#[test]
fn a_written_checkpoint_reads_back_and_replaces_atomically() {
    let root = tempfile::tempdir().unwrap();
    let w = Tensor::arange(0f32, 6.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3))
        .unwrap();
    let model = vec![("fc1.weight".to_string(), w.clone())];
    let s = state();
    let snap = Snapshot {
        state: &s,
        model: &model,
        optimizer: &[],
    };
    let bytes = write(root.path(), "epoch-1", &snap).unwrap();
    assert!(bytes > 24);
    // Again: the folder is replaced, nothing is left aside.
    write(root.path(), "epoch-1", &snap).unwrap();
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["epoch-1"]);
    let back = latest(root.path()).unwrap().unwrap();
    assert_eq!(back.state.checksums.len(), 2);
    assert_eq!(
        State {
            checksums: BTreeMap::new(),
            ..back.state.clone()
        },
        s
    );
    assert_eq!(
        back.model["fc1.weight"].to_vec2::<f32>().unwrap(),
        w.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn a_crash_between_the_renames_leaves_the_old_folder_readable() {
    let root = tempfile::tempdir().unwrap();
    let s = state();
    let snap = Snapshot {
        state: &s,
        model: &[],
        optimizer: &[],
    };
    write(root.path(), "best", &snap).unwrap();
    std::fs::rename(root.path().join("best"), root.path().join(".old-best")).unwrap();
    std::fs::create_dir(root.path().join(".tmp-best")).unwrap();
    assert_eq!(
        locate(root.path(), "best"),
        Some(root.path().join(".old-best"))
    );
    clean(root.path()).unwrap();
    assert!(!root.path().join(".tmp-best").exists());
    assert!(latest(root.path()).unwrap().is_some());
}

#[test]
fn foreign_and_truncated_files_are_errors_that_name_the_file() {
    let p = Path::new("ck/state.json");
    let e = parse_state(br#"{"epoch": 1}"#, p).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ck/state.json: not a rudder checkpoint"),
        "{e}"
    );
    let e = parse_state(b"{\"format\": \"rudder-checkpoint/1\", \"epo", p).unwrap_err();
    assert!(e.to_string().contains("line 1 column"), "{e}");
    let e = parse_tensors(&[1, 0, 0], Path::new("m.safetensors")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("m.safetensors: not a safetensors file"),
        "{e}"
    );
}

#[test]
fn pruning_keeps_the_newest_periodic_checkpoints_only() {
    let root = tempfile::tempdir().unwrap();
    for (name, step) in [
        ("epoch-0", 10),
        ("epoch-1", 20),
        ("epoch-2", 30),
        ("best", 10),
    ] {
        let s = State { step, ..state() };
        let snap = Snapshot {
            state: &s,
            model: &[],
            optimizer: &[],
        };
        write(root.path(), name, &snap).unwrap();
    }
    assert_eq!(beyond_keep(root.path(), 2), [root.path().join("epoch-0")]);
    assert!(is_periodic("step-12") && !is_periodic("epoch-") && !is_periodic("best"));
}
