"""PyTorch side of `cargo bench --bench layers`: the same layers, batch 64, one thread.

usage: python bench/torch_layers.py [--threads 1]
Forward is timed with autograd recording (training mode), then forward + backward,
with gradients for the parameters and, where rudder's bench asks for it, the input.
Each figure is the fastest of 40 runs: large outputs make PyTorch's times noisy
(fresh 6 MB buffers fault their pages in), and the minimum is the stable figure.
"""
import argparse, time
import torch, torch.nn as nn

ap = argparse.ArgumentParser(); ap.add_argument("--threads", type=int, default=1)
torch.set_num_threads(ap.parse_args().threads)
N = 64

def min_time(fn, reps=40):
    for _ in range(5): fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best

def bench(name, layer, shape, dx):
    x = torch.randn(N, *shape, requires_grad=dx)
    params = [p for p in layer.parameters()] + ([x] if dx else [])
    y = layer(x); dy = torch.randn_like(y)
    fwd = min_time(lambda: layer(x))
    both = min_time(lambda: torch.autograd.grad(layer(x), params, dy))
    print(f"{name:28s} forward {fwd * 1e6:9.1f} us   forward+backward {both * 1e6:9.1f} us")

bench("linear 784x256 relu", nn.Sequential(nn.Linear(784, 256), nn.ReLU()), (784,), False)
bench("linear 256x128 relu", nn.Sequential(nn.Linear(256, 128), nn.ReLU()), (256,), True)
bench("conv3x3 1->32 28x28", nn.Conv2d(1, 32, 3, padding=1, bias=False), (1, 28, 28), False)
bench("conv3x3 32->64 14x14", nn.Conv2d(32, 64, 3, padding=1, bias=False), (32, 14, 14), True)
bench("batchnorm+relu 32ch 28x28", nn.Sequential(nn.BatchNorm2d(32), nn.ReLU()), (32, 28, 28), True)
bench("maxpool2 32ch 28x28", nn.MaxPool2d(2), (32, 28, 28), True)
