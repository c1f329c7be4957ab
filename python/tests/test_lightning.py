"""rudder.lightning.RudderCallback in a real Trainer.fit (CPU): a policy file edited
during the fit, early stopping as Lightning's own, a save as a Lightning checkpoint."""

import lightning.pytorch as pl
import torch

from rudder.lightning import RudderCallback
from conftest import wait_for, write


class Module(pl.LightningModule):
    """A linear model on 256 random examples; `val_losses[epoch]` is logged as
    val_loss when given (to drive early stopping), else the real loss."""

    def __init__(self, val_losses=None):
        super().__init__()
        self.net = torch.nn.Linear(8, 1)
        self.val_losses = val_losses
        self.epochs_trained = 0
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(256, 8, generator=g), torch.randn(256, 1, generator=g)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        if self.val_losses is not None:
            loss = torch.tensor(self.val_losses[self.current_epoch])
        self.log("val_loss", loss)

    def on_train_epoch_end(self):
        self.epochs_trained += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x, self.y), batch_size=32)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x[:64], self.y[:64]), batch_size=64)


def trainer(tmp_path, callbacks, max_epochs):
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=callbacks,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))


class Editor(pl.Callback):
    """Saves `edits[step]` over the policy file before that step's batch, and waits
    until the watcher has seen it; records the LR each optimizer step used."""

    def __init__(self, rudder, path, edits):
        self.rudder, self.path, self.edits, self.lr = rudder, path, edits, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        text = self.edits.get(trainer.global_step)
        if text is not None:
            write(self.path, text)
            assert wait_for(lambda: self.rudder.policies.edit_seen), "the watcher never saw the save"

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lr[trainer.global_step] = optimizer.param_groups[0]["lr"]


def test_an_edit_during_fit_changes_the_lr_at_the_next_step(tmp_path):
    policy = tmp_path / "rate.rhai"
    write(policy, "fn on_step(ctx) { #{ lr: 0.1 } }\n")
    rudder_cb = RudderCallback([str(policy)])
    editor = Editor(rudder_cb, policy, {5: "fn on_step(ctx) { #{ lr: 0.2 } }\n",
                                        12: "fn on_step(ctx) { #{ lr: } }\n"})
    trainer(tmp_path, [rudder_cb, editor], 2).fit(Module())
    lrs = [editor.lr[s] for s in sorted(editor.lr)]
    assert len(lrs) == 16
    # Step 5's on_step ran before the save; step 6 is the next one.
    assert lrs[:6] == [0.1] * 6 and lrs[6:] == [0.2] * 10
    kinds = [(e["kind"], e["step"]) for e in rudder_cb.policies.events if e["kind"].startswith("reload")]
    assert kinds == [("reload", 6), ("reload_failed", 13)]
    failed = [e for e in rudder_cb.policies.events if e["kind"] == "reload_failed"][0]
    assert failed["file"] == str(policy) and failed["line"] == 1


def test_early_stop_stops_where_lightnings_early_stopping_does(tmp_path):
    losses = [1.0, 0.8, 0.85, 0.9, 0.95, 0.7, 0.6, 0.5]
    ours = Module(losses)
    trainer(tmp_path, [RudderCallback(["stop/early_stop"], params={"patience": 2}, watch=False)], 8).fit(ours)
    theirs = Module(losses)
    es = pl.callbacks.EarlyStopping(monitor="val_loss", patience=2, mode="min")
    trainer(tmp_path, [es], 8).fit(theirs)
    assert ours.epochs_trained == theirs.epochs_trained == 4


def test_save_writes_a_lightning_checkpoint(tmp_path):
    policy = tmp_path / "save.rhai"
    policy.write_text("fn on_epoch_start(ctx) { if ctx.epoch == 1 { #{ save: \"mid\" } } }\n")
    cb = RudderCallback([str(policy)], watch=False)
    trainer(tmp_path, [cb], 3).fit(Module())
    ckpt = torch.load(tmp_path / "rudder" / "mid.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1 and "net.weight" in ckpt["state_dict"]
    # The callback's state (the policies') is in every Lightning checkpoint.
    assert any("RudderCallback" in k for k in ckpt["callbacks"])
    assert (tmp_path / "rudder" / "best.ckpt").exists()


def test_epochs_and_accumulation_reach_the_trainer(tmp_path):
    policy = tmp_path / "plan.rhai"
    policy.write_text("fn on_epoch_start(ctx) { if ctx.epoch == 0 { #{ epochs: 2, accumulation: 2 } } }\n")
    module = Module()
    t = trainer(tmp_path, [RudderCallback([str(policy)], watch=False)], 5)
    t.fit(module)
    assert module.epochs_trained == 2
    assert t.global_step == 8  # 8 batches an epoch, 2 per step


def test_a_fit_by_max_steps_plans_its_epochs(tmp_path):
    cb = RudderCallback(["lr/cosine"], watch=False)
    t = pl.Trainer(accelerator="cpu", devices=1, max_steps=20, callbacks=[cb], logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   limit_val_batches=0, default_root_dir=str(tmp_path))
    t.fit(Module())
    # 8 steps an epoch, 20 steps: 3 epochs planned, the cosine over them.
    run = cb.policies.state()["run"]
    assert run["epochs"] == 3 and t.global_step == 20
