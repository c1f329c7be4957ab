#!/usr/bin/env bash
# Two rudder builds alternated (A B A B ...), median training samples/s of each: the
# MNIST MLP (one epoch) and the CNN on the MNIST 5k CSV (4,500 training images, one
# epoch), each at its default --threads. For "before and after" figures in
# BENCHMARKS.md. Usage: bench/before_after.sh BIN_A BIN_B [PAIRS]
# MODELS (default "mlp cnn"; also "resnet": bench/small_resnet.json, the README's
# model file, on the 5k CSV) picks the models; A_ARGS and B_ARGS add options to one
# side (the same binary twice compares two options: A_ARGS="--kernels candle").
set -euo pipefail
a=$1; b=$2; pairs=${3:-5}
read -r -a a_args <<< "${A_ARGS:-}"
read -r -a b_args <<< "${B_ARGS:-}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rate() { # bin, args
  rm -rf "$tmp/run"
  "$1" train -q --epochs 1 --policy lr/constant --out "$tmp/run" "${@:2}"
  sed -E 's/.*"samples_per_s":([0-9.e+-]+).*/\1/' "$tmp/run/metrics.jsonl"
}
for model in ${MODELS:-mlp cnn}; do
  case $model in
    mlp) args=(--data mnist --data-dir data/mnist --model mlp) ;;
    cnn) args=(--data data/mnist_5k.csv.gz --model cnn) ;;
    resnet) args=(--data data/mnist_5k.csv.gz --model bench/small_resnet.json) ;;
  esac
  : > "$tmp/a"; : > "$tmp/b"
  for _ in $(seq "$pairs"); do
    rate "$a" "${args[@]}" "${a_args[@]}" >> "$tmp/a"
    rate "$b" "${args[@]}" "${b_args[@]}" >> "$tmp/b"
  done
  ma=$(median < "$tmp/a"); mb=$(median < "$tmp/b")
  printf '%s: A %.0f  B %.0f samples/s  B/A %.3f\n' "$model" "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)"
done
