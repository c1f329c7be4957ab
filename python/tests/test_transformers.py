"""rudder.transformers.RudderCallback in a Hugging Face Trainer (CPU): the LR every
optimizer step uses is the policy's, whatever the Trainer's scheduler does, and a stop
ends training."""

import os

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from rudder.transformers import RudderCallback
from conftest import rel_close

os.environ.setdefault("WANDB_DISABLED", "true")


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return {"loss": torch.nn.functional.mse_loss(self.net(x), y)}


class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class Spy(TrainerCallback):
    """The LR of each optimizer step, read right after it stepped (before the
    Trainer's scheduler does)."""

    def __init__(self):
        self.lr = []

    def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
        self.lr.append((state.global_step, optimizer.param_groups[0]["lr"]))


def train(tmp_path, callback, epochs=3, **args):
    spy = Spy()
    targs = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=16,
                              learning_rate=0.1, lr_scheduler_type="linear", warmup_steps=2, logging_steps=1,
                              save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                              label_names=["y"], **args)
    t = Trainer(model=Model(), args=targs, train_dataset=Data(64), eval_dataset=Data(32), callbacks=[callback, spy])
    t.train()
    return t, spy


def test_the_applied_lr_is_the_policys(tmp_path):
    # StepLR(step_size=1, gamma=0.5) per epoch; the Trainer's own scheduler (linear
    # with warmup) would give other LRs.
    cb = RudderCallback(["lr/step"], params={"step_size": 1, "gamma": 0.5}, watch=False)
    t, spy = train(tmp_path, cb)
    assert len(spy.lr) == 12  # 4 steps an epoch
    for step, lr in spy.lr:
        assert rel_close(lr, 0.1 * 0.5 ** (step // 4)), (step, lr)
    logged = [h["learning_rate"] for h in t.state.log_history if "learning_rate" in h]
    assert [rel_close(a, b) for a, b in zip(logged, [lr for _, lr in spy.lr])] == [True] * len(logged)


def test_a_stop_ends_training(tmp_path):
    policy = tmp_path / "stop.rhai"
    policy.write_text("fn on_epoch_end(ctx) { if ctx.epoch == 1 { #{ stop: true, reason: \"two epochs\" } } }\n")
    cb = RudderCallback([str(policy)], watch=False)
    t, spy = train(tmp_path, cb, epochs=5, eval_strategy="epoch")
    assert t.state.global_step == 8
    # on_epoch_end heard the evaluation's loss.
    ends = [e for e in cb.policies.state()["run"]["history"]]
    assert len(ends) == 2 and ends[0]["val_loss"] is not None


def test_a_key_it_cannot_apply_is_an_event(tmp_path):
    policy = tmp_path / "grow.rhai"
    policy.write_text("fn on_epoch_start(ctx) { if ctx.epoch == 1 { #{ batch_size: 32, epochs: 9 } } }\n")
    cb = RudderCallback([str(policy)], watch=False)
    train(tmp_path, cb, epochs=2)
    keys = sorted(e["key"] for e in cb.policies.events if e["kind"] == "unsupported_decision")
    assert keys == ["batch_size", "epochs"]


def test_a_momentum_the_optimizer_lacks_is_an_event(tmp_path):
    # Adagrad has neither momentum nor betas: the decision cannot be applied.
    policy = tmp_path / "momentum.rhai"
    policy.write_text("fn on_epoch_start(ctx) { if ctx.epoch == 1 { #{ momentum: 0.9 } } }\n")
    cb = RudderCallback([str(policy)], watch=False)
    train(tmp_path, cb, epochs=2, optim="adagrad")
    keys = [e["key"] for e in cb.policies.events if e["kind"] == "unsupported_decision"]
    assert keys == ["momentum"]


def test_a_save_writes_the_trainers_checkpoint_with_the_applied_lr(tmp_path):
    # The scheduler is saved with the checkpoint: what the callback changed in it must
    # pickle (a function put on it once made every checkpoint fail).
    policy = tmp_path / "save.rhai"
    policy.write_text("fn on_epoch_end(ctx) { if ctx.epoch == 0 { #{ save: true } } }\n")
    cb = RudderCallback(["lr/step", str(policy)], params={"step_size": 1, "gamma": 0.5}, watch=False)
    t, spy = train(tmp_path, cb, epochs=2)
    saved = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert saved == ["checkpoint-4"]
    scheduler = torch.load(tmp_path / "checkpoint-4" / "scheduler.pt", weights_only=False)
    # The LR the scheduler reports, for each param group, is the one applied at step
    # 4: 0.1 in epoch 0 (the Trainer's linear schedule would have decayed it).
    assert set(scheduler["_last_lr"]) == {0.1}
    logged = [h["learning_rate"] for h in t.state.log_history if "learning_rate" in h]
    assert [rel_close(a, b) for a, b in zip(logged, [lr for _, lr in spy.lr])] == [True] * len(logged)
