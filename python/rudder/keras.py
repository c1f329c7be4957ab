"""rudder policies as a Keras 3 callback, for ``keras.Model.fit`` on any backend.

    import keras
    from rudder.keras import RudderCallback

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.fit(x, y, epochs=20, validation_split=0.2,
              callbacks=[RudderCallback(["lr/cosine", "stop/early_stop"])])

Hooks: ``on_train_start`` at Keras's ``on_train_begin``, ``on_epoch_start`` at
``on_epoch_begin``, ``on_step`` at ``on_train_batch_begin``, ``on_epoch_end`` at
``on_epoch_end`` (the logs' ``val_loss``, ``val_accuracy``, ``loss``, ``accuracy`` as
val_loss, val_acc, train_loss, train_acc), ``on_train_end`` at ``on_train_end``.
Decisions: ``lr`` to the optimizer's ``learning_rate`` (as Keras's own
``LearningRateScheduler`` sets it); ``stop`` to ``model.stop_training``; ``epochs``
ends the fit early (never later than ``fit(epochs=)``); ``save`` to
``model.save_weights`` in ``checkpoint_dir`` (``NAME.weights.h5``; ``best`` whenever
val_loss improves); ``rollback`` to ``model.load_weights`` of ``best`` or the last
saved (the weights; the optimizer's state goes on); ``log`` to the ``rudder`` logger;
``metrics`` into the epoch's logs as ``policy/NAME`` (so ``History`` and the other
callbacks see them). ``momentum``, ``weight_decay``, ``batch_size`` and
``accumulation`` cannot be changed in a running fit whose step may be compiled: each
is an ``unsupported_decision`` event. Nothing here is specific to one backend.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import keras  # type: ignore[import-untyped]

from . import Policies, policies_from
from ._common import Shared, unsupported

__all__ = ["RudderCallback"]

_NAMES = {"val_loss": "val_loss", "val_acc": "val_accuracy", "train_loss": "loss", "train_acc": "accuracy"}
_FIXED = {
    "momentum": "the optimizer's momentum is fixed once its step is built",
    "weight_decay": "the optimizer's weight decay is fixed once its step is built",
    "batch_size": "fit() batches its data once",
    "accumulation": "fit() sets gradient accumulation once (the optimizer's gradient_accumulation_steps)",
}


def _number(v: Any) -> float:
    return float(keras.ops.convert_to_numpy(v))


class RudderCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """rudder policies steering ``keras.Model.fit``.

    Args:
        policies: a :class:`rudder.Policies`, or policy names or paths.
        params, watch, path, messages: as :class:`rudder.Policies` takes them.
        metrics: the context's names to the logs' (default ``{"val_loss": "val_loss",
            "val_acc": "val_accuracy", "train_loss": "loss", "train_acc": "accuracy"}``).
        checkpoint_dir: where ``save`` writes weights (default ``checkpoints``).
        rescale: the LR rule of a batch-size change (default ``"linear"``).

    Raises:
        rudder.PolicyLoadError: a policy that does not load.

    Example:
        >>> cb = RudderCallback(["lr/step"], params={"step_size": 1}, watch=False)
        >>> sorted(cb.names)
        ['train_acc', 'train_loss', 'val_acc', 'val_loss']
    """

    def __init__(self, policies: Union[Policies, Sequence[str], str], params: Optional[Mapping[str, Any]] = None,
                 watch: bool = True, path: Optional[Sequence[str]] = None, *,
                 metrics: Optional[Mapping[str, str]] = None, checkpoint_dir: str = "checkpoints",
                 rescale: str = "linear", messages: Any = None) -> None:
        super().__init__()
        #: The policies (a :class:`rudder._common.Shared` of one process: Keras's fit
        #: runs in one).
        self.policies = Shared(policies_from(policies, params, watch, path, rescale, messages))
        self.names = dict(_NAMES)
        self.names.update(metrics or {})
        self.checkpoint_dir = checkpoint_dir
        self._epochs = 0
        self._best: Optional[float] = None
        self._last: Optional[str] = None
        self._metrics: Dict[str, Any] = {}

    # -- the context ---------------------------------------------------------------

    def _lr(self) -> float:
        return _number(self.model.optimizer.learning_rate)

    def _context(self) -> Dict[str, Any]:
        opt = self.model.optimizer
        ctx: Dict[str, Any] = dict(lr=self._lr(), optimizer=type(opt).__name__.lower(), epochs=self._epochs)
        steps = (self.params or {}).get("steps")
        if steps:
            ctx["steps_per_epoch"] = int(steps)
        return ctx

    # -- Keras's hooks ---------------------------------------------------------------

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._epochs = int((self.params or {}).get("epochs") or 1)
        self._apply(self.policies.on_train_start(**self._context()))

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._apply(self.policies.on_epoch_start(epoch=epoch, **self._context()))

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        d = self.policies.on_step()
        if d:
            self._apply(d)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        logs = logs if logs is not None else {}
        metrics: Dict[str, Any] = {name: float(logs[key]) for name, key in self.names.items() if key in logs}
        val_loss = metrics.get("val_loss")
        if val_loss is not None and math.isfinite(val_loss) and (self._best is None or val_loss < self._best):
            self._best = val_loss
            self._save("best")
        self._apply(self.policies.on_epoch_end(epoch=epoch, **self._context(), **metrics))
        for k, v in self._metrics.items():
            logs[f"policy/{k}"] = v
        if epoch + 1 >= self._epochs:
            # The planned epochs, as a decision moved them.
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._apply(self.policies.on_train_end(**self._context()))

    # -- decisions -----------------------------------------------------------------

    def _apply(self, d: Dict[str, Any]) -> None:
        if not d:
            return
        if "rollback" in d:
            self._rollback(d["rollback"])
        if "save" in d:
            tag = d["save"] if isinstance(d["save"], str) else f"step-{_number(self.model.optimizer.iterations):.0f}"
            self._last = self._save(tag)
        if "lr" in d:
            # As keras.callbacks.LearningRateScheduler sets it.
            self.model.optimizer.learning_rate = d["lr"]
        for key, why in _FIXED.items():
            if key in d:
                unsupported(self.policies, key, why)
        if "epochs" in d:
            self._epochs = int(d["epochs"])
            most = int((self.params or {}).get("epochs") or self._epochs)
            if self._epochs > most:
                unsupported(self.policies, "epochs", f"fit(epochs={most}) runs {most} epochs at most")
        if d.get("stop"):
            self.model.stop_training = True
        self.policies.say(d)
        self._metrics.update(d.get("metrics", {}))

    # -- weights files -------------------------------------------------------------

    def _save(self, name: str) -> str:
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        path = os.path.join(self.checkpoint_dir, f"{name}.weights.h5")
        tmp = os.path.join(self.checkpoint_dir, f".{name}.tmp.weights.h5")
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
        if name != "best":
            self.policies.info("saved %s", path)
        return path

    def _rollback(self, target: str) -> None:
        path = os.path.join(self.checkpoint_dir, "best.weights.h5") if target == "best" else self._last
        if path is None or not os.path.exists(path):
            unsupported(self.policies, "rollback", f"no {target} checkpoint yet")
            return
        self.model.load_weights(path)
        self.policies.info("rolled back to %s", path)
