//! A sweep on Slurm whose trials are two-rank jobs (`--slurm-arg --ntasks=2`; the
//! book's "Sweeps on a cluster" page, docs/src/guide/cluster.md): `srun` starts each
//! trial's ranks with PMIx on the one-node cluster of `tools/slurm-local.sh start`,
//! and each trial trains as `mpirun -np 2 rudder train` does. Without Slurm this
//! skips with a line (under CI it fails).

use std::process::Command;

use super::{finish, jsonl, mpirun, ok, same_metrics, train_args};

fn cluster_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up && std::env::var_os("CI").is_some() {
        panic!("no Slurm cluster is up: .ci/run starts one with tools/slurm-local.sh start");
    }
    if !up {
        eprintln!("test skipped: no Slurm cluster is up (tools/slurm-local.sh start)");
    }
    up
}

#[test]
fn a_slurm_sweeps_trials_train_on_two_ranks_as_mpirun_does() {
    if !cluster_up() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = Command::new(super::bin())
        .args([
            "sweep",
            "-q",
            "--out",
            "s",
            "--launcher",
            "slurm",
            "--epochs",
            "3",
        ])
        .args([
            "--batch-size",
            "64",
            "--multipliers",
            "1,2",
            "--max-retries",
            "0",
        ])
        .args(["--slurm-arg", "--ntasks=2"])
        .current_dir(d)
        .env_remove("RUDDER_DATA")
        .env("SLURM_MPI_TYPE", "pmix")
        .output()
        .unwrap();
    ok(&o);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s/sweep.json")).unwrap()).unwrap();
    for (name, lr) in [("x1", "0.1"), ("x2", "0.2")] {
        let t = s["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["dir"] == name)
            .unwrap();
        assert_eq!(t["status"], "done", "{t}");
        let start = &jsonl(&d.join("s").join(name).join("events.jsonl"))[0];
        assert_eq!(start["world_size"], 2, "{name}: {start}");
        let out = format!("mpirun-{name}");
        ok(&finish(mpirun(d, 2, &train_args(&out, &["--lr", lr]), &[])));
        same_metrics(
            &jsonl(&d.join(&out).join("metrics.jsonl")),
            &jsonl(&d.join("s").join(name).join("metrics.jsonl")),
            1e-9,
        );
    }
}
