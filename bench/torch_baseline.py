"""PyTorch baseline for rudder's BENCHMARKS.md: the same models, SGD, batch 64.

usage: python bench/torch_baseline.py {mlp,cnn,resnet} DATA_DIR [--epochs N] [--limit N] [--threads T] [--log-steps K] [--device cpu|cuda]
Prints one line per epoch: samples/s of the training phase, val accuracy.
"""
import argparse, gzip, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

def idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            raw = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
            ndim = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)
    raise FileNotFoundError(path)

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("data")
ap.add_argument("--epochs", type=int, default=1); ap.add_argument("--limit", type=int, default=0)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--lr", type=float, default=0.1)
ap.add_argument("--log-steps", type=int, default=0)
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
xtr = idx(f"{a.data}/train-images-idx3-ubyte").astype(np.float32) / 255.0
ytr = idx(f"{a.data}/train-labels-idx1-ubyte").astype(np.int64)
xva = idx(f"{a.data}/t10k-images-idx3-ubyte").astype(np.float32) / 255.0
yva = idx(f"{a.data}/t10k-labels-idx1-ubyte").astype(np.int64)
if a.limit: xtr, ytr = xtr[: a.limit], ytr[: a.limit]
m, s = xtr.mean(), xtr.std()
xtr = torch.from_numpy((xtr - m) / s).unsqueeze(1); xva = torch.from_numpy((xva - m) / s).unsqueeze(1)
ytr = torch.from_numpy(ytr); yva = torch.from_numpy(yva)
if a.model == "mlp":
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
elif a.model == "resnet":  # bench/small_resnet.json, the README's model file
    class Residual(nn.Module):
        def __init__(self, *layers):
            super().__init__(); self.block = nn.Sequential(*layers)
        def forward(self, x): return x + self.block(x)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        Residual(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
                        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.LayerNorm(32 * 3 * 3), nn.Dropout(0.25),
                        nn.Linear(32 * 3 * 3, 10))
else:
    blk = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
    net = nn.Sequential(*blk(1, 32), *blk(32, 64), nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
dev = torch.device(a.device)
net = net.to(dev); xtr, ytr, xva, yva = xtr.to(dev), ytr.to(dev), xva.to(dev), yva.to(dev)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
opt = torch.optim.SGD(net.parameters(), lr=a.lr)
n = len(ytr)
for epoch in range(a.epochs):
    net.train(); perm = torch.randperm(n, device=dev); sync(); t0 = time.perf_counter()
    for k, i in enumerate(range(0, n, 64)):
        b = perm[i: i + 64]
        loss = F.cross_entropy(net(xtr[b]), ytr[b])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if k < a.log_steps: print(f"step {k} loss {loss.item():.4f}")
    sync(); dt = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        acc = sum((net(xva[i:i + 1000]).argmax(1) == yva[i:i + 1000]).sum().item() for i in range(0, len(yva), 1000)) / len(yva)
    print(f"epoch {epoch} samples_per_s {n / dt:.1f} val_acc {acc:.4f} train_time_s {dt:.2f}")
