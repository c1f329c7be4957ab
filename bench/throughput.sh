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

# The machine's fp32 peak, from the CPU's own flags: cores x clock x FMA lanes x 2
# FLOPs per FMA x 2 FMA pipes (AVX-512: 16 lanes; AVX2+FMA: 8). The clock is
# /proc/cpuinfo's "cpu MHz" (a VM's nominal figure); 2 pipes is the server parts'
# count (Zen 4 runs a 512-bit FMA on both 256-bit pipes: half this), so the share
# is a lower bound there.
cores=$(nproc)
mhz=$(awk -F: '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo)
if grep -qw avx512f /proc/cpuinfo; then lanes=16; elif grep -qw fma /proc/cpuinfo; then lanes=8; else lanes=4; fi
peak=$(echo "$cores * $mhz / 1000 * $lanes * 2 * 2" | bc -l)
# Matrix-product FLOPs per training sample (forward, weight gradients, and input
# gradients below the first layer; batch norm, pooling and the losses not counted):
# MLP 784-256-128-10: 2(784*256+256*128+128*10) * 2 + 2(256*128+128*10) = 1,007,104.
# CNN: conv1 2*28*28*32*9, conv2 2*14*14*64*288, head 2*3136*10, forward 7,739,648;
# weight gradients the same; input gradients of conv2 and the head 7,288,064:
# 22,767,360.
flops() { case $1 in mlp) echo 1007104 ;; cnn) echo 22767360 ;; *) echo 0 ;; esac; }
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
  gflops=$(echo "$a * $(flops "$model") / 1000000000" | bc -l)
  printf '%s rudder(threads=%s) %.0f samples/s  pytorch(threads=%s) %.0f samples/s  ratio %.3f  rudder %.1f GFLOP/s = %.1f%% of peak %.0f  (rudder runs: %s; pytorch runs: %s)\n' \
    "$model" "$threads" "$a" "$torch_threads" "$b" "$(echo "$a / $b" | bc -l)" "$gflops" "$(echo "100 * $gflops / $peak" | bc -l)" "$peak" "$(tr '\n' ' ' < "$tmp/a")" "$(tr '\n' ' ' < "$tmp/b")"
done
