"""A Hugging Face Trainer on 2 CPU processes under `accelerate launch` (its torchrun
launcher; gloo), steered by rudder.transformers.RudderCallback: lr/onecycle, and a
policy file that rank 0 edits before global step EDIT_AT (edit.py). Each rank writes
OUT/rank{R}.json: the LR of every optimizer step, its events, and its weights at the
end.

usage: accelerate launch --multi_gpu --num_processes 2 hf_trainer.py OUT POLICY_FILE
(`--multi_gpu` picks accelerate's torchrun launcher; `use_cpu` and `ddp_backend="gloo"`
keep the processes on the CPU)
"""

import json
import os
import sys

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from edit import EDIT_AT, EPOCHS, finish, save_edit
from rudder.transformers import RudderCallback

os.environ.setdefault("WANDB_DISABLED", "true")


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 1)

    def forward(self, x, y):
        return {"loss": torch.nn.functional.mse_loss(self.net(x), y)}


class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 8, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class Record(TrainerCallback):
    """Rank 0's edit before step EDIT_AT, and the LR each optimizer step used."""

    def __init__(self, out, policy, rudder):
        self.out, self.policy, self.rudder, self.lrs = out, policy, rudder, []

    def on_step_begin(self, args, state, control, **kw):
        if state.is_world_process_zero and state.global_step == EDIT_AT:
            save_edit(self.policy, lambda: self.rudder.policies.edit_seen)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_end(self, args, state, control, model=None, **kw):
        weights = [p.detach().flatten().tolist() for p in model.parameters()]
        rank = torch.distributed.get_rank()
        with open(os.path.join(self.out, f"rank{rank}.json"), "w") as f:
            json.dump({"lrs": self.lrs, "events": self.rudder.policies.events, "weights": weights,
                       "steps_per_epoch": state.max_steps // EPOCHS}, f)


def main():
    out, policy = sys.argv[1], sys.argv[2]
    rudder = RudderCallback(["lr/onecycle", policy], params={"cycle_momentum": False})
    args = TrainingArguments(output_dir=out, num_train_epochs=EPOCHS, per_device_train_batch_size=16,
                             learning_rate=0.1, lr_scheduler_type="constant", optim="sgd", save_strategy="no",
                             report_to=[], use_cpu=True, ddp_backend="gloo", disable_tqdm=True,
                             label_names=["y"], logging_strategy="no")
    # Rank 0's Record comes first: the edit is saved before rudder's on_step_begin.
    trainer = Trainer(model=Model(), args=args, train_dataset=Data(256), callbacks=[Record(out, policy, rudder), rudder])
    trainer.train()
    finish()


if __name__ == "__main__":
    main()
