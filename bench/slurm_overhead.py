"""What a Slurm task costs a trial before it trains: submit to first epoch, against a
local process.

usage: python3 bench/slurm_overhead.py [RUDDER_BIN] [--reps 7]
Starts the one-node cluster (tools/slurm-local.sh start), then REPS times, in turn:
`rudder train --epochs 1` on the embedded digits as a local process, and the same as
`sbatch --wrap` (one CPU); each timed from the spawn or the sbatch call to the first
line of its metrics.jsonl (one epoch: about 40 ms of training). Prints the medians
and the difference: the per-trial cost of a Slurm task on this cluster.
"""
import argparse, os, statistics, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--reps", type=int, default=7)
a = ap.parse_args()
binary = os.path.abspath(a.bin)
subprocess.run(["tools/slurm-local.sh", "start"], check=True, stdout=subprocess.DEVNULL)
d = tempfile.mkdtemp(dir=os.getcwd(), prefix=".slurm-bench-")


def first_line(path, t0, limit=120):
    while time.monotonic() - t0 < limit:
        try:
            with open(path) as f:
                if f.readline().endswith("\n"):
                    return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"no first epoch in {path} after {limit} s")


local, slurm = [], []
for rep in range(a.reps):
    out = os.path.join(d, f"local{rep}")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "train", "-q", "--epochs", "1", "--out", out], stdout=subprocess.DEVNULL)
    local.append(first_line(os.path.join(out, "metrics.jsonl"), t0))
    p.wait()
    out = os.path.join(d, f"slurm{rep}")
    t0 = time.monotonic()
    subprocess.run(["sbatch", "--quiet", "-c", "1", "-o", "/dev/null",
                    "--wrap", f"{binary} train -q --epochs 1 --threads 1 --out {out}"], check=True)
    slurm.append(first_line(os.path.join(out, "metrics.jsonl"), t0))
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.05)
ml, ms = statistics.median(local), statistics.median(slurm)
print(f"local process, spawn to first epoch: median {ml * 1000:.0f} ms (min {min(local) * 1000:.0f}, max {max(local) * 1000:.0f})")
print(f"Slurm task, sbatch to first epoch:   median {ms * 1000:.0f} ms (min {min(slurm) * 1000:.0f}, max {max(slurm) * 1000:.0f})")
print(f"a Slurm task's cost per trial: {(ms - ml) * 1000:.0f} ms")
subprocess.run(["rm", "-rf", d])
