"""A sweep on Slurm: what its coordinator costs per report, how long a scheduler's
decision takes to reach a trial, and on paper, from those figures, a 256-trial ASHA
sweep on 64 nodes against the same sweep on one machine.

usage: python3 bench/slurm_sweep.py [RUDDER_BIN] [--samples 16] [--epochs 4] [--jobs 2]
Starts the one-node cluster (tools/slurm-local.sh start), then runs
`rudder sweep --launcher slurm --scheduler sweep/asha` over SAMPLES draws of the LR
on MNIST (the embedded digits at batch 8 when data/mnist is absent), JOBS at a time,
and the same sweep with `--launcher local`. The coordinator's CPU time (its own and
its squeue/sbatch children's, from getrusage) is divided by the reports its
scheduler answered; a report's latency is what a trial's epoch takes on Slurm beyond
a local one's (a trial under a scheduler waits at each epoch's end for the answer).
"""
import argparse, json, os, resource, statistics, subprocess, tempfile, time
from datetime import datetime

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--samples", type=int, default=16)
ap.add_argument("--epochs", type=int, default=4)
ap.add_argument("--jobs", type=int, default=2)
a = ap.parse_args()
binary = os.path.abspath(a.bin)
subprocess.run(["tools/slurm-local.sh", "start"], check=True, stdout=subprocess.DEVNULL)
d = tempfile.mkdtemp(dir=os.getcwd(), prefix=".slurm-sweep-bench-")
data = ["--data", "mnist"] if os.path.isdir("data/mnist") else ["--batch-size", "8"]
env = dict(os.environ, RUDDER_DATA=os.path.abspath("data"))
common = ["sweep", "-q", *data, "--epochs", str(a.epochs), "--samples", str(a.samples),
          "--space", "lr=log(0.003,1)", "--jobs", str(a.jobs), "--scheduler", "sweep/asha"]


def run(out, extra):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run([binary, *common, "--out", out, *extra], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(os.path.join(out, "sweep.json")) as f:
        return wall, cpu, json.load(f)


def stamp(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


wall_s, cpu_s, s = run(os.path.join(d, "slurm"), ["--launcher", "slurm"])
wall_l, _, local = run(os.path.join(d, "local"), [])
reports = s["scheduler"]["reports"]
epoch_times, over, queued = [], [], []
for t in s["trials"]:
    run_dir = os.path.join(d, "slurm", t["dir"])
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    epoch_times += [l["epoch_time_s"] for l in lines]
    for at in t["slurm"]["attempts"]:
        trained = sum(l["epoch_time_s"] for l in lines)
        over.append(at["running_s"] - trained)
        queued.append(at["queued_s"])
local_times = [json.loads(l)["epoch_time_s"] for t in local["trials"]
               for l in open(os.path.join(d, "local", t["dir"], "metrics.jsonl"))]
# A trial under a scheduler waits at each epoch's end for the coordinator's answer
# (its epoch_time_s includes the wait): the answer's latency is what a Slurm
# trial's epoch takes beyond a local one's.
latency = [max(0.0, statistics.median(epoch_times) - statistics.median(local_times))]
t_e = statistics.median(local_times)
# A task's own cost: its start (the first tasks' queue time: nothing ahead of them
# but Slurm's scheduling pass), and what it runs beyond its epochs (loading the data,
# building the model, the coordinator seeing its end).
own = min(queued) + statistics.median(over)
# What each task costs a slot in all (its own cost and Slurm's turnaround between a
# task's end and the next one's start under --array's %N): the Slurm sweep's extra
# wall time over the local one, per task and slot.
o_task = max(own, (wall_s - wall_l) * a.jobs / len(s["trials"]))
per_report = cpu_s / max(reports, 1)
print(f"sweep: {len(s['trials'])} trials of {a.epochs} epochs, {a.jobs} at a time, sweep/asha, {' '.join(data)}")
print(f"Slurm: wall {wall_s:.1f} s; local: wall {wall_l:.1f} s; same winner: {s['trials'][s['winner']]['dir'] == local['trials'][local['winner']]['dir']}")
print(f"coordinator: {cpu_s:.2f} s CPU over {reports} reports ({wall_s / 0.1:.0f} looks, {wall_s:.0f} questions to squeue): {per_report * 1000:.1f} ms per report, looking and asking included")
print(f"a report's answer: a trial's epoch {statistics.median(epoch_times):.3f} s on Slurm against {statistics.median(local_times):.3f} s locally (median): {latency[0] * 1000:.0f} ms waiting per epoch")
print(f"a trial's epoch: median {t_e:.3f} s; a task's own cost beyond its epochs: {own:.2f} s (start {min(queued):.2f} s, then {statistics.median(over):.2f} s of setup and end); "
      f"a slot's cost per task, turnaround included: {o_task:.2f} s")
# On paper: 256 trials, ASHA reduction factor 4, grace 1, 16 epochs at most (rungs at
# 1 and 4): 256 first epochs, 64 trials on to 4, 16 on to 16.
epochs = 256 * 1 + 64 * 3 + 16 * 12
one = epochs * statistics.median(local_times) / 2
lat = latency[0]
work = (epochs * (t_e + lat) + 256 * o_task) / 64
path = 16 * (t_e + lat) + o_task
upper = 4 * (t_e + lat + o_task) + 12 * (t_e + lat) + 2 * o_task
print(f"on paper, 256-trial ASHA (rf 4, 1..16 epochs: {epochs} epochs): one machine, 2 trials at a time: {one:.0f} s; "
      f"64 nodes: between {max(work, path):.0f} s and {upper:.0f} s, coordinator {epochs * per_report:.1f} s CPU in all")
subprocess.run(["rm", "-rf", d])
