"""A gzip bomb as MNIST training images: peak memory and time until rudder refuses it.

usage: python3 bench/gzip_bomb.py [RUDDER_BIN ...] [--gib 4]

Writes a data folder whose train-images-idx3-ubyte.gz has a valid header promising
60,000 images of 28x28 (47 MB) followed by GIB GiB of zeros (about 4 MB gzipped),
with valid labels and t10k files, then runs `rudder train --data mnist --data-dir
DIR` with each binary and prints its exit code, wall time and peak RSS (wait4).
"""
import argparse, gzip, os, struct, subprocess, tempfile, time, zlib

ap = argparse.ArgumentParser()
ap.add_argument("bins", nargs="*", default=["target/release/rudder"])
ap.add_argument("--gib", type=int, default=4)
a = ap.parse_args()
d = tempfile.mkdtemp()
data = os.path.join(d, "bomb")
os.makedirs(data)

with open(os.path.join(data, "train-images-idx3-ubyte.gz"), "wb") as f:
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1) as g:
        g.write(struct.pack(">IIII", 0x803, 60000, 28, 28))
        chunk = bytes(64 << 20)
        for _ in range(a.gib * 16):
            g.write(chunk)
with open(os.path.join(data, "train-labels-idx1-ubyte"), "wb") as f:
    f.write(struct.pack(">II", 0x801, 60000) + bytes(i % 10 for i in range(60000)))
with open(os.path.join(data, "t10k-images-idx3-ubyte"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 100, 28, 28) + bytes(100 * 784))
with open(os.path.join(data, "t10k-labels-idx1-ubyte"), "wb") as f:
    f.write(struct.pack(">II", 0x801, 100) + bytes(i % 10 for i in range(100)))
size = os.path.getsize(os.path.join(data, "train-images-idx3-ubyte.gz"))
print(f"bomb: {size / 1e6:.1f} MB gzipped, {a.gib} GiB + 47 MB inflated")
for b in a.bins:
    t = time.monotonic()
    p = subprocess.Popen([os.path.abspath(b), "train", "-q", "--data", "mnist", "--data-dir", data,
                          "--out", os.path.join(d, f"r{time.monotonic_ns()}")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode(errors="replace").strip().splitlines()
    print(f"{b}: exit {os.waitstatus_to_exitcode(status)}, {time.monotonic() - t:.2f} s, "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB: {err[-1][:120] if err else ''}")
