#!/usr/bin/env bash
# The GPU path's checks, in two halves (our build machines have no GPU; the GPU
# machine has no Rust): see the book's "GPU" chapter (docs/src/guide/gpu.md).
#
#   tools/gpu-check.sh build   here: builds the CUDA binaries into gpu-bundle/
#                              (git-ignored; the `device` tool carries it)
#   tools/gpu-check.sh run     on the GPU machine: preflight, the GPU tests, a MNIST
#                              CNN run on cuda beside PyTorch's, the fused-optimizer
#                              benchmark; one summary at the end
set -euo pipefail
cd "$(dirname "$0")/.."
B=gpu-bundle

build() {
  # The toolkit: nvcc 13.0 from PyPI wheels and link stubs (tools/setup-cuda-build.sh).
  if ! command -v nvcc >/dev/null; then
    setup=${CUDA_SETUP:-tools/setup-cuda-build.sh}
    cargo fetch --quiet # the setup reads cudarc's sources (in the registry) for its link stubs
    cuda_env=$(bash "$setup" | tail -1) # fails the build here if the setup fails
    eval "$cuda_env"
  fi
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
  cargo build --release -p rudder-cli --features cuda --bin rudder
  cargo build --release -p rudder-train --features cuda --example gpu_bench
  tests=$(cargo test --release -p rudder-cli --features cuda --test gpu --no-run --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gpu" and m.get("executable"):
        print(m["executable"])')
  rm -rf "$B"; mkdir -p "$B/mnist"
  cp "$CARGO_TARGET_DIR/release/rudder" "$B/rudder"
  # The many-GPU binary (feature nccl: MPI + NCCL), when OpenMPI is here to link.
  if dpkg -s libopenmpi-dev >/dev/null 2>&1; then
    cargo build --release -p rudder-cli --features nccl --bin rudder
    cp "$CARGO_TARGET_DIR/release/rudder" "$B/rudder-nccl"
    strip "$B/rudder-nccl"; xz -6 -T2 "$B/rudder-nccl"
  fi
  cp "$CARGO_TARGET_DIR/release/examples/gpu_bench" "$B/gpu_bench"
  cp "$tests" "$B/gpu_tests"
  for f in "$B/rudder" "$B/gpu_bench" "$B/gpu_tests"; do strip "$f"; xz -6 -T2 "$f"; done
  for f in data/mnist/*-ubyte; do gzip -9 -c "$f" > "$B/mnist/$(basename "$f").gz"; done
  cp data/mnist_5k.csv.gz "$B/"
  du -sh "$B"; ls -la "$B"
  # Proof that the default build links no CUDA library:
  if ldd target/release/rudder 2>/dev/null | grep -Ei 'cuda|cublas|curand|nvrtc'; then
    echo "the default build links CUDA" >&2; exit 1
  fi
  echo "default build: no CUDA library linked; CUDA build: $(ldd "$CARGO_TARGET_DIR/release/rudder" | grep -Eo 'lib(cuda|cublas|curand|cudart|nvrtc)[^ ]*' | sort -u | tr '\n' ' ')"
}

run() {
  echo "== preflight"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  ls /usr/local/cuda*/lib64/lib{cublas,cublasLt,curand,cudart,nvrtc}.so* >/dev/null
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
  for f in "$B"/*.xz; do xz -dkf "$f"; done
  chmod +x "$B/rudder" "$B/gpu_bench" "$B/gpu_tests"
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  case "$gpu" in
    *H200*) peak=4800 ;;
    *H100*PCIe*) peak=2000 ;;
    *H100*) peak=3350 ;;
    *) peak=0 ;;
  esac
  out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"

  echo "== GPU tests"
  RUDDER_BIN="$PWD/$B/rudder" RUDDER_GPU_DATA="$PWD/$B/mnist_5k.csv.gz" \
    "$B/gpu_tests" --test-threads 1 --nocapture 2>&1 | tee "$out/tests.txt"

  echo "== MNIST CNN on cuda, 2 epochs (rudder, then PyTorch)"
  rm -rf "$out/cnn"
  "$B/rudder" train --device cuda --model cnn --data mnist --data-dir "$B/mnist" --epochs 2 \
    --quiet --watch off --policy stop/terminate_on_nan --out "$out/cnn"
  tail -1 "$out/cnn/metrics.jsonl"
  python3 bench/torch_baseline.py cnn "$B/mnist" --epochs 2 --device cuda | tee "$out/torch.txt"

  echo "== a model file (every image layer) and a regression on cuda against candle on the CPU"
  for task in file regression; do
    case $task in
      file) args=(train --model bench/small_resnet.json --data "$B/mnist_5k.csv.gz" --epochs 2 --quiet --watch off) ;;
      regression) args=(train --data diabetes --epochs 5 --quiet --watch off) ;;
    esac
    rm -rf "$out/$task-cuda" "$out/$task-cpu"
    "$B/rudder" "${args[@]}" --device cuda --out "$out/$task-cuda"
    "$B/rudder" "${args[@]}" --kernels candle --out "$out/$task-cpu"
    python3 - "$out" "$task" <<'PY' | tee "$out/$task-check.txt"
import json, sys
o, t = sys.argv[1], sys.argv[2]
a = [json.loads(l) for l in open(f"{o}/{t}-cuda/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{o}/{t}-cpu/metrics.jsonl")]
keys = [k for k in ("train_loss", "val_loss", "val_acc", "val_rmse") if k in a[-1]]
worst = max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for x, y in zip(a, b) for k in keys)
print(f"{t} on cuda vs candle on the CPU: last {a[-1]}; worst relative metric difference {worst:.2e} ({'ok' if worst <= 1e-2 else 'FAILED'})")
PY
  done

  echo "== NCCL: 2 ranks on 2 GPUs against 1 process (needs mpirun, libnccl and 2 GPUs)"
  ngpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
  if [ -f "$B/rudder-nccl" ] && [ "$ngpu" -ge 2 ] && command -v mpirun >/dev/null; then
    chmod +x "$B/rudder-nccl"; rm -rf "$out/one" "$out/two"
    args=(train --device cuda --data digits --epochs 3 --batch-size 64 --quiet --watch off)
    "$B/rudder" "${args[@]}" --out "$out/one"
    mpirun --allow-run-as-root -np 2 "$B/rudder-nccl" "${args[@]}" --out "$out/two"
    python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
a = [json.loads(l) for l in open(f"{o}/one/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{o}/two/metrics.jsonl")]
worst = max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-12) for x, y in zip(a, b) for k in ("train_loss", "val_loss", "val_acc"))
print(f"NCCL 2 ranks vs 1 process: worst relative metric difference {worst:.2e} ({'ok' if worst <= 1e-5 else 'FAILED'})")
PY
  else
    echo "NCCL check skipped: $ngpu GPU(s), mpirun $(command -v mpirun || echo absent), bundle $(ls "$B"/rudder-nccl* 2>/dev/null || echo without rudder-nccl)"
  fi

  echo "== fused optimizer step, 10M parameters"
  "$B/gpu_bench" | tee "$out/bench.txt"

  echo "== summary ($gpu, peak ${peak} GB/s)"
  grep -E "test result|worst|skipped" "$out/tests.txt" || true
  grep -h "worst" "$out"/*.txt 2>/dev/null || true
  python3 - "$out" "$peak" <<'PY'
import json, re, sys
out, peak = sys.argv[1], float(sys.argv[2])
last = [json.loads(l) for l in open(f"{out}/cnn/metrics.jsonl")][-1]
torch = [l for l in open(f"{out}/torch.txt") if l.startswith("epoch")][-1]
tps = float(re.search(r"samples_per_s ([0-9.]+)", torch).group(1))
print(f"MNIST CNN, epoch 2: rudder {last['samples_per_s']:.0f} samples/s (val_acc {last['val_acc']:.4f}), "
      f"PyTorch {tps:.0f} samples/s ({torch.split('val_acc ')[1].split()[0]}); ratio {last['samples_per_s'] / tps:.2f}")
for l in open(f"{out}/bench.txt"):
    m = re.search(r"([0-9.]+) GB/s", l)
    pct = f", {100 * float(m.group(1)) / peak:.0f}% of peak" if m and peak else ""
    print(l.rstrip() + pct)
PY
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: tools/gpu-check.sh build|run" >&2; exit 2 ;;
esac
