"""What the control channel costs a step: throughput with each --watch mode.

usage: python3 bench/ctl_overhead.py [RUDDER_BIN] [--before OLD_BIN] [--reps 5]
Trains the embedded digits MLP at batch 8 (a step is about 0.1 ms, so a per-step cost
shows) for 20 epochs with a policy that does nothing, under --watch off (the channel
looked at each epoch's start only), auto (a native event flag, one atomic load per
step) and poll (a clock read per step, a stat every 200 ms); with --before, the same
under a build from before the channel. The modes run in turn, REPS rounds, so a
drift of the machine's speed touches each alike. Prints each one's median of the
rounds' median samples_per_s (epochs 2 to 20), and its ratio to off.
"""
import argparse, json, os, statistics, subprocess, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--before")
ap.add_argument("--reps", type=int, default=5)
a = ap.parse_args()
d = tempfile.mkdtemp()
open(os.path.join(d, "idle.rhai"), "w").write("fn on_epoch_end(ctx) { () }\n")
cases = [("off", a.bin), ("auto", a.bin), ("poll", a.bin)]
if a.before:
    cases.append(("auto, before", a.before))
rates = {name: [] for name, _ in cases}
for rep in range(a.reps):
    for name, binary in cases:
        out = os.path.join(d, f"r{rep}-{name.replace(', ', '-')}")
        subprocess.run([os.path.abspath(binary), "train", "-q", "--epochs", "20", "--batch-size", "8",
                        "--policy", "idle.rhai", "--watch", name.split(",")[0], "--out", out],
                       cwd=d, check=True)
        lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        rates[name].append(statistics.median(l["samples_per_s"] for l in lines[1:]))
base = statistics.median(rates["off"])
for name, _ in cases:
    m = statistics.median(rates[name])
    print(f"{name:>13}: {m:9.0f} samples/s  x{m / base:.3f} of off  rounds={[round(r) for r in rates[name]]}")
