"""rudder: training policies as Rhai scripts that hot-reload while a run goes on.

An LR schedule, an early stop, a batch-size change or a rollback is a small script
(the standard library has torch's schedulers, ReduceLROnPlateau, Lightning's
EarlyStopping and more); edit the file while training runs and the next hook call uses
the new version. The same ``.rhai`` files, plugins and ``policy test`` as the ``rudder``
trainer.

    from rudder import Policies
    policies = Policies(["lr/cosine", "stop/early_stop"], params={"patience": 3})
    policies.on_train_start(lr=0.1, batch_size=64, epochs=10, steps_per_epoch=938)
    for epoch in range(10):
        lr = policies.on_epoch_start(epoch=epoch).get("lr")
        ...
        if policies.on_epoch_end(val_loss=val_loss).get("stop"):
            break

Adapters: :mod:`rudder.torch` (a plain PyTorch loop), :mod:`rudder.lightning`
(a Lightning callback), :mod:`rudder.transformers` (a Hugging Face Trainer callback).
"""

from ._rudder import Policies, PolicyLoadError, embedded

__all__ = ["Policies", "PolicyLoadError", "embedded", "policies_from"]
__version__ = "0.1.0"


def policies_from(policies, params=None, watch=True, path=None, rescale="linear", messages=None):
    """A :class:`Policies` as the adapters take it: one already built, or names (a
    list, or one name) built with the other arguments."""
    if isinstance(policies, Policies):
        return policies
    return Policies(policies, params=params, watch=watch, path=path, rescale=rescale, messages=messages)
