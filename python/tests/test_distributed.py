"""Two CPU processes (gloo): a plain `torchrun --nproc-per-node 2` loop with
rudder.torch.Steer, a Lightning `ddp` fit with RudderCallback, and a Hugging Face
Trainer under `accelerate launch` with its RudderCallback. In each, the
policies run on rank 0 only: both ranks take the same LR at every step (torch's
OneCycleLR until the edit), an edit saved by rank 0 lands on both ranks at the same
step, and the events and the log line are written once; a save and a rollback from
the edited version leave both ranks with the same weights (the Trainer saves one
checkpoint and reports the rollback it cannot apply)."""

import json
import pathlib
import subprocess
import sys

import pytest
import torch

from conftest import write

HERE = pathlib.Path(__file__).parent / "dist"
sys.path.insert(0, str(HERE))
from edit import EDIT_AT, EPOCHS, UNEDITED  # noqa: E402


def onecycle(total):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, cycle_momentum=False)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def run(command, tmp_path):
    policy = tmp_path / "edit.rhai"
    write(policy, UNEDITED)
    done = subprocess.run(command + [str(tmp_path), str(policy)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, done.stdout + done.stderr


def check(ranks, output, rollback=True):
    zero, one = ranks
    steps = EPOCHS * zero["steps_per_epoch"]
    assert len(zero["lrs"]) == len(one["lrs"]) == steps
    assert zero["lrs"] == one["lrs"]
    theirs = onecycle(steps)
    for ours, want in zip(zero["lrs"][:EDIT_AT], theirs[:EDIT_AT]):
        assert ours == pytest.approx(want, rel=1e-12)
    assert zero["lrs"][EDIT_AT:] == [0.001] * (steps - EDIT_AT)
    assert zero["lrs"][EDIT_AT - 1] != 0.001
    assert [e["kind"] for e in zero["events"]].count("reload") == 1
    assert one["events"] == []
    assert zero["weights"] == one["weights"]
    assert output.count("policy: edited") == 1, output[-3000:]
    unsupported = [e for e in zero["events"] if e["kind"] == "unsupported_decision"]
    if rollback:
        assert output.count("rolled back to") == 1, output[-3000:]
        assert not unsupported
    else:
        # A running Trainer cannot roll back: said once, by rank 0.
        assert [e["key"] for e in unsupported] == ["rollback"], unsupported


def test_a_torchrun_loop_takes_rank_zeros_decisions_on_both_ranks(tmp_path):
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    ranks, output = run([str(torchrun), "--nproc-per-node", "2", "--master-port", "29517",
                         str(HERE / "torchrun_loop.py")], tmp_path)
    check(ranks, output)


def test_a_lightning_ddp_fit_takes_rank_zeros_decisions_on_both_ranks(tmp_path):
    ranks, output = run([sys.executable, str(HERE / "lightning_ddp.py")], tmp_path)
    check(ranks, output)


def test_a_hugging_face_trainer_under_accelerate_launch_takes_rank_zeros_decisions(tmp_path):
    accelerate = pathlib.Path(sys.executable).with_name("accelerate")
    ranks, output = run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29519",
                         str(HERE / "hf_trainer.py")], tmp_path)
    check(ranks, output, rollback=False)
    # The edit's save at step EDIT_AT: the Trainer's checkpoint after that step, once.
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == [f"checkpoint-{EDIT_AT + 1}"]
