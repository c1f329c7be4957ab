"""Control-channel latency: from `rudder ctl` starting to the run's answer.

usage: python3 bench/ctl_latency.py [RUDDER_BIN] [--watch auto|poll|off] [--lines 20]
                                    [--data digits|mnist]
Starts `rudder train` on the embedded digits or MNIST (MLP, batch 8: a step is about
0.1 ms; an epoch of digits about 20 ms, which every mode also looks at its start, of
MNIST about a second; MNIST is read from $RUDDER_DATA or ./data)
for as long as it is told (a policy that does nothing), then runs `rudder ctl r set lr=X` 20 times, 0.3 s apart.
For each: the time from the line's append (the ctl process starting) to the
`decision` event the run wrote at the step boundary where it applied it (the event's
own timestamp), and the ctl process's whole wall time (it polls events.jsonl every
100 ms for its answer). Prints median and max of both.
"""
import argparse, datetime, json, os, statistics, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--watch", default="auto")
ap.add_argument("--lines", type=int, default=20)
ap.add_argument("--data", default="digits", help="digits (an epoch ~20 ms) or mnist (~1 s)")
a = ap.parse_args()
binary = os.path.abspath(a.bin)
d = tempfile.mkdtemp()
# A policy that does nothing: the default's early stop would end the run first.
open(os.path.join(d, "idle.rhai"), "w").write("fn on_epoch_end(ctx) { () }\n")
p = subprocess.Popen([binary, "train", "-q", "--epochs", "100000", "--batch-size", "8",
                      "--data", a.data, "--policy", "idle.rhai", "--watch", a.watch, "--out", "r"], cwd=d,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
events = os.path.join(d, "r", "events.jsonl")
while not os.path.exists(os.path.join(d, "r", "metrics.jsonl")):
    time.sleep(0.05)
started, walls = [], []
for k in range(1, a.lines + 1):
    started.append(datetime.datetime.now(datetime.timezone.utc))
    t = time.perf_counter()
    out = subprocess.run([binary, "ctl", "r", "set", f"lr={0.01 + k * 0.0001:.4f}"], cwd=d,
                         capture_output=True, text=True)
    walls.append((time.perf_counter() - t) * 1000)
    assert out.returncode == 0, out.stderr
    time.sleep(0.3)
subprocess.run([binary, "ctl", "r", "stop"], cwd=d, capture_output=True)
p.wait(timeout=60)
decided = [json.loads(l) for l in open(events)
           if '"policy":"control"' in l and '"kind":"decision"' in l][: a.lines]
parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
    tzinfo=datetime.timezone.utc)
lat = [(parse(e["time"]) - s).total_seconds() * 1000 for s, e in zip(started, decided)]
print(f"data={a.data} watch={a.watch} lines={len(lat)} applied_ms median={statistics.median(lat):.0f} "
      f"max={max(lat):.0f} ctl_wall_ms median={statistics.median(walls):.0f} max={max(walls):.0f}")
