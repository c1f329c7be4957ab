"""The tutorial's figures from the runs tools/tutorial.sh made in WORK_DIR.

Prints a summary and writes WORK_DIR/figures.md: one line per table row and quoted
phrase of docs/src/guide/tutorial.md, as these runs measured them. Every line of
figures.md must appear in the tutorial (a table row as a whole line), which
crates/cli/tests/it/tutorial.rs checks.
"""
import json
import math
import sys
from pathlib import Path

work = Path(sys.argv[1])


def lines(p):
    return [json.loads(line) for line in open(work / p)]


def metrics(d):
    return lines(f"{d}/metrics.jsonl")


def f4(x):
    return f"{x:.4f}"


def lr(x):
    return f"{x:.2g}"


def best(m):
    """The best val_loss and its epoch (from 1), as the tables show it."""
    r = min((r for r in m if r["val_loss"] is not None and math.isfinite(r["val_loss"])),
            key=lambda r: r["val_loss"])
    return f"{f4(r['val_loss'])} ({r['epoch'] + 1})"


def diverged_in(d):
    """The epoch (from 1) a run stopped in on a NaN loss, or None."""
    end = [e for e in lines(f"{d}/events.jsonl") if e["kind"] == "run_end"]
    if end and "NaN" in (end[-1].get("reason") or ""):
        return end[-1]["epoch"] + 1
    return None


out = []
# 1. The reference and the two carried setups.
for name, d in [("reference, batch 1024", "ref"), ("`batch/rescale`, batch 64", "rescale"),
                ("`batch/accumulate`, 16 x 64", "accumulate")]:
    m = metrics(d)
    last = m[-1]
    out.append(f"| {name} | {last['step']:,} | {lr(last['lr'])} | {f4(last['val_acc'])} "
               f"| {f4(last['val_loss'])} | {best(m)} |")
ref = metrics("ref")
tail = ", ".join(f4(r["val_loss"]) for r in ref[-4:])
out.append(f"its val_loss after epochs {len(ref) - 3} to {len(ref)}: {tail}")
m8 = metrics("ref-lr0.8")
if diverged_in("ref-lr0.8") is None:
    out.append(f"at LR 0.8 it ends at {f4(m8[-1]['val_loss'])}")
for what, d in [("at LR 1.6 the batch-1024 run", "ref-lr1.6"),
                ("accumulation at LR 1.6", "accumulate-lr1.6")]:
    e = diverged_in(d)
    out.append(f"{what} diverges in epoch {e}" if e else f"{what} does not diverge")

# 2. The sweep, in LR order as its table prints it.
s = json.load(open(work / "sweep/sweep.json"))
winner = s["trials"][s["winner"]]
for t in sorted(s["trials"], key=lambda t: t["lr"]):
    name = f"**{t['dir']} (winner)**" if t is winner else t["dir"]
    out.append(f"| {name} | {lr(t['lr'])} | {f4(t['best']['val_loss']['value'])} "
               f"| {f4(t['final']['val_acc'])} |")

# 3a. The extended run: its log lines and where it ended.
logs = [e["message"] for e in lines("extend/events.jsonl")
        if e["kind"] == "log" and "more epoch" in e["message"]]
ext = metrics("extend")
if logs:
    out.append(f"It logged `{logs[0]}` after epoch {len(metrics('rescale'))}")
    for line, r in zip(logs[1:], ext[len(metrics("rescale")):]):
        out.append(f"again after {r['epoch'] + 1} ({f4(r['val_acc'])})")
out.append(f"ended after {len(ext)} epochs at **{f4(ext[-1]['val_acc'])}**")

# 3b. Overfitting: the constant LR and the guard.
const = metrics("constant")
out.append(f"best after epoch {best(const).split('(')[1].rstrip(')')} ({f4(min(r['val_loss'] for r in const))})"
           f" and climbs to {f4(const[-1]['val_loss'])} by epoch {len(const)}")
for name, d in [("constant LR", "constant"), ("`adapt/overfit_guard`", "guard")]:
    m = metrics(d)
    out.append(f"| {name} | {f4(m[-1]['val_acc'])} | {f4(m[-1]['val_loss'])} | {best(m)} "
               f"| {lr(m[-1]['lr'])} |")

(work / "figures.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
