"""PyTorch's side of benches/checkpoint.rs: torch.save of the MNIST CNN's model and
SGD-momentum optimizer state, to a file that is flushed and fsynced, then renamed
(as rudder's checkpoint is), and torch.load back. Run: python bench/torch_checkpoint.py
"""
import os, statistics, tempfile, time

import torch
import torch.nn as nn

torch.set_num_threads(1)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
model(torch.randn(8, 1, 28, 28)).sum().backward()
opt.step()
state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1, "step": 938}
root = tempfile.mkdtemp(dir=os.path.join(os.path.dirname(__file__), "..", "target"))
path = os.path.join(root, "ckpt.pt")

def write():
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(root, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)

def median(fn, n=300):
    for _ in range(20):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)

w = median(write)
r = median(lambda: torch.load(path, weights_only=True))
params = sum(p.numel() for p in model.parameters())
print(f"torch {torch.__version__}: {params} parameters, {os.path.getsize(path)} bytes; "
      f"write (fsync + rename) {w * 1e3:.3f} ms, read {r * 1e6:.1f} us (medians)")
