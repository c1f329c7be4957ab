#!/usr/bin/env bash
# The book's tutorial (docs/src/guide/tutorial.md), rerun: every run it shows, on MNIST
# and the MNIST 5k CSV (tools/fetch-data.sh data first), then the figures it quotes,
# then the pictures in docs/src/images/ (headless Chromium).
# Usage: tools/tutorial.sh [WORK_DIR] [--figures-only] (default /tmp/rudder-tutorial).
# It writes WORK_DIR/figures.md: the tutorial's table rows and quoted phrases as this
# run measured them, each of which must be in the tutorial word for word
# (crates/cli/tests/it/tutorial.rs checks that with --figures-only, which skips the
# ten-trial sweep, lr-find and the pictures). $RUDDER_BIN: the binary (default
# target/release/rudder, built if missing); $RUDDER_DATA: the data (default data/).
# Takes about a minute on 2 cores after the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/rudder-tutorial
figures_only=0
for a in "$@"; do
  case $a in
    --figures-only) figures_only=1 ;;
    -*) echo "tools/tutorial.sh: unknown option $a" >&2; exit 2 ;;
    *) work=$a ;;
  esac
done
bin=${RUDDER_BIN:-$root/target/release/rudder}
[ -x "$bin" ] || (cd "$root" && cargo build --release)
export RUDDER_DATA=${RUDDER_DATA:-$root/data}
csv="$RUDDER_DATA/mnist_5k.csv.gz"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
q="-q --watch off"

# 1. A reference setup carried to a smaller batch; the reference at twice and four
# times its LR, and accumulation at four times.
"$bin" train $q --data mnist --epochs 10 --batch-size 1024 --lr 0.4 --policy stop/terminate_on_nan --out ref
"$bin" train $q --data mnist --epochs 10 --batch-size 64 --lr 0.4 --policy batch/rescale --param ref_batch_size=1024 --out rescale
"$bin" train $q --data mnist --epochs 10 --batch-size 64 --lr 0.4 --policy batch/accumulate --param ref_batch_size=1024 --out accumulate
"$bin" train $q --data mnist --epochs 10 --batch-size 1024 --lr 0.8 --policy stop/terminate_on_nan --out ref-lr0.8
"$bin" train $q --data mnist --epochs 10 --batch-size 1024 --lr 1.6 --policy stop/terminate_on_nan --out ref-lr1.6
"$bin" train $q --data mnist --epochs 10 --batch-size 64 --lr 1.6 --policy batch/accumulate --param ref_batch_size=1024 \
  --policy stop/terminate_on_nan --out accumulate-lr1.6
# 2. The sweep, and ten multipliers for the comparison picture.
"$bin" sweep -q --data mnist --epochs 3 --jobs 2 --out sweep >sweep.json.out 2>sweep.table
[ $figures_only = 1 ] || "$bin" sweep -q --data mnist --epochs 3 --jobs 2 --multipliers 0.125,0.25,0.5,0.75,1,1.5,2,3,4,8 --out sweep10 >/dev/null 2>&1
# 3a. Accuracy dropped a little: 10 % more epochs, with early stopping.
"$bin" train --watch off --data mnist --epochs 10 --batch-size 64 --lr 0.4 --log-steps \
  --policy batch/rescale --param ref_batch_size=1024 \
  --policy stop/extend_on_drop --param target=0.98 --policy stop/early_stop --param patience=3 --out extend 2>extend.err
# 3b. It overfits: lower the LR.
"$bin" train $q --data "$csv" --epochs 30 --lr 0.1 --momentum 0.9 --policy stop/terminate_on_nan --out constant
"$bin" train $q --data "$csv" --epochs 30 --lr 0.1 --momentum 0.9 --policy stop/terminate_on_nan \
  --policy adapt/overfit_guard --param patience=1 --out guard
# lr-find, for its chart.
[ $figures_only = 1 ] || "$bin" lr-find -q --data mnist --optimizer adamw --out lrfind >lrfind.out 2>&1

python3 "$root/tools/tutorial_figures.py" "$work"
grep -E "more epoch|stopping" extend.err || true
[ $figures_only = 1 ] && exit 0
tail -1 lrfind.out

# The pictures: a run's report (3a: decisions, logs and per-step curves), the sweep's,
# ten runs on one page, and lr-find's chart.
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
