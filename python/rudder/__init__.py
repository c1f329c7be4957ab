"""rudder: training policies as Rhai scripts that hot-reload while a run goes on.

An LR schedule, an early stop, a batch-size change or a rollback is a small script
(the standard library has torch's schedulers, ReduceLROnPlateau, Lightning's
EarlyStopping and more); edit the file while training runs and the next hook call uses
the new version. The same ``.rhai`` files, plugins and ``policy test`` as the ``rudder``
trainer.

Example:
    >>> from rudder import Policies
    >>> policies = Policies(["lr/cosine"], watch=False)
    >>> policies.on_train_start(lr=0.1, batch_size=64, epochs=10, steps_per_epoch=100)
    {}
    >>> round(policies.on_epoch_start(epoch=5)["lr"], 6)
    0.05

Adapters: :mod:`rudder.torch` (a plain PyTorch loop, torch DDP included),
:mod:`rudder.lightning` (a Lightning callback), :mod:`rudder.transformers` (a Hugging
Face Trainer callback, ``accelerate launch`` included), :mod:`rudder.keras` (a Keras 3
callback).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

from . import _rudder
from ._rudder import Policies, PolicyLoadError, embedded

__all__ = ["Policies", "PolicyLoadError", "embedded", "policies_from", "__version__"]

#: The package's version: the workspace's, compiled into the extension.
__version__: str = _rudder.__version__


def policies_from(policies: Union[Policies, Sequence[str], str], params: Optional[Mapping[str, Any]] = None,
                  watch: bool = True, path: Optional[Sequence[str]] = None, rescale: str = "linear",
                  messages: Optional[Callable[[str], None]] = None) -> Policies:
    """A :class:`Policies` as the adapters take it.

    Args:
        policies: a :class:`Policies` (given back as it is), or policy names or paths
            (a list, or one name), built with the other arguments.
        params, watch, path, rescale, messages: as :class:`Policies` takes them.

    Returns:
        The policy set.

    Raises:
        PolicyLoadError: a policy that does not load.

    Example:
        >>> p = policies_from("lr/step", params={"step_size": 2}, watch=False)
        >>> policies_from(p) is p
        True
    """
    if isinstance(policies, Policies):
        return policies
    return Policies(policies, params=params, watch=watch, path=path, rescale=rescale, messages=messages)
