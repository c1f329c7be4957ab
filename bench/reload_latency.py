"""Hot-reload latency: from a policy save to the first step under the new version.

usage: python3 bench/reload_latency.py [RUDDER_BIN] [--watch auto|poll] [--saves 20]
Starts `rudder train --log-steps` on digits with a policy that sets a new LR per
version, saves it in place 20 times (0.6 s apart), and matches each save's time to
the reload event in events.jsonl (written at the step boundary where the new version
takes over; the first step under it follows at once). Prints median and max.
"""
import argparse, datetime, json, os, statistics, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--watch", default="auto")
ap.add_argument("--saves", type=int, default=20)
a = ap.parse_args()
binary = os.path.abspath(a.bin)
d = tempfile.mkdtemp()
pol = os.path.join(d, "steer.rhai")
src = lambda k: f"fn on_epoch_start(ctx) {{ #{{ lr: {0.01 + k * 0.001} }} }}\n"
open(pol, "w").write(src(0))
p = subprocess.Popen([binary, "train", "-q", "--epochs", "100000", "--batch-size", "8", "--policy", "steer.rhai",
                      "--watch", a.watch, "--out", "r"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
events = os.path.join(d, "r", "events.jsonl")
time.sleep(1.0)
saved = []
for k in range(1, a.saves + 1):
    with open(pol, "w") as f:
        f.write(src(k))
    saved.append(datetime.datetime.now(datetime.timezone.utc))
    time.sleep(0.6)
open(pol, "w").write("fn on_epoch_start(ctx) { #{ stop: true } }\n")
p.wait(timeout=60)
reloads = [json.loads(l) for l in open(events) if '"kind":"reload"' in l][: a.saves]
when = [datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc) for e in reloads]
lat = [(w - s).total_seconds() * 1000 for s, w in zip(saved, when)]
step_ms = None
print(f"watch={a.watch} reloads={len(lat)} latency_ms median={statistics.median(lat):.0f} max={max(lat):.0f} all={[round(x) for x in lat]}")
