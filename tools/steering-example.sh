#!/usr/bin/env bash
# The session the book's "Steering a running run" page shows: an MNIST CNN run
# steered by `rudder ctl` while it trains. Prints each command and its answer.
# usage: tools/steering-example.sh [WORK]   (RUDDER_BIN, RUDDER_DATA as elsewhere)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${RUDDER_BIN:-$PWD/target/release/rudder}
DATA=${RUDDER_DATA:-$PWD/data}
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK" && cd "$WORK" && rm -rf runs/cnn
RUDDER_DATA=$DATA "$BIN" train -q --data mnist --model cnn --epochs 40 --out runs/cnn &
TRAIN=$!
epochs() { [ -f runs/cnn/metrics.jsonl ] && wc -l < runs/cnn/metrics.jsonl || echo 0; }
until_epoch() { while [ "$(epochs)" -lt "$1" ]; do sleep 0.2; done; }
ctl() { echo "\$ rudder ctl runs/cnn $*"; "$BIN" ctl runs/cnn "$@" 2>&1; echo "(exit $?)"; }
until_epoch 2
ctl save before-drop
ctl set lr=0.01
until_epoch 4
ctl rollback best
ctl set batch_size=100000
ctl set epochs=60
ctl stop "good enough"
wait $TRAIN
echo "train exit $?"
