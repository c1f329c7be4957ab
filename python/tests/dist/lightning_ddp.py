"""A Lightning fit with strategy="ddp" on 2 CPU processes (gloo), steered by
rudder.lightning.RudderCallback: lr/onecycle, and a policy file that rank 0 edits
before global step EDIT_AT (edit.py). Each rank writes OUT/rank{R}.json: the LR of every
optimizer step, its events, and its weights at the end.

usage: python lightning_ddp.py OUT POLICY_FILE   (Lightning starts the second process)
"""

import json
import os
import sys

import lightning.pytorch as pl
import torch

from edit import EDIT_AT, EPOCHS, finish, save_edit
from rudder.lightning import RudderCallback


class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Record(pl.Callback):
    def __init__(self, out, policy, rudder):
        self.out, self.policy, self.rudder, self.lrs = out, policy, rudder, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.is_global_zero and trainer.global_step == EDIT_AT:
            save_edit(self.policy, lambda: self.rudder.policies.edit_seen)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        weights = [p.detach().flatten().tolist() for p in pl_module.parameters()]
        with open(os.path.join(self.out, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump({"lrs": self.lrs, "events": self.rudder.policies.events, "weights": weights,
                       "steps_per_epoch": trainer.num_training_batches}, f)


def main():
    out, policy = sys.argv[1], sys.argv[2]
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(256, 8, generator=g), torch.randn(256, 1, generator=g))
    rudder = RudderCallback(["lr/onecycle", policy], params={"cycle_momentum": False})
    # Rank 0's callback is the first one (the edit before rudder's on_step).
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS,
                         callbacks=[Record(out, policy, rudder), rudder], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=out)
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=16))
    finish()


if __name__ == "__main__":
    main()
