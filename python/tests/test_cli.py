"""`python -m rudder policy ...`: the same commands, outputs and exit codes as
`rudder policy ...`."""

import json
import os
import subprocess
import sys

import pytest


def rudder(root, *args):
    return subprocess.run([sys.executable, "-m", "rudder", *args], cwd=root, capture_output=True, text=True)


def test_policy_test_runs_every_case_of_the_library(root, library):
    total = 0
    for where, files in [(library, (library / "scripts/tests").glob("*.json")),
                         (root, (root / "plugins").glob("*/tests/*.json"))]:
        o = rudder(where, "policy", "test")
        assert o.returncode == 0, o.stdout + o.stderr
        # A sweep policy's file is one case (its replay of recorded curves).
        cases = sum(len(json.loads(f.read_text()).get("cases", [None])) for f in files)
        assert o.stdout.splitlines()[-1] == f"{cases} passed, 0 failed"
        total += cases
    assert total >= 948


def test_a_wrong_expectation_fails_with_exit_1(root, library, tmp_path):
    case = json.loads((library / "scripts/tests/lr_step_1.json").read_text())
    case["cases"][4]["expect"]["lr"] = 0.123
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(case))
    o = rudder(root, "policy", "test", str(wrong))
    assert o.returncode == 1
    assert 'expected {"lr":0.123}' in o.stdout and o.stdout.endswith("13 passed, 1 failed\n")


def test_list_doc_and_check(root, tmp_path):
    o = rudder(root, "policy", "list")
    assert o.returncode == 0 and any(line.startswith("lr/cosine ") for line in o.stdout.splitlines())
    o = rudder(root, "policy", "doc", "adapt/plateau")
    assert o.returncode == 0 and "ReduceLROnPlateau" in o.stdout and "patience = 10" in o.stdout
    o = rudder(root, "policy", "check", "lr/cosine", "--param", "eta_min=0.01")
    assert o.returncode == 0 and o.stdout.startswith("ok lr/cosine")
    bad = tmp_path / "bad.rhai"
    bad.write_text("fn on_step(ctx) { #{ lr: } }\n")
    o = rudder(root, "policy", "check", str(bad))
    assert o.returncode == 2 and f"{bad}:1:" in o.stderr
    o = rudder(root, "policy", "check", "lr/cosine", "--param", "nope=1")
    assert o.returncode == 2 and "nope" in o.stderr


def _git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
                   cwd=cwd, env=env, check=True, capture_output=True)


def test_plugins_through_the_lock(root, tmp_path, monkeypatch):
    """`python -m rudder plugin ...` installs and locks as `rudder plugin ...` does, and
    the Python package's policies resolve through the same lock and checksum."""
    import shutil
    import rudder
    src = tmp_path / "goyal-src"
    shutil.copytree(root / "plugins" / "goyal", src)
    _git(src, "init", "-q")
    _git(src, "add", "-A")
    _git(src, "commit", "-qm", "v1")
    _git(src, "tag", "v1.0.0")
    bare = tmp_path / "goyal.git"
    _git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    project = tmp_path / "project"
    project.mkdir()
    env = dict(os.environ, RUDDER_HOME=str(tmp_path / "cache"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "rudder", *a], cwd=project, env=env,
                                    capture_output=True, text=True)
    o = run("plugin", "add", f"file://{bare}", "--version", "^1")
    assert o.returncode == 0, o.stderr
    assert o.stdout.startswith("added goyal in ") and "installed goyal 1.0.0 (tag=v1.0.0 " in o.stdout
    lock = (project / "rudder.lock").read_text()
    checksum = lock.split('checksum = "')[1].split('"')[0]
    o = run("plugin", "verify")
    assert o.returncode == 0 and o.stdout == f"goyal ok {checksum}\n"
    o = run("plugin", "install", "--locked")
    assert o.returncode == 0 and "already installed" in o.stdout

    monkeypatch.chdir(project)
    monkeypatch.setenv("RUDDER_HOME", str(tmp_path / "cache"))
    p = rudder.Policies(["goyal/schedule"], watch=False)
    origin = p.provenance()[0]["plugin"]
    assert origin["name"] == "goyal" and origin["version"] == "1.0.0" and origin["checksum"] == checksum

    # A tampered installed file: refused by the package and reported by verify.
    installed = next((tmp_path / "cache" / "plugins" / "goyal").glob("*/schedule.rhai"))
    installed.chmod(0o644)
    installed.write_text(installed.read_text() + "// edited\n")
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies(["goyal/schedule"], watch=False)
    assert "plugin goyal" in str(e.value) and "schedule.rhai" in str(e.value) and e.value.kind == "project"
    o = run("plugin", "verify")
    assert o.returncode == 1 and "goyal modified" in o.stdout and o.stderr.startswith("error: verify:")
    o = run("plugin", "add", "ftp://example.org/x.git")
    assert o.returncode == 2 and "scheme ftp" in o.stderr


def test_a_closed_pipe_ends_the_listing_quietly(root):
    # `python -m rudder policy list | head -3`: the reader stops after three lines.
    p = subprocess.Popen([sys.executable, "-m", "rudder", "policy", "list"], cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 0, err
    assert first and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_nothing_to_test_is_exit_1_unless_allowed(tmp_path):
    o = rudder(tmp_path, "policy", "test")
    assert o.returncode == 1 and "no test files here" in o.stderr, o.stderr
    o = rudder(tmp_path, "policy", "test", "--allow-empty")
    assert o.returncode == 0 and o.stdout == "", o.stdout
    # The standard library's own tests travel inside the package.
    o = rudder(tmp_path, "policy", "test", "--std")
    assert o.returncode == 0, o.stdout + o.stderr
    passed = int(o.stdout.splitlines()[-1].split()[0])
    assert passed >= 900 and o.stdout.endswith(" passed, 0 failed\n")
