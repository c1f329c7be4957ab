#!/usr/bin/env bash
# Training throughput of rudder against PyTorch, runs alternated (A B A B ...), median
# of the training-phase samples/s each side prints.
#
# usage: bench/throughput.sh [RUNS] [RUDDER_BIN] [PYTHON]
#   RUNS        pairs per model (default 5)
#   RUDDER_BIN  default target/release/rudder
#   PYTHON      a Python with torch and numpy (default python3)
# Needs data/mnist and data/mnist_5k.csv.gz (tools/fetch-data.sh). MLP: one full MNIST
# epoch each. CNN: 4,500 MNIST images (the 5k CSV's training split for rudder, the
# first 4,500 IDX images for PyTorch): the same model and batch, a shorter epoch.
# THREADS (default 1) sets rudder's --threads, TORCH_THREADS (default 2) torch.set_num_threads.
# MODELS (default "mlp cnn"; also "resnet", bench/small_resnet.json on the 5k images).
set -euo pipefail
runs=${1:-5}
bin=${2:-target/release/rudder}
py=${3:-python3}
threads=${THREADS:-1}
torch_threads=${TORCH_THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rudder_rate() { # args: rudder train options
  rm -rf "$tmp/run"
  "$bin" train -q --epochs 1 --threads "$threads" --out "$tmp/run" "$@"
  sed -E 's/.*"samples_per_s":([0-9.e+-]+).*/\1/' "$tmp/run/metrics.jsonl"
}
torch_rate() { # args: model [--limit N]
  "$py" "$here/torch_baseline.py" "$1" data/mnist --threads "$torch_threads" "${@:2}" | sed -E 's/.*samples_per_s ([0-9.]+).*/\1/'
}
for model in ${MODELS:-mlp cnn}; do
  : > "$tmp/a"; : > "$tmp/b"
  for _ in $(seq "$runs"); do
    if [ "$model" = mlp ]; then
      rudder_rate --data mnist --model mlp >> "$tmp/a"
      torch_rate mlp >> "$tmp/b"
    elif [ "$model" = resnet ]; then
      rudder_rate --data data/mnist_5k.csv.gz --model "$here/small_resnet.json" >> "$tmp/a"
      torch_rate resnet --limit 4500 >> "$tmp/b"
    else
      rudder_rate --data data/mnist_5k.csv.gz --model cnn >> "$tmp/a"
      torch_rate cnn --limit 4500 >> "$tmp/b"
    fi
  done
  a=$(median < "$tmp/a"); b=$(median < "$tmp/b")
  printf '%s rudder(threads=%s) %.0f samples/s  pytorch(threads=%s) %.0f samples/s  ratio %.3f  (rudder runs: %s; pytorch runs: %s)\n' \
    "$model" "$threads" "$a" "$torch_threads" "$b" "$(echo "$a / $b" | bc -l)" "$(tr '\n' ' ' < "$tmp/a")" "$(tr '\n' ' ' < "$tmp/b")"
done
