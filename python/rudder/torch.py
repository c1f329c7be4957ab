"""rudder policies steering a plain PyTorch loop.

    import torch
    from rudder.torch import Steer, ResizableBatchSampler

    sampler = ResizableBatchSampler(len(train_set), batch_size=64, shuffle=True)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    steer = Steer(optimizer, ["lr/cosine", "stop/early_stop"], epochs=10,
                  sampler=sampler, model=model, checkpoint_dir="checkpoints")
    for epoch in steer.epochs():
        for x, y in loader:
            if steer.backward(loss_fn(model(x), y)):  # loss / accumulation, backward
                steer.step()                          # on_step, then optimizer.step()
            if steer.should_stop:
                break
        steer.epoch_end(val_loss=evaluate(model), train_loss=...)

Every decision key is applied: ``lr``, ``momentum`` (Adam's beta1 where the optimizer
has betas) and ``weight_decay`` to every param group (groups keep their LR ratios to the
first); ``batch_size`` through the :class:`ResizableBatchSampler` (from the next
batch); ``accumulation`` by :meth:`Steer.backward`; ``epochs`` by :meth:`Steer.epochs`;
``stop`` (:attr:`Steer.should_stop`); ``save`` and ``rollback`` by ``torch.save`` and
``torch.load`` of the model, the optimizer and the policies' state in
``checkpoint_dir`` (``best`` is written whenever val_loss improves); ``log`` (the
``rudder`` logger)
and ``metrics`` (:attr:`Steer.metrics`). A key it cannot apply (``batch_size`` without a
sampler, ``save`` without a model or folder) is an ``unsupported_decision`` event in
``steer.policies.events``, and a warning on the ``rudder`` logger. Under torch DDP the
policies run on rank 0 and every rank applies the same decision at the same step.
"""

from __future__ import annotations

import math
import os
import pickle
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import torch

from . import Policies
from ._common import Shared, build, momentum_of, set_group, torch_broadcast, torch_world, unsupported

__all__ = ["Steer", "ResizableBatchSampler", "safe_load", "momentum_of", "set_group", "unsupported"]


class ResizableBatchSampler(torch.utils.data.Sampler[List[int]]):
    """Batches of indices whose size is read at each batch.

    Set ``batch_size`` (as :class:`Steer` does) and the next batch has the new size.
    For a DataLoader's ``batch_sampler``; with worker processes the batches already
    prefetched keep the old size. Under DDP give each rank its own share
    (``indices=``) as ``DistributedSampler`` would.

    Args:
        data_len: the dataset's length (the indices are ``range(data_len)``), unless
            ``indices`` is given.
        batch_size: the first batch size.
        shuffle: a new order each epoch (``torch.randperm`` with ``generator``).
        drop_last: leave out a last batch smaller than ``batch_size``.
        generator: the ``torch.Generator`` of the shuffle.
        indices: the indices to batch (a rank's share), instead of ``range(data_len)``.

    Example:
        >>> s = ResizableBatchSampler(10, batch_size=4, shuffle=False)
        >>> list(s)
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        >>> s.batch_size = 5
        >>> len(s), list(s)[0]
        (2, [0, 1, 2, 3, 4])
    """

    def __init__(self, data_len: int, batch_size: int, shuffle: bool = True, drop_last: bool = False,
                 generator: Optional[torch.Generator] = None, indices: Optional[Sequence[int]] = None) -> None:
        self.indices = list(indices) if indices is not None else None
        self.data_len = len(self.indices) if self.indices is not None else int(data_len)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __iter__(self) -> Iterator[List[int]]:
        if self.shuffle:
            order: List[int] = torch.randperm(self.data_len, generator=self.generator).tolist()
        else:
            order = list(range(self.data_len))
        if self.indices is not None:
            order = [self.indices[i] for i in order]
        at = 0
        while at < self.data_len:
            size = self.batch_size
            if self.drop_last and at + size > self.data_len:
                return
            yield order[at:at + size]
            at += size

    def __len__(self) -> int:
        if self.drop_last:
            return self.data_len // self.batch_size
        return math.ceil(self.data_len / self.batch_size)


def safe_load(policies: Any, path: str, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, containers and numbers only,
    never code a checkpoint file could carry.

    Returns:
        What the file holds; None (and an ``unsupported_decision`` event for
        ``rollback``) when it holds other objects.
    """
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        unsupported(policies, "rollback", f"{path} holds objects beyond tensors ({first})")
        return None


def _adam_like(optimizer: torch.optim.Optimizer) -> bool:
    return "betas" in optimizer.param_groups[0]


class Steer:
    """Applies a policy set's decisions to a PyTorch optimizer, data sampler and loop.

    Under torch DDP (``torch.distributed`` initialized when Steer is built, as
    ``torchrun`` does), the policies run on rank 0 only and every rank applies rank
    0's decision at the same call (:class:`rudder._common.Shared`); rank 0 alone
    writes checkpoints and log lines, and a rollback loads rank 0's file on every rank.

    Args:
        optimizer: the ``torch.optim.Optimizer`` to steer.
        policies: a :class:`rudder.Policies`, or policy names or paths.
        params, watch, path, messages: as :class:`rudder.Policies` takes them.
        epochs: the planned epochs.
        steps_per_epoch: optimizer steps per epoch (default: from the sampler and the
            accumulation).
        batch_size, dataset_size: default from the sampler.
        sampler: a :class:`ResizableBatchSampler`, for ``batch_size`` decisions.
        model: the model, for ``save`` and ``rollback``.
        checkpoint_dir: the folder of ``save`` and ``rollback``.
        rescale: the LR rule of a batch-size change (default ``"sqrt"`` for Adam-type
            optimizers, else ``"linear"``).

    Raises:
        rudder.PolicyLoadError: a policy that does not load.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([w], lr=0.1)
        >>> steer = Steer(opt, ["lr/step"], params={"step_size": 1, "gamma": 0.5},
        ...               watch=False, epochs=3, steps_per_epoch=1)
        >>> lrs = []
        >>> for epoch in steer.epochs():
        ...     lrs.append(opt.param_groups[0]["lr"])
        ...     _ = steer.step()
        ...     _ = steer.epoch_end(val_loss=1.0)
        >>> lrs
        [0.1, 0.05, 0.025]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, policies: Union[Policies, Sequence[str], str],
                 params: Optional[Mapping[str, Any]] = None, watch: bool = True,
                 path: Optional[Sequence[str]] = None, *, epochs: int, steps_per_epoch: Optional[int] = None,
                 batch_size: Optional[int] = None, dataset_size: Optional[int] = None,
                 sampler: Optional[ResizableBatchSampler] = None, model: Optional[torch.nn.Module] = None,
                 checkpoint_dir: Optional[str] = None, rescale: Optional[str] = None,
                 messages: Any = None) -> None:
        self.optimizer = optimizer
        rule = rescale or ("sqrt" if _adam_like(optimizer) else "linear")
        rank, world = torch_world()
        built = build(policies, params, watch, path, rule, messages, rank)
        #: The policies: a :class:`rudder._common.Shared` over the set (rank 0 runs it).
        self.policies = Shared(built, rank, torch_broadcast() if world > 1 else None)
        self.sampler = sampler
        self.model = model
        self.checkpoint_dir = checkpoint_dir
        self.accumulation = 1
        self.planned_epochs = int(epochs)
        self.epoch = 0
        #: The ``metrics`` of the decisions so far.
        self.metrics: Dict[str, Any] = {}
        self._micro = 0
        #: Optimizer steps so far (the same on every rank; a ``save``'s default tag).
        self.steps = 0
        self._last_checkpoint: Optional[str] = None
        self._best: Optional[float] = None
        group0 = optimizer.param_groups[0]
        self._ratios = [g["lr"] / group0["lr"] if group0["lr"] else 1.0 for g in optimizer.param_groups]
        self.batch_size = int(batch_size or (sampler.batch_size if sampler is not None else 1))
        self.dataset_size = dataset_size or (sampler.data_len if sampler is not None else None)
        self._steps_per_epoch = steps_per_epoch
        self._started = False

    # -- the hooks -----------------------------------------------------------------

    def _context(self) -> Dict[str, Any]:
        group = self.optimizer.param_groups[0]
        ctx = dict(lr=group["lr"], momentum=momentum_of(group), weight_decay=group.get("weight_decay", 0.0),
                   batch_size=self.batch_size, accumulation=self.accumulation,
                   epochs=self.planned_epochs, steps_per_epoch=self.steps_per_epoch,
                   optimizer=type(self.optimizer).__name__.lower())
        if self.dataset_size:
            ctx["dataset_size"] = int(self.dataset_size)
        return ctx

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: as given, or from the dataset, batch size and
        accumulation."""
        if self._steps_per_epoch:
            return int(self._steps_per_epoch)
        if self.dataset_size:
            return max(1, math.ceil(math.ceil(self.dataset_size / self.batch_size) / self.accumulation))
        return 1

    def start(self) -> Dict[str, Any]:
        """``on_train_start``; :meth:`epochs` calls it. Returns the decision, applied."""
        self._started = True
        return self.apply(self.policies.on_train_start(**self._context()))

    def epoch_start(self) -> Dict[str, Any]:
        """``on_epoch_start`` for :attr:`epoch`; :meth:`epochs` calls it."""
        return self.apply(self.policies.on_epoch_start(epoch=self.epoch, **self._context()))

    def on_step(self) -> Dict[str, Any]:
        """``on_step`` alone (the loop steps the optimizer itself); its decision, applied."""
        # The rest of the context was given at the epoch's start.
        self.steps += 1
        return self.apply(self.policies.on_step(lr=self.optimizer.param_groups[0]["lr"]))

    def backward(self, loss: torch.Tensor) -> bool:
        """``(loss / accumulation).backward()``.

        Returns:
            True when ``accumulation`` micro-batches are in and :meth:`step` is due.
        """
        (loss / self.accumulation).backward()  # type: ignore[no-untyped-call]
        self._micro += 1
        return self._micro >= self.accumulation

    def step(self) -> Dict[str, Any]:
        """``on_step`` (its decision applied first: the LR of this step), then
        ``optimizer.step()`` and ``optimizer.zero_grad()``."""
        decision = self.on_step()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._micro = 0
        return decision

    def epoch_end(self, **metrics: Optional[float]) -> Dict[str, Any]:
        """``on_epoch_end`` with this epoch's metrics (``val_loss``, ``val_acc``,
        ``train_loss``, ``train_acc``); writes the ``best`` checkpoint first when
        val_loss improved (rank 0's val_loss under DDP)."""
        val_loss = metrics.get("val_loss")
        if val_loss is not None and math.isfinite(val_loss) and (self._best is None or val_loss < self._best):
            self._best = val_loss
            if self.model is not None and self.checkpoint_dir is not None:
                self._save("best")
        decision = self.apply(self.policies.on_epoch_end(epoch=self.epoch, **self._context(), **metrics))
        self.epoch += 1
        return decision

    def end(self) -> Dict[str, Any]:
        """``on_train_end``; :meth:`epochs` calls it."""
        return self.apply(self.policies.on_train_end(**self._context()))

    def epochs(self) -> Iterator[int]:
        """The epoch indices, as the policies plan them: ``on_train_start`` first,
        ``on_epoch_start`` before each, ``on_train_end`` after the last; ends at the
        planned epochs (an ``epochs`` decision moves the end) or at a ``stop``."""
        if not self._started:
            self.start()
        while not self.should_stop and self.epoch < self.planned_epochs:
            start = self.epoch
            self.epoch_start()
            yield self.epoch
            if self.epoch == start:
                # The body did not call epoch_end: count the epoch anyway.
                self.epoch += 1
        self.end()

    @property
    def should_stop(self) -> bool:
        """Whether a decision has stopped the run."""
        return self.policies.should_stop

    # -- applying decisions --------------------------------------------------------

    def apply(self, decision: Dict[str, Any]) -> Dict[str, Any]:
        """Applies a decision dict (what a hook returned) and returns it. A rollback
        first: the decision's other values apply to the restored state."""
        if not decision:
            return decision
        if "rollback" in decision:
            self._rollback(decision["rollback"])
        if "save" in decision:
            tag = decision["save"]
            self._save(tag if isinstance(tag, str) else f"step-{self.steps}")
        applied = [set_group(g, decision, ratio)
                   for g, ratio in zip(self.optimizer.param_groups, self._ratios)]
        if not all(applied):
            unsupported(self.policies, "momentum", f"{type(self.optimizer).__name__} has no momentum")
        if "batch_size" in decision:
            if self.sampler is None:
                unsupported(self.policies, "batch_size", "no ResizableBatchSampler was given to Steer")
            else:
                self.batch_size = self.sampler.batch_size = int(decision["batch_size"])
        if "accumulation" in decision:
            self.accumulation = int(decision["accumulation"])
        if "epochs" in decision:
            self.planned_epochs = int(decision["epochs"])
        self.policies.say(decision)
        self.metrics.update(decision.get("metrics", {}))
        return decision

    # -- checkpoints ---------------------------------------------------------------

    def _save(self, name: str) -> None:
        if self.model is None or self.checkpoint_dir is None:
            unsupported(self.policies, "save", "Steer needs model= and checkpoint_dir= to save")
            return
        path = os.path.join(self.checkpoint_dir, name, "checkpoint.pt")
        if name != "best":
            self._last_checkpoint = path
        if not self.policies.is_zero:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "policies": self.policies.state(), "epoch": self.epoch,
                    "accumulation": self.accumulation, "batch_size": self.batch_size, "steps": self.steps}, tmp)
        os.replace(tmp, path)
        self.policies.info("saved %s", path)

    def _rollback(self, target: str) -> None:
        if self.model is None or self.checkpoint_dir is None:
            unsupported(self.policies, "rollback", "Steer needs model= and checkpoint_dir= to roll back")
            return
        path = (os.path.join(self.checkpoint_dir, "best", "checkpoint.pt") if target == "best"
                else self._last_checkpoint)
        if path is None or not os.path.exists(path):
            unsupported(self.policies, "rollback", f"no {target} checkpoint yet")
            return
        saved = safe_load(self.policies, path)
        if saved is None:
            return
        settings: List[Dict[str, Any]] = [{k: g[k] for k in ("lr", "momentum", "betas", "weight_decay") if k in g}
                    for g in self.optimizer.param_groups]
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        # The run's settings go on: the optimizer's state, not its hyperparameters.
        for g, s in zip(self.optimizer.param_groups, settings):
            g.update(s)
        self.policies.info("rolled back to %s", path)

    def load(self, path: str) -> None:
        """Restores a checkpoint written by a ``save`` (model, optimizer, policies'
        state): a resume. Every rank loads the same file."""
        saved = torch.load(path, weights_only=True)
        if self.model is not None:
            self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.policies.load_state(saved["policies"])
        self.epoch = saved.get("epoch", self.epoch)
        self.accumulation = saved.get("accumulation", self.accumulation)
        self.batch_size = saved.get("batch_size", self.batch_size)
        self.steps = saved.get("steps", self.steps)
        if self.sampler is not None:
            self.sampler.batch_size = self.batch_size
        self._started = True
