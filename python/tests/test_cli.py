"""`python -m rudder policy ...`: the same commands, outputs and exit codes as
`rudder policy ...`."""

import json
import subprocess
import sys


def rudder(root, *args):
    return subprocess.run([sys.executable, "-m", "rudder", *args], cwd=root, capture_output=True, text=True)


def test_policy_test_runs_every_case_of_the_library(root, library):
    total = 0
    for where, files in [(library, (library / "scripts/tests").glob("*.json")),
                         (root, (root / "plugins").glob("*/tests/*.json"))]:
        o = rudder(where, "policy", "test")
        assert o.returncode == 0, o.stdout + o.stderr
        cases = sum(len(json.loads(f.read_text())["cases"]) for f in files)
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
