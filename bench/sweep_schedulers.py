"""ASHA against the full grid, and PBT against the best fixed LR, on MNIST.

usage: python3 bench/sweep_schedulers.py [RUDDER_BIN] [--epochs 9] [--jobs 2] [--rf 4]
       [--pbt-epochs 20] [--interval 4] [--data mnist] [--only asha|pbt]
ASHA: a 27-trial grid, 9 LRs x batch sizes 32, 64, 128 (LR coupled by the linear
rule from batch 64), trained --epochs each, run twice with the same --jobs: once
in full (--scheduler none) and once under sweep/asha (grace_period 1,
--rf, default 4). Prints each one's wall time, epochs trained, winner and its
best val_loss, and the ratio of the times.
PBT: 8 trials of LRs 0.001 to 1 (x~2.7 apart) at batch 64 for --pbt-epochs (20) under
sweep/pbt (perturbation_interval --interval (4), quantile_fraction 0.25, lr mutations
log(1e-3, --max-lr (1))), against
the grid's best fixed-LR trial at the same compute (the same 8 trials x epochs,
--scheduler none): both winners' best val_loss and val_acc.
The trials run `--policy stop/terminate_on_nan` (no LR schedule, which would
override PBT's LRs at every step). Wall times from time.monotonic around the command.
"""
import argparse, json, os, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--epochs", type=int, default=9)
ap.add_argument("--jobs", type=int, default=2)
ap.add_argument("--data", default="mnist")
ap.add_argument("--only")
ap.add_argument("--rf", type=int, default=4, help="ASHA's reduction_factor")
ap.add_argument("--pbt-epochs", type=int, default=20)
ap.add_argument("--interval", type=int, default=4, help="PBT's perturbation_interval")
ap.add_argument("--max-lr", type=float, default=1.0, help="the top of PBT's lr mutations")
a = ap.parse_args()
binary = os.path.abspath(a.bin)
d = tempfile.mkdtemp()
common = ["--data", a.data, "--jobs", str(a.jobs), "--policy", "stop/terminate_on_nan", "-q"]


def sweep(name, extra, epochs=a.epochs):
    out = os.path.join(d, name)
    t0 = time.monotonic()
    subprocess.run([binary, "sweep", "--out", out, "--epochs", str(epochs)] + common + extra, check=True,
                   stdout=subprocess.DEVNULL, cwd=os.getcwd())
    wall = time.monotonic() - t0
    s = json.load(open(os.path.join(out, "sweep.json")))
    epochs = sum(t["epochs_run"] for t in s["trials"])
    w = s["trials"][s["winner"]]
    return wall, epochs, w


def show(label, r):
    wall, epochs, w = r
    print(f"| {label} | {wall:.1f} | {epochs} | {w['dir']} | {w['best']['val_loss']['value']:.4f} | {w['best'].get('val_acc', {}).get('value', float('nan')):.4f} |")


print("| sweep | wall s | epochs trained | winner | best val_loss | best val_acc |")
print("| --- | ---: | ---: | --- | ---: | ---: |")
if a.only in (None, "asha"):
    lrs = "0.0025,0.005,0.01,0.02,0.04,0.08,0.16,0.32,0.64"
    grid = ["--batch-size", "64", "--grid", "batch_size=32,64,128", "--grid", f"lr={lrs}"]
    full = sweep("full", grid)
    show("27-trial grid, full", full)
    asha = sweep("asha", grid + ["--scheduler", "sweep/asha", "--scheduler-param", f"reduction_factor={a.rf}"])
    show("27-trial grid, sweep/asha", asha)
    print(f"\nASHA: {asha[0] / full[0]:.2f} of the full grid's time, {asha[1]} of {full[1]} epochs; "
          f"same winner: {asha[2]['dir'] == full[2]['dir']}")
if a.only in (None, "pbt"):
    lrs = "0.001,0.0027,0.0072,0.019,0.052,0.14,0.37,1"
    fixed = sweep("fixed", ["--grid", f"lr={lrs}"], a.pbt_epochs)
    show("8 fixed LRs (best)", fixed)
    pbt = sweep("pbt", ["--grid", f"lr={lrs}", "--scheduler", "sweep/pbt",
                        "--scheduler-param", f"perturbation_interval={a.interval}",
                        "--scheduler-param", f'mutations={{"lr": {{"log": [0.001, {a.max_lr}]}}}}'], a.pbt_epochs)
    show("8 trials, sweep/pbt (winner)", pbt)
    print(f"\nPBT: {pbt[1]} epochs against {fixed[1]}; winner's best val_loss "
          f"{pbt[2]['best']['val_loss']['value']:.4f} against {fixed[2]['best']['val_loss']['value']:.4f}")
