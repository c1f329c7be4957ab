"""A plain PyTorch loop steered by rudder: a one-cycle LR per step, early stopping,
a batch size the policies may change, checkpoints for save and rollback.
Run it as it is (`python torch_loop.py`), or under torch DDP with
`torchrun --nproc-per-node 2 torch_loop.py`: the policies then run on rank 0 and
every rank applies the same decision at the same step."""

import torch
import torch.distributed as dist

from rudder.torch import ResizableBatchSampler, Steer


def main() -> None:
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
    model: torch.nn.Module = torch.nn.Linear(8, 1)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # Each rank batches its own share of the examples.
    sampler = ResizableBatchSampler(0, batch_size=32, indices=range(rank, 448, world))
    steer = Steer(optimizer, ["lr/onecycle", "stop/early_stop"], params={"patience": 3},
                  epochs=8, sampler=sampler, model=model, checkpoint_dir="checkpoints")
    for epoch in steer.epochs():
        for batch in sampler:
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            if steer.backward(loss):
                steer.step()
            if steer.should_stop:
                break
        with torch.no_grad():
            val_loss = torch.nn.functional.mse_loss(model(x[448:]), y[448:]).item()
        steer.epoch_end(val_loss=val_loss, train_loss=loss.item())
        if rank == 0:
            print(f"epoch {epoch + 1}: val_loss {val_loss:.4f}, lr {optimizer.param_groups[0]['lr']:.5f}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
