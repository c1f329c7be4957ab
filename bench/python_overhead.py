"""What rudder's Python package costs a training loop.

1. One `on_step` call from Python (rudder.Policies with the per-step lr/onecycle and
   the default warmup-cosine policy, watched and not) against one step of torch's
   LambdaLR (a cosine) and OneCycleLR: microseconds per call, the median of 7 runs of
   20,000 calls each.
2. A Lightning fit (a linear model, batches of 32, CPU) without a callback, with an
   empty one (what Lightning itself costs per callback) and with
   RudderCallback(["lr/onecycle"]) (a per-step schedule; cycle_momentum off, so that
   SGD does the same work in each): microseconds per training step, the median of 7
   fits of 2,000 steps each, alternated; and, in the same fits, the time per step
   inside Lightning's dispatch of callback hooks (the callbacks' own work included).

usage: .venv/bin/python bench/python_overhead.py   (with the rudder wheel installed:
tools/python-check.sh installs it into .venv)
"""

import math
import statistics
import time
import timeit

import torch

import rudder

CALLS, RUNS = 20_000, 7
ROUNDS = 7  # alternated Lightning fits of each kind


def per_call(stmt):
    times = timeit.repeat(stmt, number=CALLS, repeat=RUNS)
    return statistics.median(times) / CALLS * 1e6


def hooks():
    rows = []
    total = 10 * 938
    for name in ("lr/onecycle", "default"):
        for watch in (False, True):
            p = rudder.Policies([name], watch=watch)
            p.on_train_start(lr=0.1, batch_size=64, epochs=10, steps_per_epoch=938)
            rows.append((f"rudder.Policies on_step ({name}, watch={watch})", per_call(lambda: p.on_step())))
    p = rudder.Policies(["lr/onecycle"], watch=False)
    p.on_train_start(lr=0.1, batch_size=64, epochs=10, steps_per_epoch=938)
    rows.append(("rudder.Policies on_step (lr/onecycle), 4 keyword metrics", per_call(
        lambda: p.on_step(epoch=1, lr=0.1, batch_size=64, train_loss=0.5))))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 + math.cos(math.pi * min(s, total) / total)) / 2)
    rows.append(("torch LambdaLR.step() (a cosine)", per_call(sched.step)))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10**7)
    rows.append(("torch OneCycleLR.step()", per_call(sched.step)))
    return rows


def lightning_steps():
    import lightning.pytorch as pl
    from rudder.lightning import RudderCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(32, 1)

        def training_step(self, batch, i):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64_000, 32, generator=g), torch.randn(64_000, 1, generator=g))
    steps = 2000

    def fit(callbacks):
        t = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, callbacks=callbacks, logger=False,
                       enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        loader = torch.utils.data.DataLoader(data, batch_size=32)
        start = time.perf_counter()
        t.fit(Module(), loader)
        return (time.perf_counter() - start) / steps * 1e6

    class Empty(pl.Callback):
        """Lightning's own cost of one callback: every hook dispatched, none doing anything."""

    # The time inside Lightning's dispatch of callback hooks (a private function of
    # Lightning's; the loops call it through its module), summed per fit: a figure that
    # the machine's noise between fits does not blur.
    import lightning.pytorch.trainer.call as call
    dispatch = call._call_callback_hooks
    spent = [0.0]

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return dispatch(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    call._call_callback_hooks = timed
    fit([])  # warm up imports and caches
    kinds = {"without": lambda: [], "empty": lambda: [Empty()],
             "with": lambda: [RudderCallback(["lr/onecycle"], params={"cycle_momentum": False}, watch=True)]}
    times = {k: [] for k in kinds}
    hooks = {k: [] for k in kinds}
    for _ in range(ROUNDS):
        for k, make in kinds.items():
            spent[0] = 0.0
            times[k].append(fit(make()))
            hooks[k].append(spent[0] / steps * 1e6)
    call._call_callback_hooks = dispatch
    return {k: statistics.median(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in hooks.items()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"{'call':58} us/call")
    for name, us in hooks():
        print(f"{name:58} {us:7.2f}")
    t, h = lightning_steps()
    a, e, b = t["without"], t["empty"], t["with"]
    print(f"Lightning fit, us per training step: without callback {a:.1f}, with an empty callback {e:.1f} "
          f"(x{e / a:.3f}), with RudderCallback {b:.1f} (+{b - a:.1f} us, x{b / a:.3f})")
    print(f"  of which in Lightning's callback hooks: {h['without']:.1f} without, {h['empty']:.1f} with the empty "
          f"callback (+{h['empty'] - h['without']:.1f}), {h['with']:.1f} with RudderCallback "
          f"(+{h['with'] - h['without']:.1f}: {(h['with'] - h['without']) / a * 100:.1f}% of a step without)")
