"""`rudder plugin add` and `install` for a 20-file plugin, over file:// and over
git:// (a `git daemon` on 127.0.0.1), each into a fresh cache; the size of that cache.

    python3 bench/plugins.py target/release/rudder [--runs 15]

Prints the median and the spread of the wall time per command (the process included:
start, fetch, resolve, write out, checksum, lock). The checksum check a `train`
start adds is `cargo bench -p rudder-policy --bench checksum`."""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "-c", "init.defaultBranch=main", *args],
                   cwd=cwd, env=env, check=True, capture_output=True)


def make_plugin(tmp):
    src = os.path.join(tmp, "goyal-src")
    shutil.copytree(os.path.join(ROOT, "plugins", "goyal"), src)
    for i in range(20 - sum(len(f) for _, _, f in os.walk(src))):
        with open(os.path.join(src, f"module_{i}.rhai"), "w") as f:
            f.write(f"/// helper {i}\nfn value_{i}() {{ {i} }}\n" * 40)
    files = sum(len(f) for _, _, f in os.walk(src))
    git(src, "init", "-q")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "v1")
    git(src, "tag", "v1.0.0")
    git(tmp, "clone", "-q", "--bare", src, os.path.join(tmp, "goyal.git"))
    return files


def daemon(base):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
                          f"--base-path={base}", base], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return p, port
        except OSError:
            time.sleep(0.01)
    raise SystemExit("git daemon did not start")


def timed(rudder, cwd, home, *args):
    t = time.perf_counter()
    o = subprocess.run([rudder, *args], cwd=cwd, env=dict(os.environ, RUDDER_HOME=home), capture_output=True, text=True)
    dt = time.perf_counter() - t
    if o.returncode != 0:
        raise SystemExit(f"rudder {' '.join(args)}: {o.stderr}")
    return dt


def size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if not os.path.islink(os.path.join(d, f)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rudder")
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    rudder = os.path.abspath(a.rudder)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_plugin(tmp)
        d, port = daemon(tmp)
        try:
            urls = {"file://": f"file://{tmp}/goyal.git", "git:// (127.0.0.1)": f"git://127.0.0.1:{port}/goyal.git"}
            print(f"a {files}-file plugin, {a.runs} runs each, a fresh cache per run")
            print("| command | transport | median | min | max |")
            print("| --- | --- | --- | --- | --- |")
            for name, url in urls.items():
                adds, installs = [], []
                for i in range(a.runs):
                    proj = os.path.join(tmp, f"p-{len(name)}-{i}")
                    os.makedirs(proj)
                    home = os.path.join(tmp, f"h-{len(name)}-{i}")
                    adds.append(timed(rudder, proj, home, "plugin", "add", url, "--version", "^1"))
                    other = proj + "-b"
                    os.makedirs(other)
                    for f in ("rudder.toml", "rudder.lock"):
                        shutil.copy(os.path.join(proj, f), other)
                    installs.append(timed(rudder, other, home + "-b", "plugin", "install", "--locked"))
                for label, xs in (("plugin add", adds), ("plugin install --locked", installs)):
                    ms = [x * 1000 for x in xs]
                    print(f"| `{label}` | {name} | {statistics.median(ms):.1f} ms | {min(ms):.1f} ms | {max(ms):.1f} ms |")
            home = os.path.join(tmp, "h-7-0")
            print(f"cache after one add: {size(home) / 1024:.0f} KiB in all, of which the installed plugin "
                  f"{size(os.path.join(home, 'plugins')) / 1024:.0f} KiB and the repository's mirror "
                  f"{size(os.path.join(home, 'git')) / 1024:.0f} KiB")
        finally:
            d.kill()


if __name__ == "__main__":
    sys.exit(main())
