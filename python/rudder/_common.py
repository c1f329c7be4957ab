"""What every adapter shares, with no framework imported: the ``rudder`` logger, the
report of a decision an adapter cannot apply, a param group's momentum, and the
policies of a many-process job (rank 0 decides, every rank applies)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Optional, Sequence, Union

from . import policies_from
from ._rudder import Policies

__all__ = ["logger", "unsupported", "momentum_of", "set_group", "Shared", "build", "torch_world", "torch_broadcast"]

#: The package's logger: decisions' ``log`` lines, stops, saves and rollbacks, and
#: decisions an adapter cannot apply, at INFO (WARNING for the last). Only rank 0 of
#: a many-process job writes.
logger = logging.getLogger("rudder")
if not logging.getLogger().handlers and not logger.handlers:
    # As Lightning does for its own: lines on stderr unless the program configured
    # logging itself (then they go where it says).
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("rudder: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

Decision = Dict[str, Any]
Broadcast = Callable[[Any], Any]


def unsupported(policies: Any, key: str, why: str) -> None:
    """Records that decision key ``key`` could not be applied (``why``).

    An ``unsupported_decision`` event of ``policies`` and a warning on the ``rudder``
    logger: how every adapter reports a decision its framework cannot take. On a rank
    other than 0 of a :class:`Shared` set, nothing (rank 0 records it once).

    Args:
        policies: a :class:`rudder.Policies` or :class:`Shared`.
        key: the decision key (``"batch_size"``).
        why: why it could not be applied.

    Example:
        >>> import rudder
        >>> p = rudder.Policies(["lr/constant"], watch=False)
        >>> unsupported(p, "batch_size", "no sampler")
        >>> p.events[-1]["kind"], p.events[-1]["key"]
        ('unsupported_decision', 'batch_size')
    """
    if isinstance(policies, Shared):
        if policies.is_zero:
            policies.record_event("unsupported_decision", key=key, message=why)
            policies.warn(f"decision {key} not applied: {why}")
        return
    policies.record_event("unsupported_decision", key=key, message=why)
    logger.warning("decision %s not applied: %s", key, why)


def momentum_of(group: Mapping[str, Any]) -> float:
    """A torch param group's momentum: Adam's beta1, SGD's momentum, else 0.

    Example:
        >>> momentum_of({"lr": 0.1, "betas": (0.9, 0.999)}), momentum_of({"lr": 0.1})
        (0.9, 0.0)
    """
    if "betas" in group:
        return float(group["betas"][0])
    return float(group.get("momentum", 0.0))


def set_group(group: MutableMapping[str, Any], decision: Mapping[str, Any], lr_ratio: float = 1.0) -> bool:
    """Applies a decision's ``lr`` (times ``lr_ratio``), ``momentum`` and
    ``weight_decay`` to one torch param group.

    Returns:
        False when the decision sets a momentum the group does not have (the caller
        reports it), else True.

    Example:
        >>> g = {"lr": 0.1, "betas": (0.9, 0.999), "weight_decay": 0.0}
        >>> set_group(g, {"lr": 0.05, "momentum": 0.8}, lr_ratio=2.0), g["lr"], g["betas"]
        (True, 0.1, (0.8, 0.999))
    """
    if "lr" in decision:
        group["lr"] = decision["lr"] * lr_ratio
    if "weight_decay" in decision:
        group["weight_decay"] = decision["weight_decay"]
    if "momentum" not in decision:
        return True
    if "betas" in group:
        group["betas"] = (decision["momentum"], group["betas"][1])
    elif "momentum" in group:
        group["momentum"] = decision["momentum"]
    else:
        return False
    return True


def torch_world() -> "tuple[int, int]":
    """``(rank, world size)`` of the default ``torch.distributed`` group, or ``(0, 1)``
    when torch is not installed or no group is initialized."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def torch_broadcast() -> Broadcast:
    """A function giving rank 0's value on every rank of the default
    ``torch.distributed`` group (through the current GPU under NCCL)."""
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None

    def broadcast(obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=device)
        return box[0]

    return broadcast


class Shared:
    """A policy set for a job of many processes: it runs on rank 0 only, and every
    rank gets rank 0's decision at the same hook call, as the Rust trainer does over
    MPI. An edit is seen by rank 0's watcher and so reaches every rank at one step;
    events and log lines are written once, by rank 0.

    Every rank must call the same hooks in the same order (as a data-parallel loop
    does): each call is one broadcast. With one process it is the policy set itself.

    Args:
        policies: the set; every rank builds it (a policy that does not load fails on
            every rank alike), but only rank 0's runs and watches its files.
        rank: this process's rank.
        broadcast: a function giving rank 0's value on every rank (``None`` with one
            process).
        warn: how rank 0 warns (default: the ``rudder`` logger; Lightning's
            ``rank_zero_warn`` in its callback).

    Example:
        >>> import rudder
        >>> s = Shared(rudder.Policies(["lr/constant"], watch=False), rank=0, broadcast=None)
        >>> s.on_train_start(lr=0.1, epochs=1)
        {}
        >>> s.is_zero, s.should_stop
        (True, False)
    """

    def __init__(self, policies: Policies, rank: int = 0, broadcast: Optional[Broadcast] = None,
                 warn: Optional[Callable[[str], None]] = None) -> None:
        self.policies = policies
        self.rank = rank
        self.broadcast = broadcast
        self.warn: Callable[[str], None] = warn or logger.warning
        self._stopped = False

    def __getattr__(self, name: str) -> Any:
        # The rest of the set's members (describe, settings, reload, ...): rank 0's.
        return getattr(self.__dict__["policies"], name)

    @property
    def is_zero(self) -> bool:
        """Whether this is rank 0, which runs the policies."""
        return self.rank == 0

    def call(self, hook: str, **kwargs: Any) -> Decision:
        """Calls ``hook`` on rank 0 and gives its decision on every rank."""
        if self.broadcast is None:
            return self.policies.call(hook, **kwargs)
        if self.is_zero:
            sent = (self.policies.call(hook, **kwargs), self.policies.should_stop)
        else:
            sent = None
        decision, self._stopped = self.broadcast(sent)
        return dict(decision)

    def info(self, message: str, *args: Any) -> None:
        """A line on the ``rudder`` logger, from rank 0 only."""
        if self.is_zero:
            logger.info(message, *args)

    def say(self, decision: Mapping[str, Any]) -> None:
        """The lines a decision's ``stop`` (with its reason) and ``log`` make, from
        rank 0 only: the same in every adapter."""
        if decision.get("stop"):
            self.info("stop: %s", decision.get("reason", "a policy stopped the run"))
        if "log" in decision:
            self.info("policy: %s", decision["log"])

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (``value`` itself with one process): for a
        choice every rank must make alike, such as writing a checkpoint."""
        return value if self.broadcast is None else self.broadcast(value)

    def on_train_start(self, **kwargs: Any) -> Decision:
        """:meth:`rudder.Policies.on_train_start` on rank 0, its decision on all."""
        return self.call("on_train_start", **kwargs)

    def on_epoch_start(self, **kwargs: Any) -> Decision:
        """:meth:`rudder.Policies.on_epoch_start` on rank 0, its decision on all."""
        return self.call("on_epoch_start", **kwargs)

    def on_step(self, **kwargs: Any) -> Decision:
        """:meth:`rudder.Policies.on_step` on rank 0, its decision on all."""
        return self.call("on_step", **kwargs)

    def on_epoch_end(self, **kwargs: Any) -> Decision:
        """:meth:`rudder.Policies.on_epoch_end` on rank 0, its decision on all."""
        return self.call("on_epoch_end", **kwargs)

    def on_train_end(self, **kwargs: Any) -> Decision:
        """:meth:`rudder.Policies.on_train_end` on rank 0, its decision on all."""
        return self.call("on_train_end", **kwargs)

    @property
    def should_stop(self) -> bool:
        """Whether a decision has stopped the run (rank 0's, on every rank)."""
        if self.broadcast is None or self.is_zero:
            return self.policies.should_stop
        return self._stopped

    @property
    def events(self) -> List[Dict[str, Any]]:
        """Rank 0's events; empty on the other ranks."""
        return self.policies.events if self.is_zero else []

    def record_event(self, kind: str, **fields: Any) -> None:
        """Adds an event on rank 0 (nothing elsewhere)."""
        if self.is_zero:
            self.policies.record_event(kind, **fields)

    def state(self) -> Any:
        """Rank 0's :meth:`rudder.Policies.state`; ``None`` on the other ranks (they
        write no checkpoint)."""
        return self.policies.state() if self.is_zero else None

    def load_state(self, saved: Any) -> List[str]:
        """Restores rank 0's state (the other ranks keep none)."""
        if saved is None or not self.is_zero:
            return []
        return self.policies.load_state(saved)


def build(policies: Union[Policies, Sequence[str], str], params: Optional[Mapping[str, Any]] = None,
          watch: bool = True, path: Optional[Sequence[str]] = None, rescale: str = "linear",
          messages: Optional[Callable[[str], None]] = None, rank: int = 0) -> Policies:
    """A :class:`rudder.Policies` as the adapters take it: one already built, or names
    built with the other arguments; on a rank other than 0, unwatched and silent."""
    if rank != 0:
        watch, messages = False, (lambda _m: None)
    return policies_from(policies, params, watch, path, rescale, messages)
