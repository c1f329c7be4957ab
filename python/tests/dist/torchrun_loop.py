"""A plain DDP loop under `torchrun --nproc-per-node 2` (gloo, CPU), steered by
rudder.torch.Steer: lr/onecycle, and a policy file that rank 0 edits before step
EDIT_AT (edit.py). Each rank writes OUT/rank{R}.json: the LR of every step, its events, and
its model's weights at the end.

usage: torchrun --nproc-per-node 2 torchrun_loop.py OUT POLICY_FILE
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from edit import EDIT_AT, EPOCHS, finish, save_edit
from rudder.torch import ResizableBatchSampler, Steer


def main():
    out, policy = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 8, generator=g), torch.randn(256, 1, generator=g)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    share = list(range(rank, 256, world))
    sampler = ResizableBatchSampler(0, batch_size=16, shuffle=False, indices=share)
    steer = Steer(opt, ["lr/onecycle", policy], params={"cycle_momentum": False}, epochs=EPOCHS, sampler=sampler,
                  model=model, checkpoint_dir=os.path.join(out, "checkpoints"))
    lrs = []
    for _ in steer.epochs():
        for batch in sampler:
            if rank == 0 and len(lrs) == EDIT_AT:
                save_edit(policy, lambda: steer.policies.edit_seen)
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            if steer.backward(loss):
                steer.step()
                lrs.append(opt.param_groups[0]["lr"])
        steer.epoch_end(train_loss=float(loss))
    weights = [p.detach().flatten().tolist() for p in model.parameters()]
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"lrs": lrs, "events": steer.policies.events, "weights": weights,
                   "steps_per_epoch": steer.steps_per_epoch}, f)
    finish()


if __name__ == "__main__":
    main()
