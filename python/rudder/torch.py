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
``checkpoint_dir`` (``best`` is written whenever val_loss improves); ``log`` (stderr)
and ``metrics`` (:attr:`Steer.metrics`). A key it cannot apply (``batch_size`` without a
sampler, ``save`` without a model or folder) is an ``unsupported_decision`` event in
``steer.policies.events``, and a line on stderr.
"""

import math
import os
import pickle
import sys

import torch

from . import policies_from

__all__ = ["Steer", "ResizableBatchSampler"]


class ResizableBatchSampler(torch.utils.data.Sampler):
    """Batches of indices whose size is read at each batch: set ``batch_size`` (as
    :class:`Steer` does) and the next batch has the new size. For a DataLoader's
    ``batch_sampler``; with worker processes the batches already prefetched keep the
    old size."""

    def __init__(self, data_len, batch_size, shuffle=True, drop_last=False, generator=None):
        self.data_len = int(data_len)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.data_len, generator=self.generator).tolist()
        else:
            order = list(range(self.data_len))
        at = 0
        while at < self.data_len:
            size = self.batch_size
            if self.drop_last and at + size > self.data_len:
                return
            yield order[at:at + size]
            at += size

    def __len__(self):
        if self.drop_last:
            return self.data_len // self.batch_size
        return math.ceil(self.data_len / self.batch_size)


def unsupported(policies, key, why):
    """Records that decision key ``key`` could not be applied (``why``) as an
    ``unsupported_decision`` event of ``policies``, and says so on stderr: how every
    adapter reports a decision its framework cannot take."""
    policies.record_event("unsupported_decision", key=key, message=why)
    print(f"rudder: decision {key} not applied: {why}", file=sys.stderr)


def safe_load(policies, path, **kwargs):
    """``torch.load(path, weights_only=True)``: tensors, containers and numbers only,
    never code a checkpoint file could carry. A file that holds other objects is
    not loaded: an ``unsupported_decision`` event for ``rollback``, and None."""
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        unsupported(policies, "rollback", f"{path} holds objects beyond tensors ({first})")
        return None


def momentum_of(group):
    """A param group's momentum: Adam's beta1, SGD's momentum, else 0."""
    return group["betas"][0] if "betas" in group else group.get("momentum", 0.0)


def set_group(group, decision, lr_ratio=1.0):
    """Applies a decision's ``lr`` (times ``lr_ratio``), ``momentum`` (beta1 for
    Adam-type optimizers) and ``weight_decay`` to one param group. False when the
    decision sets a momentum the group does not have (the caller records it)."""
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


def _optimizer_name(optimizer):
    return type(optimizer).__name__.lower()


def _adam_like(optimizer):
    return "betas" in optimizer.param_groups[0]


class Steer:
    """Applies a policy set's decisions to a PyTorch optimizer, data sampler and loop.

    ``policies``: a :class:`rudder.Policies`, or names built with ``params``,
    ``watch``, ``path``. ``epochs``: the planned epochs. ``steps_per_epoch``: optimizer
    steps per epoch (default: from the sampler and the accumulation). ``batch_size``,
    ``dataset_size``: default from the sampler. ``rescale``: the LR rule of a batch-size
    change (default: ``"sqrt"`` for Adam-type optimizers, else ``"linear"``).
    """

    def __init__(self, optimizer, policies, params=None, watch=True, path=None, *, epochs,
                 steps_per_epoch=None, batch_size=None, dataset_size=None, sampler=None,
                 model=None, checkpoint_dir=None, rescale=None, messages=None):
        self.optimizer = optimizer
        rescale = rescale or ("sqrt" if _adam_like(optimizer) else "linear")
        self.policies = policies_from(policies, params, watch, path, rescale, messages)
        self.sampler = sampler
        self.model = model
        self.checkpoint_dir = checkpoint_dir
        self.accumulation = 1
        self.planned_epochs = int(epochs)
        self.epoch = 0
        self.metrics = {}
        self._micro = 0
        self._last_checkpoint = None
        self._best = None
        group0 = optimizer.param_groups[0]
        self._ratios = [g["lr"] / group0["lr"] if group0["lr"] else 1.0 for g in optimizer.param_groups]
        self.batch_size = int(batch_size or (sampler.batch_size if sampler is not None else 1))
        self.dataset_size = dataset_size or (sampler.data_len if sampler is not None else None)
        self._steps_per_epoch = steps_per_epoch
        self._started = False

    # -- the hooks -----------------------------------------------------------------

    def _context(self):
        group = self.optimizer.param_groups[0]
        ctx = dict(lr=group["lr"], momentum=momentum_of(group), weight_decay=group.get("weight_decay", 0.0),
                   batch_size=self.batch_size, accumulation=self.accumulation,
                   epochs=self.planned_epochs, steps_per_epoch=self.steps_per_epoch,
                   optimizer=_optimizer_name(self.optimizer))
        if self.dataset_size:
            ctx["dataset_size"] = int(self.dataset_size)
        return ctx

    @property
    def steps_per_epoch(self):
        if self._steps_per_epoch:
            return int(self._steps_per_epoch)
        if self.dataset_size:
            return max(1, math.ceil(math.ceil(self.dataset_size / self.batch_size) / self.accumulation))
        return 1

    def start(self):
        """``on_train_start``; :meth:`epochs` calls it."""
        self._started = True
        return self.apply(self.policies.on_train_start(**self._context()))

    def epoch_start(self):
        """``on_epoch_start`` for :attr:`epoch`; :meth:`epochs` calls it."""
        return self.apply(self.policies.on_epoch_start(epoch=self.epoch, **self._context()))

    def on_step(self):
        """``on_step`` alone (the loop steps the optimizer itself); its decision, applied."""
        # The rest of the context was given at the epoch's start.
        return self.apply(self.policies.on_step(lr=self.optimizer.param_groups[0]["lr"]))

    def backward(self, loss):
        """``(loss / accumulation).backward()``; True when ``accumulation`` micro-batches
        are in and :meth:`step` is due."""
        (loss / self.accumulation).backward()
        self._micro += 1
        return self._micro >= self.accumulation

    def step(self):
        """``on_step`` (its decision applied first: the LR of this step), then
        ``optimizer.step()`` and ``optimizer.zero_grad()``."""
        decision = self.on_step()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._micro = 0
        return decision

    def epoch_end(self, **metrics):
        """``on_epoch_end`` with this epoch's metrics (``val_loss``, ``val_acc``,
        ``train_loss``, ``train_acc``); writes the ``best`` checkpoint first when
        val_loss improved."""
        val_loss = metrics.get("val_loss")
        if val_loss is not None and math.isfinite(val_loss) and (self._best is None or val_loss < self._best):
            self._best = val_loss
            if self.model is not None and self.checkpoint_dir is not None:
                self._save("best")
        decision = self.apply(self.policies.on_epoch_end(epoch=self.epoch, **self._context(), **metrics))
        self.epoch += 1
        return decision

    def end(self):
        """``on_train_end``; :meth:`epochs` calls it."""
        return self.apply(self.policies.on_train_end(**self._context()))

    def epochs(self):
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
    def should_stop(self):
        return self.policies.should_stop

    # -- applying decisions --------------------------------------------------------

    def apply(self, decision):
        """Applies a decision dict (what a hook returned) and returns it. A rollback
        first: the decision's other values apply to the restored state."""
        if "rollback" in decision:
            self._rollback(decision["rollback"])
        if "save" in decision:
            tag = decision["save"]
            self._save(tag if isinstance(tag, str) else f"step-{self.policies.state()['run']['step']}")
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
        if "log" in decision:
            print(f"policy: {decision['log']}", file=sys.stderr)
        if decision.get("stop"):
            print(f"rudder: stop: {decision.get('reason', 'a policy stopped the run')}", file=sys.stderr)
        self.metrics.update(decision.get("metrics", {}))
        return decision

    # -- checkpoints ---------------------------------------------------------------

    def _save(self, name):
        if self.model is None or self.checkpoint_dir is None:
            unsupported(self.policies, "save", "Steer needs model= and checkpoint_dir= to save")
            return
        folder = os.path.join(self.checkpoint_dir, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "checkpoint.pt")
        tmp = path + ".tmp"
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "policies": self.policies.state(), "epoch": self.epoch,
                    "accumulation": self.accumulation, "batch_size": self.batch_size}, tmp)
        os.replace(tmp, path)
        if name != "best":
            self._last_checkpoint = path
        print(f"rudder: saved {path}", file=sys.stderr)

    def _rollback(self, target):
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
        settings = [{k: g[k] for k in ("lr", "momentum", "betas", "weight_decay") if k in g}
                    for g in self.optimizer.param_groups]
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        # The run's settings go on: the optimizer's state, not its hyperparameters.
        for g, s in zip(self.optimizer.param_groups, settings):
            g.update(s)
        print(f"rudder: rolled back to {path}", file=sys.stderr)

    def load(self, path):
        """Restores a checkpoint written by a ``save`` (model, optimizer, policies'
        state): a resume."""
        saved = torch.load(path, weights_only=True)
        if self.model is not None:
            self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.policies.load_state(saved["policies"])
        self.epoch = saved.get("epoch", self.epoch)
        self.accumulation = saved.get("accumulation", self.accumulation)
        self.batch_size = saved.get("batch_size", self.batch_size)
        if self.sampler is not None:
            self.sampler.batch_size = self.batch_size
        self._started = True
