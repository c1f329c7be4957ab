"""rudder.Policies: decisions, events, typed load errors, hot reload, state."""

import math
import subprocess
import sys

import pytest

import rudder
from conftest import rel_close, wait_for, write


def test_a_schedule_and_an_early_stop_compose():
    p = rudder.Policies(["lr/cosine", "stop/early_stop"], params={"patience": 2}, watch=False)
    p.on_train_start(lr=0.1, batch_size=64, epochs=10, steps_per_epoch=100)
    lrs, stopped_after = [], None
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.95]):
        lrs.append(p.on_epoch_start(epoch=epoch)["lr"])
        if p.on_epoch_end(val_loss=loss).get("stop"):
            stopped_after = epoch
            break
    # CosineAnnealingLR(T_max=10): 0.1 * (1 + cos(pi * e / 10)) / 2.
    for e, lr in enumerate(lrs):
        assert rel_close(lr, 0.1 * (1 + math.cos(math.pi * e / 10)) / 2)
    # Best at epoch 1, no improvement in epochs 2 and 3: patience 2 stops after 3.
    assert stopped_after == 3 and p.should_stop
    kinds = [(e["kind"], e["policy"], e["hook"]) for e in p.events]
    assert ("decision", "stop/early_stop", "on_epoch_end") in kinds
    assert p.settings["lr"] == lrs[-1]


def test_steps_and_epochs_count_by_themselves():
    p = rudder.Policies(["lr/onecycle"], watch=False)
    p.on_train_start(lr=0.1, epochs=2, steps_per_epoch=10)
    lrs = [p.on_step()["lr"] for _ in range(20)]
    assert p.state()["run"]["step"] == 20
    # OneCycleLR(max_lr=0.1, total_steps=20): from 0.1/25 up to 0.1 at step 5.
    assert rel_close(lrs[0], 0.004) and rel_close(lrs[5], 0.1)


def test_load_errors_are_typed(tmp_path):
    bad = tmp_path / "bad.rhai"
    bad.write_text("fn on_step(ctx) {\n    let x = ;\n}\n")
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies([str(bad)], watch=False)
    assert (e.value.kind, e.value.file, e.value.line, e.value.column) == ("script", str(bad), 2, 13)
    assert "Unexpected ';'" in e.value.message
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies(["lr/cosin"], watch=False)
    assert e.value.kind == "notfound" and "lr/cosine" in str(e.value)
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies(["lr/cosine"], params={"eta_min": "low"}, watch=False)
    assert e.value.kind == "param" and "eta_min" in str(e.value)
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies(["lr/cosine"], params={"patience": 3}, watch=False)
    assert e.value.kind == "param"


def test_a_misspelled_ctx_field_is_an_error_with_the_nearest_name(tmp_path):
    typo = tmp_path / "typo.rhai"
    typo.write_text("fn on_epoch_end(ctx) {\n    if this.best == () { this.best = 1e9; }\n"
                    "    if ctx.val_los < this.best { return #{ lr: ctx.lr / 2.0 }; }\n}\n")
    with pytest.raises(rudder.PolicyLoadError) as e:
        rudder.Policies([str(typo)], watch=False)
    assert (e.value.kind, e.value.line, e.value.column) == ("script", 3, 12)
    assert e.value.message == "ctx.val_los: no such field; did you mean val_loss?"
    # Out of the static check's sight: a policy_error at run time, no decision.
    dynamic = tmp_path / "dynamic.rhai"
    dynamic.write_text('fn on_epoch_end(ctx) { let k = "val_" + "los"; if ctx[k] < 9.0 { #{ lr: 0.01 } } }\n')
    p = rudder.Policies([str(dynamic)], watch=False, messages=lambda m: None)
    p.on_train_start(lr=0.1, epochs=2)
    assert p.on_epoch_end(val_loss=0.5) == {}
    errors = [e for e in p.events if e["kind"] == "policy_error"]
    assert [e["message"] for e in errors] == ["ctx.val_los: no such field; did you mean val_loss?"]
    # A field with no value yet is ().
    empty = tmp_path / "empty.rhai"
    empty.write_text("fn on_step(ctx) { if ctx.val_loss == () && ctx.val_r2 == () { #{ lr: 0.2 } } }\n")
    p = rudder.Policies([str(empty)], watch=False)
    p.on_train_start(lr=0.1, epochs=2)
    assert p.on_step() == {"lr": 0.2}


def test_a_failing_policy_is_an_event_and_the_others_decide(tmp_path):
    f = tmp_path / "boom.rhai"
    f.write_text("fn on_step(ctx) {\n    throw \"boom\";\n}\n")
    p = rudder.Policies([str(f), "lr/constant"], params={"factor": 0.5, "total_iters": 2},
                        watch=False, messages=lambda m: None)
    p.on_train_start(lr=0.1, epochs=4)
    assert p.on_step() == {}
    assert p.on_epoch_start(epoch=0) == {"lr": 0.05}
    errors = [e for e in p.events if e["kind"] == "policy_error"]
    assert errors and errors[0]["file"] == str(f) and errors[0]["line"] == 2
    assert "boom" in errors[0]["message"]


def test_an_unknown_keyword_is_a_type_error():
    p = rudder.Policies(["lr/cosine"], watch=False)
    with pytest.raises(TypeError, match="val_los"):
        p.on_epoch_end(val_los=1.0)
    with pytest.raises(TypeError, match="epoch must be"):
        p.on_epoch_start(epoch="one")


def test_an_edit_is_picked_up_at_the_next_call_and_a_broken_one_is_not(tmp_path):
    f = tmp_path / "rate.rhai"
    write(f, "fn on_step(ctx) { #{ lr: 0.1 } }\n")
    seen = []
    p = rudder.Policies([str(f)], messages=seen.append)
    assert p.watching in ("native", "poll")
    assert p.on_step(lr=1.0) == {"lr": 0.1}
    write(f, "fn on_step(ctx) { #{ lr: 0.2 } }\n")
    assert wait_for(lambda: p.edit_seen)
    assert p.on_step() == {"lr": 0.2}
    assert [e["kind"] for e in p.events][-2:] == ["reload", "decision"] or p.events[-1]["kind"] == "reload"
    assert any(e["kind"] == "reload" and e["message"] == "v2" for e in p.events)
    write(f, "fn on_step(ctx) { #{ lr: } }\n")
    assert wait_for(lambda: p.edit_seen)
    assert p.on_step() == {"lr": 0.2}
    failed = [e for e in p.events if e["kind"] == "reload_failed"]
    assert failed and failed[0]["file"] == str(f) and failed[0]["line"] == 1
    assert any("reload failed" in m for m in seen)


def test_state_carries_a_policy_and_the_run_to_a_new_process():
    a = rudder.Policies(["stop/early_stop"], params={"patience": 3}, watch=False)
    for loss in [1.0, 1.1, 1.2]:
        a.on_epoch_end(val_loss=loss)
    saved = a.state()
    assert saved["policies"][0]["this"]["wait"] == 2
    b = rudder.Policies(["stop/early_stop"], params={"patience": 3}, watch=False)
    assert b.load_state(saved) == []
    assert b.state()["run"]["epoch"] == 3
    # One more bad epoch: the fourth without improvement stops, as in one process.
    assert b.on_epoch_end(val_loss=1.3).get("stop") is True
    notes = rudder.Policies(["lr/cosine"], watch=False).load_state(saved)
    assert notes == ["policy lr/cosine is not in the checkpoint; its this starts empty"]


def test_nan_metrics_reach_the_policy():
    p = rudder.Policies(["stop/terminate_on_nan"], watch=False)
    d = p.on_epoch_end(train_loss=float("nan"))
    assert d.get("stop") is True


def test_regression_metrics_reach_the_policies():
    p = rudder.Policies(["stop/early_stop"], params={"monitor": "val_rmse", "patience": 1}, watch=False)
    p.on_train_start(lr=0.1, epochs=10, steps_per_epoch=5)
    assert not p.on_epoch_end(val_rmse=60.0, val_mae=48.0, val_r2=0.4).get("stop")
    d = p.on_epoch_end(val_rmse=61.5, val_r2=0.38)
    assert d.get("stop") and "val_rmse did not improve" in d["reason"]


def test_a_messages_callback_and_a_reader_thread_never_deadlock(tmp_path):
    # A hook holds the policies' state while its messages callback takes the GIL;
    # a reader on another thread holds the GIL while it asks for the state. One
    # lock order (the GIL is never held while the state is waited for) keeps both
    # moving. Run in a child process: a deadlock holds the GIL, so only a process
    # outside it can notice and fail.
    f = tmp_path / "fails.rhai"
    f.write_text("fn on_step(ctx) { throw `step ${ctx.step}`; }\n")
    code = f"""
import threading, rudder
heard = []
p = rudder.Policies([{str(f)!r}], watch=False, messages=heard.append)
p.on_train_start(lr=0.1)
done = threading.Event()
def reader():
    while not done.is_set():
        p.events, p.settings, p.state(), p.should_stop
readers = [threading.Thread(target=reader) for _ in range(2)]
for r in readers:
    r.start()
for _ in range(2000):
    p.on_step()
done.set()
for r in readers:
    r.join()
assert len(heard) == 2000, len(heard)
print("ok")
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("deadlocked: a hook's messages callback and a reader thread")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_base_lr_is_the_first_lr_the_loop_gives(tmp_path):
    f = tmp_path / "base.rhai"
    f.write_text("fn on_step(ctx) { #{ metrics: #{ base: ctx.base_lr } } }\n")
    p = rudder.Policies([str(f)], watch=False)
    p.on_train_start()  # no lr= yet
    assert p.on_step(lr=0.1)["metrics"]["base"] == 0.1
    assert p.on_step(lr=0.05)["metrics"]["base"] == 0.1
