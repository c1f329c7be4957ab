"""The sandbox against its worst calls: wall time and peak memory of one hook call.

usage: python3 bench/attacks.py [RUDDER_BIN] [--timeout 300]

Each attack runs as the `on_epoch_start` of a policy in its own
`rudder policy schedule POLICY --epochs 1 --per-epoch` process (the hook is called
once; no training), timed by this script and measured by the kernel (`wait4`'s peak
RSS). The first row, an empty hook, is the process's own cost. Prints a Markdown
table: attack, what ended it, wall seconds, peak RSS MiB. Run it against an older
build to see what the limits changed.
"""
import argparse, os, subprocess, tempfile, time

ATTACKS = [
    ("empty hook (the process alone)", "()"),
    ("`==` on two 100k arrays, in a loop", "let a = []; a.pad(99999, 1); let b = a; loop { let c = a == b; }"),
    ("`replace` of each of 64 KiB 'a' by 64 KiB", 'let t = "a"; for i in 0..16 { t += t; } t.replace("a", t); ()'),
    ("`replace` of a char by 64 KiB", 'let t = "ab"; for i in 0..15 { t += t; } t.replace(\'a\', t); ()'),
    ("9,000 map keys of 32 KiB", 'let m = #{}; let s = "a"; for i in 0..15 { s += s; } for i in 0..9000 { m[s + i] = 1; } ()'),
    ("`s += s` forever", 'let s = "x"; loop { s += s; }'),
    ("`pad` 100k copies of a 50k array", "let big = []; big.pad(50000, 1); let a = []; a.pad(100000, big); ()"),
    ("`to_string` of 100k floats", "let a = []; a.pad(99999, 1.5); let s = a.to_string(); ()"),
    ("100k nested arrays", "let a = []; for i in 0..100000 { a = [a]; } ()"),
    ("`push` forever", "let x = []; loop { x.push(1); }"),
    ("`sleep(1000)`", "sleep(1000); ()"),
    ("endless loop", "let i = 0; loop { i += 1; }"),
    ("`map` then `sort` of 100k floats", "let a = []; a.pad(99999, 1); let b = a.map(|x, i| ((i * 7919) % 100003).to_float()); b.sort(); ()"),
]

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="target/release/rudder")
ap.add_argument("--timeout", type=float, default=300)
a = ap.parse_args()
binary = os.path.abspath(a.bin)
d = tempfile.mkdtemp()
print("| attack | ended by | wall s | peak RSS MiB |")
print("| --- | --- | --- | --- |")
for name, body in ATTACKS:
    pol = os.path.join(d, "attack.rhai")
    with open(pol, "w") as f:
        f.write(f"fn on_epoch_start(ctx) {{\n{body}\n}}\n")
    t = time.monotonic()
    p = subprocess.Popen([binary, "policy", "schedule", "attack.rhai", "--epochs", "1", "--per-epoch"],
                         cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = False
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t > a.timeout:
            p.kill()
            killed = True
            pid, status, usage = os.wait4(p.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - t
    err = p.stderr.read().decode(errors="replace")
    first = next((l for l in err.splitlines() if l.startswith("error")), "")
    why = first.split(": ", 2)[-1][:70] if first else "(no error)"
    if killed:
        why = f"killed after {a.timeout:.0f} s"
    elif os.WIFSIGNALED(status):
        why = f"signal {os.WTERMSIG(status)} ({err.strip().splitlines()[-1][:60] if err.strip() else ''})"
    print(f"| {name} | {why} | {wall:.2f} | {usage.ru_maxrss / 1024:.0f} |")
