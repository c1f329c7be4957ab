"""A Lightning fit steered by rudder: warmup then cosine per step and early stopping
on the logged val_loss. `python lightning_fit.py` runs it on one CPU process;
`python lightning_fit.py ddp` on two, with Lightning's `ddp` strategy: the policies
then run on global rank 0 and every rank applies the same decision at the same step."""

import sys
from typing import Tuple

import lightning.pytorch as pl
import torch

from rudder.lightning import RudderCallback

Batch = Tuple[torch.Tensor, torch.Tensor]


class Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1)
    train = torch.utils.data.TensorDataset(x[:448], y[:448])
    val = torch.utils.data.TensorDataset(x[448:], y[448:])
    ddp = sys.argv[1:] == ["ddp"]
    trainer = pl.Trainer(accelerator="cpu", devices=2 if ddp else 1, strategy="ddp" if ddp else "auto",
                         max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[RudderCallback(["default"], params={"patience": 3})])
    trainer.fit(Regression(), torch.utils.data.DataLoader(train, batch_size=32),
                torch.utils.data.DataLoader(val, batch_size=64))
    if trainer.is_global_zero:
        print(f"val_loss {float(trainer.callback_metrics['val_loss']):.4f} after {trainer.current_epoch} epochs")
    if torch.distributed.is_initialized():
        # Lightning leaves its process group up; gloo's threads can abort the exit
        # ("terminate called without an active exception") unless it is taken down.
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
