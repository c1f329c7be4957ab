"""A Hugging Face Trainer steered by rudder: the policy's LR at every optimizer step
(whatever scheduler the Trainer has) and early stopping on eval_loss. Run it with
`python hf_trainer.py`, or `accelerate launch --num_processes 2 --cpu hf_trainer.py`
(or torchrun): the policies run on rank 0, every process applies the same decision."""

from typing import Dict, Optional

import torch
from transformers import Trainer, TrainingArguments

from rudder.transformers import RudderCallback


class Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        out = self.net(x)
        result = {"logits": out}
        if labels is not None:
            result["loss"] = torch.nn.functional.mse_loss(out, labels)
        return result


class Examples(torch.utils.data.Dataset[Dict[str, torch.Tensor]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1)
    args = TrainingArguments("hf-out", num_train_epochs=4, per_device_train_batch_size=32, learning_rate=0.05,
                             eval_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True,
                             lr_scheduler_type="constant", optim="sgd", disable_tqdm=True)
    trainer = Trainer(model=Regression(), args=args, train_dataset=Examples(x[:448], y[:448]),
                      eval_dataset=Examples(x[448:], y[448:]),
                      callbacks=[RudderCallback(["lr/onecycle", "stop/early_stop"], params={"patience": 2})])
    trainer.train()
    if trainer.is_world_process_zero():
        print(f"eval_loss {trainer.evaluate()['eval_loss']:.4f}")


if __name__ == "__main__":
    main()
