#!/usr/bin/env bash
# The book's tutorial (docs/src/guide/tutorial.md), rerun: every run it shows, on MNIST
# and the MNIST 5k CSV (tools/fetch-data.sh data first), then the figures it quotes,
# then the pictures in docs/src/images/ (headless Chromium).
# Usage: tools/tutorial.sh [WORK_DIR] (default /tmp/rudder-tutorial). Takes about a
# minute on 2 cores after the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/rudder-tutorial}
bin="$root/target/release/rudder"
[ -x "$bin" ] || (cd "$root" && cargo build --release)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
export RUDDER_DATA="$root/data"
q="-q --watch off"

# 1. A reference setup carried to a smaller batch.
"$bin" train $q --data mnist --epochs 10 --batch-size 1024 --lr 0.4 --policy stop/terminate_on_nan --out ref
"$bin" train $q --data mnist --epochs 10 --batch-size 64 --lr 0.4 --policy batch/rescale --param ref_batch_size=1024 --out rescale
"$bin" train $q --data mnist --epochs 10 --batch-size 64 --lr 0.4 --policy batch/accumulate --param ref_batch_size=1024 --out accumulate
# 2. The sweep, and ten multipliers for the comparison picture.
"$bin" sweep -q --data mnist --epochs 3 --jobs 2 --out sweep >sweep.json.out 2>sweep.table
"$bin" sweep -q --data mnist --epochs 3 --jobs 2 --multipliers 0.125,0.25,0.5,0.75,1,1.5,2,3,4,8 --out sweep10 >/dev/null 2>&1
# 3a. Accuracy dropped a little: 10 % more epochs, with early stopping.
"$bin" train --watch off --data mnist --epochs 10 --batch-size 64 --lr 0.4 \
  --policy batch/rescale --param ref_batch_size=1024 \
  --policy stop/extend_on_drop --param target=0.98 --policy stop/early_stop --param patience=3 --out extend 2>extend.err
# 3b. It overfits: lower the LR.
"$bin" train $q --data "$root/data/mnist_5k.csv.gz" --epochs 30 --lr 0.1 --momentum 0.9 --policy stop/terminate_on_nan --out constant
"$bin" train $q --data "$root/data/mnist_5k.csv.gz" --epochs 30 --lr 0.1 --momentum 0.9 --policy stop/terminate_on_nan \
  --policy adapt/overfit_guard --param patience=1 --out guard
# lr-find, for its chart.
"$bin" lr-find -q --data mnist --optimizer adamw --out lrfind >lrfind.out 2>&1

python3 - <<'EOF'
import json
def lines(p): return [json.loads(l) for l in open(p)]
def row(name, d):
    m = lines(f"{d}/metrics.jsonl")
    best = min(m, key=lambda r: r["val_loss"] if r["val_loss"] is not None else 1e9)
    print(f"{name:12} steps {m[-1]['step']:6}  lr {m[-1]['lr']:.4g}  final val_acc {m[-1]['val_acc']:.4f}"
          f"  final val_loss {m[-1]['val_loss']:.4f}  best val_loss {best['val_loss']:.4f} (epoch {best['epoch'] + 1})"
          f"  epochs {len(m)}")
for name, d in [("reference", "ref"), ("rescale", "rescale"), ("accumulate", "accumulate"),
                ("extend", "extend"), ("constant", "constant"), ("guard", "guard")]:
    row(name, d)
s = json.load(open("sweep/sweep.json"))
for t in s["trials"]:
    print(f"sweep {t['dir']:6} lr {t['lr']:.4g}  best val_loss {t['best']['val_loss']['value']:.4f}"
          f"  final val_acc {t['final']['val_acc']:.4f}" + ("  (winner)" if s["trials"][s["winner"]] is t else ""))
EOF
grep -E "more epoch|stopping" extend.err || true
cat lrfind.out | tail -1

# The pictures: a run's report (3a: decisions and logs), the sweep's, ten runs on one
# page, and lr-find's chart.
shot() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/.chromium" --hide-scrollbars --window-size="$2" \
    --screenshot="$root/docs/src/images/$3" "file://$work/$1" >/dev/null 2>&1
}
shot extend/report.html 1280,1280 report-run.png
shot sweep/report.html 1280,1200 sweep-mnist.png
shot sweep10/report.html 1280,1200 compare-10.png
shot lrfind/lr_find.svg 1040,500 lr-find.png
ls -la "$root"/docs/src/images/*.png
