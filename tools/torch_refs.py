"""Writes scripts/tests/*.json: policy test cases with the numbers the real libraries
give (torch.optim.lr_scheduler, transformers' schedules, Lightning's EarlyStopping),
three or more non-default settings each.

usage: python tools/torch_refs.py   (needs torch, transformers, lightning; run from
the repository root). lr_warmup_*.json and stop_terminate_on_nan_1.json are written
by hand from their formulas and are not touched.
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
# transformers: inverse_sqrt and wsd are LambdaLR factors of the base LR, per step.
from transformers import optimization as T

def lambda_cases(make, steps, base):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    out = []
    for s in range(steps):
        lr = opt.param_groups[0]["lr"]
        out.append({"hook": "on_step", "ctx": {"step": s, "epochs": 1, "steps_per_epoch": steps, "base_lr": base, "lr": lr}, "expect": {"lr": lr}})
        opt.step(); sched.step()
    return out

HF = {
    "lr/inverse_sqrt": [dict(num_warmup_steps=5), dict(num_warmup_steps=10, timescale=3), dict(num_warmup_steps=0, timescale=4)],
    "lr/wsd": [
        dict(num_warmup_steps=4, num_decay_steps=6, num_training_steps=20),
        dict(num_warmup_steps=5, num_decay_steps=8, num_stable_steps=3, warmup_type="cosine", decay_type="1-sqrt", min_lr_ratio=0.1),
        dict(num_warmup_steps=3, num_decay_steps=10, num_training_steps=25, warmup_type="1-sqrt", decay_type="cosine", min_lr_ratio=0.05, num_cycles=1.0),
    ],
}
for policy, settings in HF.items():
    for i, kw in enumerate(settings):
        fn = T.get_inverse_sqrt_schedule if policy == "lr/inverse_sqrt" else T.get_wsd_schedule
        cases = lambda_cases(lambda opt: fn(opt, **kw), 30, [0.1, 0.5, 1.0][i])
        with open(f"scripts/tests/{policy.replace('/', '_')}_{i + 1}.json", "w") as f:
            json.dump({"policy": policy, "params": kw, "cases": cases}, f, indent=1)
            f.write("\n")

# Lightning EarlyStopping's own decision on recorded series (NaN included).
from lightning.pytorch.callbacks import EarlyStopping
ES = [
    (dict(monitor="val_loss", mode="min", min_delta=0.0, patience=3), "val_loss", [1.0, 0.9, 0.95, 0.93, 0.91, 0.92, 0.89, 0.9, 0.9, 0.9, 0.9]),
    (dict(monitor="val_loss", mode="min", min_delta=0.05, patience=2, divergence_threshold=2.0), "val_loss", [1.0, 0.97, 0.93, 0.94, 0.8, 0.78, 1.5, 2.5]),
    (dict(monitor="val_acc", mode="max", min_delta=0.01, patience=4, stopping_threshold=0.95, check_finite=True), "val_acc", [0.5, 0.6, 0.605, 0.7, 0.71, 0.712, 0.9, NAN]),
    (dict(monitor="val_acc", mode="max", min_delta=0.0, patience=5, stopping_threshold=0.95), "val_acc", [0.5, 0.8, 0.96, 0.97]),
]
for i, (kw, metric, series) in enumerate(ES):
    es = EarlyStopping(**kw)
    cases = []
    for e, v in enumerate(series):
        stop, reason = es._evaluate_stopping_criteria(torch.tensor(v))
        ctx = {"epoch": e, "epochs": 100, metric: None if math.isnan(v) else v}
        cases.append({"hook": "on_epoch_end", "ctx": ctx, "expect": {"stop": bool(stop)}})
        if stop:
            break
    params = {k: v for k, v in kw.items()}
    with open(f"scripts/tests/stop_early_stop_{i + 1}.json", "w") as f:
        json.dump({"policy": "stop/early_stop", "params": params, "cases": cases}, f, indent=1)
        f.write("\n")
print("written")
