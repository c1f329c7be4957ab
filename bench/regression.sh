#!/usr/bin/env bash
# rudder's regression figure (BENCHMARKS.md): the embedded diabetes set, 5 seeds (each
# its own 80/20 split), the default MLP and policy; R^2 and RMSE of the last epoch on
# the held-out 20%. Compare with bench/regression_reference.py.
# Usage: bench/regression.sh [EXTRA rudder train options]
set -euo pipefail
BIN=${RUDDER_BIN:-target/release/rudder}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for seed in 0 1 2 3 4; do
  "$BIN" train --data diabetes --val-fraction 0.2 --epochs 100 --seed "$seed" "$@" --out "$T/s$seed" --quiet
done
python3 - "$T" <<'PY'
import json, statistics, sys
r2, rmse = [], []
for s in range(5):
    last = [json.loads(l) for l in open(f"{sys.argv[1]}/s{s}/metrics.jsonl")][-1]
    r2.append(last["val_r2"]); rmse.append(last["val_rmse"])
print(f"rudder MLP: R2 {statistics.mean(r2):.3f} +- {statistics.stdev(r2):.3f}  RMSE {statistics.mean(rmse):.1f}  (per split: {' '.join(f'{a:.3f}' for a in r2)})")
PY
