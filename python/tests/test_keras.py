"""rudder.keras.RudderCallback in a real keras.Model.fit (Keras 3, the torch backend
here; the adapter itself names no backend): an LR schedule equal to Keras's own
LearningRateScheduler, an edit reloaded mid-fit, stop, epochs, save and rollback
through weights files, metrics in the logs, and what it cannot apply as events."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rudder.keras import RudderCallback  # noqa: E402
from conftest import wait_for, write  # noqa: E402


def data():
    g = np.random.default_rng(0)
    x = g.normal(size=(256, 8)).astype("float32")
    y = (x @ g.normal(size=(8, 1))).astype("float32")
    return x, y


def model(lr=0.1):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return m


class LrSeen(keras.callbacks.Callback):
    """The LR each training batch ran with."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_train_batch_begin(self, batch, logs=None):
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def fit(callbacks, epochs=6, **kw):
    x, y = data()
    m = model()
    seen = LrSeen()
    history = m.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=callbacks + [seen], **kw)
    return m, seen.lrs, history


def test_step_schedule_equals_keras_learning_rate_scheduler():
    def schedule(epoch, lr):
        return 0.1 * 0.5 ** (epoch // 2)

    _, theirs, _ = fit([keras.callbacks.LearningRateScheduler(schedule)])
    cb = RudderCallback(["lr/step"], params={"step_size": 2, "gamma": 0.5}, watch=False)
    _, ours, _ = fit([cb])
    assert len(ours) == 6 * 4
    assert ours == theirs
    assert ours[0] != ours[-1]


def test_an_edit_mid_fit_is_reloaded_at_the_next_epoch(tmp_path):
    script = tmp_path / "p.rhai"
    write(script, "fn on_epoch_start(ctx) { #{ lr: 0.1 } }\n")
    cb = RudderCallback([str(script)], watch=True)

    class Editor(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                write(script, "fn on_epoch_start(ctx) { #{ lr: 0.01 } }\n")
                assert wait_for(lambda: cb.policies.edit_seen)

    _, lrs, _ = fit([Editor(), cb])
    per_epoch = [round(lrs[e * 4], 6) for e in range(6)]
    assert per_epoch == [0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    assert [e["kind"] for e in cb.policies.events].count("reload") == 1


def test_stop_epochs_metrics_and_what_cannot_be_applied(tmp_path):
    script = tmp_path / "p.rhai"
    write(script, """
fn on_epoch_start(ctx) { if ctx.epoch == 0 { #{ epochs: 4, momentum: 0.5, batch_size: 2 } } }
fn on_epoch_end(ctx) { #{ metrics: #{ seen: ctx.train_loss }, stop: ctx.epoch == 2, reason: "enough" } }
""")
    cb = RudderCallback([str(script)], watch=False)
    _, lrs, history = fit([cb], epochs=10)
    assert len(history.history["loss"]) == 3
    assert history.history["policy/seen"] == history.history["loss"]
    unsupported = {e["key"] for e in cb.policies.events if e["kind"] == "unsupported_decision"}
    assert unsupported == {"momentum", "batch_size"}


def test_epochs_ends_the_fit_and_beyond_fit_is_an_event(tmp_path):
    script = tmp_path / "p.rhai"
    write(script, "fn on_epoch_start(ctx) { if ctx.epoch == 0 { #{ epochs: 2 } } else if ctx.epoch == 1 { #{ epochs: 30 } } }\n")
    cb = RudderCallback([str(script)], watch=False)
    _, _, history = fit([cb], epochs=5)
    assert len(history.history["loss"]) == 5
    assert [e["key"] for e in cb.policies.events if e["kind"] == "unsupported_decision"] == ["epochs"]
    write(script, "fn on_epoch_start(ctx) { if ctx.epoch == 0 { #{ epochs: 2 } } }\n")
    cb = RudderCallback([str(script)], watch=False)
    _, _, history = fit([cb], epochs=5)
    assert len(history.history["loss"]) == 2


def test_save_and_rollback_through_weights_files(tmp_path):
    script = tmp_path / "p.rhai"
    write(script, """
fn on_epoch_end(ctx) {
    if ctx.epoch == 0 { return #{ save: "first" }; }
    if ctx.epoch == 2 { return #{ rollback: "last" }; }
}
""")
    saved = {}

    class Weights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = [w.copy() for w in self.model.get_weights()]

    cb = RudderCallback([str(script)], watch=False, checkpoint_dir=str(tmp_path / "ck"))
    m, _, _ = fit([cb, Weights()], epochs=3, validation_split=0.25)
    assert (tmp_path / "ck" / "first.weights.h5").exists()
    assert (tmp_path / "ck" / "best.weights.h5").exists()
    # Epoch 2 ended in a rollback to the weights saved after epoch 0.
    for a, b in zip(saved[2], saved[0]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(saved[1][0], saved[0][0])
    assert not [e for e in cb.policies.events if e["kind"] == "unsupported_decision"]
