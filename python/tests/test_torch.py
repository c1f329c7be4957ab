"""rudder.torch.Steer on real torch optimizers: the LR sequences of torch's own
schedulers, a resizable batch, accumulation, save and rollback by torch.save."""

import pytest
import torch

import rudder
from rudder.torch import ResizableBatchSampler, Steer
from conftest import rel_close

EPOCHS, STEPS = 12, 5


def record(optimizer):
    """The (lr, momentum or beta1) of each optimizer step, as it steps."""
    used = []

    def pre(opt, args, kwargs):
        g = opt.param_groups[0]
        used.append((g["lr"], g["betas"][0] if "betas" in g else g.get("momentum")))

    optimizer.register_step_pre_hook(pre)
    return used


def run_steer(optimizer, policies, params, losses=None, epochs=EPOCHS):
    """EPOCHS x STEPS optimizer steps steered by `policies`."""
    steer = Steer(optimizer, policies, params=params, watch=False, epochs=epochs, steps_per_epoch=STEPS)
    used = record(optimizer)
    p = optimizer.param_groups[0]["params"][0]
    for epoch in steer.epochs():
        for _ in range(STEPS):
            if steer.backward((p * 1.0).sum()):
                steer.step()
        steer.epoch_end(val_loss=losses[epoch] if losses else 1.0 / (epoch + 1))
    return used


def torch_run(optimizer, scheduler, per_step, losses=None):
    """The same loop with torch's scheduler."""
    used = record(optimizer)
    p = optimizer.param_groups[0]["params"][0]
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            (p * 1.0).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
            if per_step:
                scheduler.step()
        if losses is not None:
            scheduler.step(losses[epoch])
        elif not per_step:
            scheduler.step()
    return used


def param():
    return [torch.nn.Parameter(torch.zeros(3))]


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for i, ((a, ma), (b, mb)) in enumerate(zip(ours, theirs)):
        assert rel_close(a, b), f"step {i}: lr {a} != torch's {b}"
        if mb is not None:
            assert rel_close(ma, mb), f"step {i}: momentum {ma} != torch's {mb}"


def test_cosine_is_cosine_annealing_lr():
    opt = torch.optim.SGD(param(), lr=0.1)
    theirs = torch_run(opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=0.001), False)
    ours = run_steer(torch.optim.SGD(param(), lr=0.1), ["lr/cosine"], {"eta_min": 0.001})
    assert_same(ours, theirs)


def test_onecycle_is_one_cycle_lr_with_its_momentum():
    opt = torch.optim.SGD(param(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=EPOCHS * STEPS, pct_start=0.25)
    theirs = torch_run(opt, sched, True)
    ours = run_steer(torch.optim.SGD(param(), lr=0.1, momentum=0.9), ["lr/onecycle"], {"max_lr": 0.3, "pct_start": 0.25})
    assert_same(ours, theirs)


def test_plateau_is_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.9, 0.91, 0.95, 0.9, 0.89999, 0.8, 0.85, 0.86, 0.87, 0.88]
    opt = torch.optim.SGD(param(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.01)
    theirs = torch_run(opt, sched, False, losses)
    ours = run_steer(torch.optim.SGD(param(), lr=0.1), ["adapt/plateau"],
                     {"factor": 0.5, "patience": 1, "threshold": 0.01}, losses)
    assert_same(ours, theirs)
    assert theirs[-1][0] < 0.1  # it did reduce


def test_adam_momentum_is_beta1():
    opt = torch.optim.AdamW(param(), lr=0.01, betas=(0.9, 0.99))
    ours = run_steer(opt, ["lr/onecycle"], {"max_lr": 0.01})
    assert opt.param_groups[0]["betas"][1] == 0.99
    assert rel_close(ours[0][1], 0.95) and min(m for _, m in ours) == pytest.approx(0.85)


def test_batch_size_and_accumulation_reach_the_loop(tmp_path):
    policy = tmp_path / "grow.rhai"
    policy.write_text(
        "fn on_epoch_start(ctx) {\n"
        "    if ctx.epoch == 1 { #{ batch_size: 20 } } else if ctx.epoch == 2 { #{ accumulation: 2 } }\n"
        "}\n")
    data = torch.utils.data.TensorDataset(torch.randn(100, 4), torch.randn(100, 1))
    sampler = ResizableBatchSampler(len(data), batch_size=10)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steer = Steer(opt, [str(policy)], watch=False, epochs=3, sampler=sampler)
    sizes, steps = [], []
    for epoch in steer.epochs():
        n = 0
        for x, y in loader:
            sizes.append((epoch, len(x)))
            if steer.backward(torch.nn.functional.mse_loss(model(x), y)):
                steer.step()
                n += 1
        steps.append(n)
        steer.epoch_end(val_loss=1.0)
    assert {s for e, s in sizes if e == 0} == {10} and {s for e, s in sizes if e >= 1} == {20}
    # Linear rule: batch 10 -> 20 doubles the LR.
    assert rel_close(opt.param_groups[0]["lr"], 0.2)
    assert steps == [10, 5, 2]  # epoch 2: 5 batches, 2 micro-batches per step (the 5th waits)


def test_save_and_rollback_use_torch_save(tmp_path):
    policy = tmp_path / "undo.rhai"
    policy.write_text(
        "fn on_epoch_start(ctx) {\n"
        "    if ctx.epoch == 1 { #{ save: \"mid\" } } else if ctx.epoch == 3 { #{ rollback: \"last\", lr: 0.01 } }\n"
        "}\n")
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    steer = Steer(opt, [str(policy)], watch=False, epochs=4, steps_per_epoch=1, model=model,
                  checkpoint_dir=str(tmp_path / "ckpt"))
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    at_save = None
    for epoch in steer.epochs():
        if epoch == 1:
            at_save = {k: v.clone() for k, v in model.state_dict().items()}
        if epoch == 3:
            for k, v in model.state_dict().items():
                assert torch.equal(v, at_save[k]), k
            assert opt.param_groups[0]["lr"] == 0.01
        if steer.backward(torch.nn.functional.mse_loss(model(x), y)):
            steer.step()
        steer.epoch_end(val_loss=1.0)
    saved = torch.load(tmp_path / "ckpt" / "mid" / "checkpoint.pt", weights_only=False)
    assert set(saved) >= {"model", "optimizer", "policies"}
    assert (tmp_path / "ckpt" / "best" / "checkpoint.pt").exists()


def test_a_key_it_cannot_apply_is_an_event(tmp_path):
    policy = tmp_path / "big.rhai"
    policy.write_text("fn on_train_start(ctx) { #{ batch_size: 32, save: true } }\n")
    opt = torch.optim.SGD(param(), lr=0.1)
    steer = Steer(opt, [str(policy)], watch=False, epochs=1, batch_size=16, dataset_size=64)
    steer.start()
    unsupported = [e for e in steer.policies.events if e["kind"] == "unsupported_decision"]
    assert {e["key"] for e in unsupported} == {"batch_size", "save"}


class _Runs:
    """Pickles as a call of os.system: what a hostile checkpoint file carries."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os
        return (os.system, (self.command,))


def test_a_checkpoint_that_carries_code_is_refused_not_run(tmp_path):
    from rudder.torch import safe_load
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Runs(f"touch {marker}")}, path)
    p = rudder.Policies(["lr/constant"], watch=False)
    assert safe_load(p, str(path)) is None
    assert not marker.exists()
    refused = [e for e in p.events if e["kind"] == "unsupported_decision"]
    assert refused and refused[0]["key"] == "rollback" and "evil.pt" in refused[0]["message"]
    # A checkpoint of tensors and numbers loads.
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "ok.pt")
    assert safe_load(p, str(tmp_path / "ok.pt"))["epoch"] == 3
