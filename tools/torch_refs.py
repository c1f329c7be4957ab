"""Writes scripts/tests/*.json: policy test cases for the lr/ policies with the LRs
the real torch.optim.lr_scheduler gives, three non-default settings each.

usage: python tools/torch_refs.py   (needs torch; run from the repository root)
"""
import json, math
import torch
from torch.optim import lr_scheduler as S

EPOCHS = 14
CASES = {
    "lr/constant": [("ConstantLR", dict(factor=0.5, total_iters=3)), ("ConstantLR", dict(factor=0.25, total_iters=7)), ("ConstantLR", dict(factor=0.9, total_iters=1))],
    "lr/step": [("StepLR", dict(step_size=3, gamma=0.5)), ("StepLR", dict(step_size=1, gamma=0.9)), ("StepLR", dict(step_size=5, gamma=0.3))],
    "lr/multistep": [("MultiStepLR", dict(milestones=[2, 5, 9], gamma=0.1)), ("MultiStepLR", dict(milestones=[4], gamma=0.5)), ("MultiStepLR", dict(milestones=[1, 2, 3, 10], gamma=0.8))],
    "lr/exponential": [("ExponentialLR", dict(gamma=0.5)), ("ExponentialLR", dict(gamma=0.95)), ("ExponentialLR", dict(gamma=1.1))],
    "lr/linear": [("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=4)), ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=10)), ("LinearLR", dict(start_factor=0.5, end_factor=0.75, total_iters=6))],
    "lr/polynomial": [("PolynomialLR", dict(total_iters=4, power=2.0)), ("PolynomialLR", dict(total_iters=10, power=0.5)), ("PolynomialLR", dict(total_iters=7, power=1.0))],
    "lr/cosine_restarts": [("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=1, eta_min=0.0)), ("CosineAnnealingWarmRestarts", dict(T_0=2, T_mult=2, eta_min=0.001)), ("CosineAnnealingWarmRestarts", dict(T_0=1, T_mult=3, eta_min=0.01))],
    "lr/cosine": [("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)), ("CosineAnnealingLR", dict(T_max=5, eta_min=0.0)), ("CosineAnnealingLR", dict(T_max=14, eta_min=0.01))],
}
for policy, settings in CASES.items():
    for i, (cls, kw) in enumerate(settings):
        base = [0.1, 0.05, 1.0][i]
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sched = getattr(S, cls)(opt, **kw)
        cases = []
        for e in range(EPOCHS):
            lr = opt.param_groups[0]["lr"]
            cases.append({"hook": "on_epoch_start", "ctx": {"epoch": e, "epochs": EPOCHS, "base_lr": base, "lr": lr}, "expect": {"lr": lr}})
            opt.step(); sched.step()
        name = policy.replace("/", "_")
        with open(f"scripts/tests/{name}_{i + 1}.json", "w") as f:
            json.dump({"policy": policy, "params": kw, "cases": cases}, f, indent=1)
            f.write("\n")
# ReduceLROnPlateau on recorded loss series (with NaN), cases in order (`this` carries).
NAN = float("nan")
SERIES = {
    "val_loss": [1.0, 0.9, 0.9, 0.91, 0.95, 0.9, 0.89999, 0.8, NAN, 0.85, 0.86, 0.87, 0.88, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76],
    "val_acc": [0.5, 0.6, 0.6, 0.61, 0.6, 0.59, 0.7, 0.7, 0.7, NAN, 0.71, 0.69, 0.68, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 0.9],
}
PLATEAU = [
    dict(mode="min", factor=0.5, patience=2, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8),
    dict(mode="min", factor=0.1, patience=1, threshold=0.02, threshold_mode="abs", cooldown=2, min_lr=0.0005, eps=1e-8),
    dict(mode="max", factor=0.3, patience=0, threshold=0.01, threshold_mode="rel", cooldown=1, min_lr=0.0, eps=1e-8),
]
for i, kw in enumerate(PLATEAU):
    monitor = "val_loss" if kw["mode"] == "min" else "val_acc"
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = S.ReduceLROnPlateau(opt, **kw)
    cases = []
    for e, m in enumerate(SERIES[monitor]):
        before = opt.param_groups[0]["lr"]
        sched.step(m)
        after = opt.param_groups[0]["lr"]
        ctx = {"epoch": e, "epochs": len(SERIES[monitor]), "base_lr": 0.1, "lr": before, monitor: None if math.isnan(m) else m}
        cases.append({"hook": "on_epoch_end", "ctx": ctx, "expect": {"lr": after if after != before else None}})
    with open(f"scripts/tests/adapt_plateau_{i + 1}.json", "w") as f:
        json.dump({"policy": "adapt/plateau", "params": dict(kw, monitor=monitor), "cases": cases}, f, indent=1)
        f.write("\n")
# Step-level: OneCycleLR and CyclicLR, lr and momentum before each optimizer step.
STEPWISE = {
    "lr/onecycle": [
        ("OneCycleLR", dict(max_lr=0.5, total_steps=40, pct_start=0.25)),
        ("OneCycleLR", dict(max_lr=1.0, total_steps=30, pct_start=0.4, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)),
        ("OneCycleLR", dict(max_lr=0.2, total_steps=50, pct_start=0.3, three_phase=True, base_momentum=0.8, max_momentum=0.9)),
    ],
    "lr/cyclic": [
        ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
        ("CyclicLR", dict(base_lr=0.001, max_lr=0.05, step_size_up=3, step_size_down=7, mode="triangular2")),
        ("CyclicLR", dict(base_lr=0.02, max_lr=0.2, step_size_up=5, mode="exp_range", gamma=0.97, base_momentum=0.7, max_momentum=0.95)),
    ],
}
for policy, settings in STEPWISE.items():
    for i, (cls, kw) in enumerate(settings):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        sched = getattr(S, cls)(opt, **kw)
        steps = kw.get("total_steps", 36)
        cases = []
        for s in range(steps):
            g = opt.param_groups[0]
            cases.append({"hook": "on_step", "ctx": {"step": s, "epochs": 1, "steps_per_epoch": steps, "base_lr": 0.1, "lr": g["lr"]},
                          "expect": {"lr": g["lr"], "momentum": g["momentum"]}})
            opt.step(); sched.step()
        with open(f"scripts/tests/{policy.replace('/', '_')}_{i + 1}.json", "w") as f:
            json.dump({"policy": policy, "params": kw, "cases": cases}, f, indent=1)
            f.write("\n")
print("written")
