#!/usr/bin/env bash
# Samples/s of the MNIST MLP and CNN (batch 64, plain SGD, one epoch) as
# 1 process x 1 thread, 1 process x 2 threads and 2 MPI ranks x 1 thread, alternated
# REPS times (median printed), with the time rank 0 spent in the per-step collectives
# (the gradient allreduce and the loss sums, `comm_s` in run_end) per step and as a
# share of the step. Needs a build with `--features mpi` and OpenMPI.
# Usage: bench/many_processes.sh [REPS] [DATA_DIR]
set -euo pipefail
REPS=${1:-3}
DATA=${2:-data/mnist}
BIN=${RUDDER_BIN:-target/release/rudder}
MPI=(mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,vader
     --mca btl_vader_single_copy_mechanism none)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for model in mlp cnn; do
  for rep in $(seq "$REPS"); do
    for cfg in 1x1 1x2 2x1; do
      args=(train --quiet --data mnist --data-dir "$DATA" --model "$model" --epochs 1
            --batch-size 64 --optimizer sgd --policy lr/constant --out "$T/$model-$cfg-$rep")
      case $cfg in
        1x1) "$BIN" "${args[@]}" --threads 1 ;;
        1x2) "$BIN" "${args[@]}" --threads 2 ;;
        2x1) "${MPI[@]}" "$BIN" "${args[@]}" --threads 1 ;;
      esac
    done
  done
done
python3 - "$T" "$REPS" <<'PY'
import json, statistics, sys, pathlib
t, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def one(d):
    m = [json.loads(l) for l in open(d / "metrics.jsonl")][-1]
    end = [json.loads(l) for l in open(d / "events.jsonl")][-1]
    step_s = m["epoch_time_s"] / m["step"]
    comm = end.get("comm_s", 0.0) / m["step"]
    return m["samples_per_s"], comm, step_s, m["val_acc"]
print(f"{'model':5} {'layout':22} {'samples/s':>10} {'x 1x1':>6} {'comm us/step':>13} {'comm share':>10}")
for model in ["mlp", "cnn"]:
    base = None
    for cfg, name in [("1x1", "1 process x 1 thread"), ("1x2", "1 process x 2 threads"), ("2x1", "2 ranks x 1 thread")]:
        runs = [one(t / f"{model}-{cfg}-{r}") for r in range(1, reps + 1)]
        sps = statistics.median(r[0] for r in runs)
        comm = statistics.median(r[1] for r in runs)
        share = statistics.median(r[1] / r[2] for r in runs)
        base = base or sps
        c = f"{comm*1e6:13.1f} {share:10.1%}" if cfg == "2x1" else f"{'':13} {'':10}"
        print(f"{model:5} {name:22} {sps:10.0f} {sps/base:6.2f} {c}")
PY
