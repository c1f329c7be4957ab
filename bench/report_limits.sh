#!/usr/bin/env bash
# `rudder report` on outsized logs, and the checkpoint of a run that logs at every
# step: the figures of BENCHMARKS.md's "Bounded reports and checkpoints".
#   - a run folder whose events.jsonl is about 100 MB (1 KiB log lines);
#   - one with 200,000 events at distinct epochs;
#   - state.json of the newest checkpoint after 2 and after 8 epochs of a policy
#     that logs 60 KiB at every step.
# Usage: bench/report_limits.sh [BIN] (default target/release/rudder). GNU time.
set -euo pipefail
bin=$(realpath "${1:-target/release/rudder}")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$bin" train -q --epochs 2 --out big >/dev/null
cp -r big many
python3 - <<'PY'
import json
line = lambda e, m: json.dumps({"time": "2026-12-02T00:00:00.000Z", "epoch": e, "step": e,
                                "kind": "log", "hook": "on_step", "message": m}) + "\n"
with open("big/events.jsonl", "a") as f:
    pad = "x" * 1000
    for i in range(100_000):
        f.write(line(i % 2, f"{i} {pad}"))
with open("many/events.jsonl", "a") as f:
    for i in range(200_000):
        f.write(line(i, f"event {i}"))
PY
for run in big many; do
  size=$(stat -c %s "$run/events.jsonl")
  /usr/bin/time -f "$run: events.jsonl $((size / 1000000)) MB; report %e s, peak %M KiB" \
    "$bin" report "$run" --out "$run.html" >/dev/null
  echo "$run: page $(( $(stat -c %s "$run.html") / 1000 )) kB"
done
cat > chatty.rhai <<'RHAI'
fn on_step(ctx) { let s = "x"; s.pad(61440, 'y'); #{ log: s } }
RHAI
for epochs in 2 8; do
  "$bin" train -q --epochs "$epochs" --policy chatty.rhai --out "chatty$epochs" 2>/dev/null
  newest=$(ls -d "chatty$epochs"/checkpoints/epoch-* | sort -t- -k2 -n | tail -1)
  echo "chatty, $epochs epochs: $(basename "$newest")/state.json $(stat -c %s "$newest/state.json") bytes, events.jsonl $(( $(stat -c %s "chatty$epochs/events.jsonl") / 1000000 )) MB"
done
