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
print("written")
