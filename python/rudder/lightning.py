"""rudder policies as a Lightning callback.

    import lightning as L
    from rudder.lightning import RudderCallback

    trainer = L.Trainer(max_epochs=20, callbacks=[RudderCallback(["lr/warmup", "stop/early_stop"],
                                                                  params={"patience": 3})])
    trainer.fit(model, datamodule)

The hooks map to Lightning's: ``on_train_start`` to ``on_train_start``,
``on_epoch_start`` to ``on_train_epoch_start``, ``on_step`` to ``on_train_batch_start``
(the first micro-batch of each optimizer step), ``on_epoch_end`` to the end of the
epoch's validation (``on_validation_end``, with ``trainer.callback_metrics``; at
``on_train_epoch_end`` when there is no validation), ``on_train_end`` to
``on_train_end``. Decisions: ``lr``, ``momentum`` (beta1 for Adam-type optimizers) and
``weight_decay`` go to every param group of every optimizer; ``accumulation`` to
``trainer.accumulate_grad_batches``; ``epochs`` to ``trainer.fit_loop.max_epochs``;
``stop`` to ``trainer.should_stop``; ``save`` to ``trainer.save_checkpoint`` in
``checkpoint_dir`` (default ``<default_root_dir>/rudder``); ``rollback`` loads the
model and optimizer states of that checkpoint (``best``: the last one written when
val_loss improved, or the ModelCheckpoint's best; ``last``: the newest saved);
``batch_size`` goes to a :class:`rudder.torch.ResizableBatchSampler` if the train
dataloader has one; ``log`` goes to the ``rudder`` logger (rank 0); a key it cannot
apply warns through Lightning's ``rank_zero_warn``; ``metrics`` are logged as ``policy/NAME``. A
key it cannot apply is an ``unsupported_decision`` event. The policies' state is the
callback's state in Lightning's checkpoints, so a resumed fit resumes the policies.
Metric names: ``metrics={"val_loss": "valid/loss", ...}`` maps the context's names
to the logged ones.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from . import Policies
from ._common import Shared, build, momentum_of, set_group, unsupported
from .torch import ResizableBatchSampler, safe_load

__all__ = ["RudderCallback"]

_NAMES = ("val_loss", "val_acc", "train_loss", "train_acc")


def _scalar(v: Any) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        v = v.detach().float().item()
    return float(v)


class RudderCallback(pl.Callback):
    """rudder policies steering a ``lightning.Trainer`` fit.

    With a strategy of many processes (``ddp``, ``ddp_spawn``, FSDP, DeepSpeed) the
    policies run on global rank 0 and every rank applies rank 0's decision at the
    same step, through the strategy's ``broadcast``; log lines are rank 0's.

    Args:
        policies: a :class:`rudder.Policies`, or policy names or paths (built when the
            fit starts, when the optimizer is known).
        params, watch, path, messages: as :class:`rudder.Policies` takes them.
        metrics: the context's metric names to the logged ones
            (``{"val_loss": "valid/loss"}``).
        checkpoint_dir: where ``save`` writes (default ``<default_root_dir>/rudder``).
        rescale: the LR rule of a batch-size change (default ``"sqrt"`` for Adam-type
            optimizers, else ``"linear"``).

    Example:
        >>> cb = RudderCallback(["lr/cosine"], watch=False)
        >>> cb.state_key
        "RudderCallback{'policies': ['lr/cosine'], 'metrics': {}, 'checkpoint_dir': None}"
    """

    def __init__(self, policies: Union[Policies, Sequence[str], str], params: Optional[Mapping[str, Any]] = None,
                 watch: bool = True, path: Optional[Sequence[str]] = None, *,
                 metrics: Optional[Mapping[str, str]] = None, checkpoint_dir: Optional[str] = None,
                 rescale: Optional[str] = None, messages: Any = None) -> None:
        super().__init__()
        self._spec = (policies, params, watch, path, messages)
        self._rescale = rescale
        self._key_names = ([policies] if isinstance(policies, str) else list(policies)
                           if isinstance(policies, (list, tuple)) else [repr(policies)])
        self._key_metrics = dict(metrics or {})
        self._key_dir = checkpoint_dir
        self._state_key: Optional[str] = None
        #: The policies (a :class:`rudder._common.Shared`), from the fit's start on.
        self.policies: Optional[Shared] = None
        self.names = {n: n for n in _NAMES}
        self.names.update(metrics or {})
        self.checkpoint_dir = checkpoint_dir
        self._ratios: Optional[List[List[float]]] = None
        self._last: Optional[str] = None
        self._best_path: Optional[str] = None
        self._best: Optional[float] = None
        self._ended_epoch = -1
        self._pending_state: Any = None

    @property
    def state_key(self) -> str:
        """Its key in a checkpoint's ``callbacks``: one per set of policies, metric
        names and folder, so that two callbacks keep two states."""
        # Lightning reads it at every hook call (its profiler's names): made once.
        if self._state_key is None:
            self._state_key = self._generate_state_key(policies=self._key_names, metrics=self._key_metrics,
                                                       checkpoint_dir=self._key_dir)
        return self._state_key

    # -- setup ---------------------------------------------------------------------

    def _set(self) -> Shared:
        assert self.policies is not None, "the fit has not started"
        return self.policies

    def _ensure(self, trainer: pl.Trainer) -> Shared:
        if self.policies is None:
            opt = trainer.optimizers[0] if trainer.optimizers else None
            rescale = self._rescale or ("sqrt" if opt is not None and "betas" in opt.param_groups[0] else "linear")
            names, params, watch, path, messages = self._spec
            rank = trainer.global_rank
            built = build(names, params, watch, path, rescale, messages, rank)
            many = trainer.world_size > 1
            broadcast = (lambda o: trainer.strategy.broadcast(o, src=0)) if many else None
            self.policies = Shared(built, rank, broadcast, warn=rank_zero_warn)
        if self._pending_state is not None:
            self.policies.load_state(self._pending_state)
            self._pending_state = None
        if self.checkpoint_dir is None:
            self.checkpoint_dir = os.path.join(trainer.default_root_dir, "rudder")
        return self.policies

    def _sampler(self, trainer: pl.Trainer) -> Optional[ResizableBatchSampler]:
        loader = getattr(trainer, "train_dataloader", None)
        sampler = getattr(loader, "batch_sampler", None)
        return sampler if isinstance(sampler, ResizableBatchSampler) else None

    def _context(self, trainer: pl.Trainer) -> Dict[str, Any]:
        opt = trainer.optimizers[0]
        g = opt.param_groups[0]
        ctx = dict(lr=g["lr"], momentum=momentum_of(g), weight_decay=g.get("weight_decay", 0.0),
                   accumulation=int(trainer.accumulate_grad_batches), optimizer=type(opt).__name__.lower())
        loader = getattr(trainer, "train_dataloader", None)
        batches = trainer.num_training_batches
        if isinstance(batches, (int, float)) and math.isfinite(batches) and batches > 0:
            ctx["steps_per_epoch"] = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        # The planned epochs: max_epochs, or as many as max_steps takes (max_epochs -1).
        epochs = trainer.fit_loop.max_epochs
        if (epochs is None or epochs < 0) and trainer.max_steps and trainer.max_steps > 0 and "steps_per_epoch" in ctx:
            epochs = math.ceil(trainer.max_steps / ctx["steps_per_epoch"])
        if epochs is not None and epochs >= 0:
            ctx["epochs"] = int(epochs)
        sampler = getattr(loader, "batch_sampler", None)
        batch_size = getattr(sampler, "batch_size", None) or getattr(loader, "batch_size", None)
        if batch_size:
            ctx["batch_size"] = int(batch_size)
        dataset: Any = getattr(loader, "dataset", None)
        try:
            ctx["dataset_size"] = len(dataset)
        except TypeError:
            pass
        return ctx

    # -- Lightning's hooks -----------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure(trainer)
        g0 = trainer.optimizers[0].param_groups[0]["lr"]
        self._ratios = [[g["lr"] / g0 if g0 else 1.0 for g in o.param_groups] for o in trainer.optimizers]
        self._apply(trainer, pl_module, self._set().on_train_start(step=trainer.global_step, **self._context(trainer)))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(trainer, pl_module, self._set().on_epoch_start(
            epoch=trainer.current_epoch, step=trainer.global_step, **self._context(trainer)))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        # Before each optimizer step: at the first micro-batch of its accumulation.
        if batch_idx % max(1, int(trainer.accumulate_grad_batches)) != 0:
            return
        # The rest of the context was given at the epoch's start; a step costs little.
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self._apply(trainer, pl_module, self._set().on_step(step=trainer.global_step, lr=lr))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._epoch_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Without validation, the epoch ends here.
        if self._ended_epoch != trainer.current_epoch:
            self._epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(trainer, pl_module, self._set().on_train_end(step=trainer.global_step, **self._context(trainer)))

    def _epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ended_epoch == trainer.current_epoch or self.policies is None:
            return
        self._ended_epoch = trainer.current_epoch
        logged = trainer.callback_metrics
        metrics: Dict[str, Optional[float]] = {}
        for name, key in self.names.items():
            if key in logged:
                metrics[name] = _scalar(logged[key])
        val_loss = metrics.get("val_loss")
        improved = val_loss is not None and math.isfinite(val_loss) and (self._best is None or val_loss < self._best)
        # Every rank writes the checkpoint together (Lightning's save is collective):
        # rank 0's val_loss decides.
        if self._set().agree(improved):
            self._best = val_loss
            self._best_path = self._save(trainer, "best")
        self._apply(trainer, pl_module, self._set().on_epoch_end(
            epoch=trainer.current_epoch, step=trainer.global_step, **self._context(trainer), **metrics))

    # -- decisions -----------------------------------------------------------------

    def _apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule, d: Dict[str, Any]) -> None:
        if not d:
            return
        if "rollback" in d:
            self._rollback(trainer, pl_module, d["rollback"])
        if "save" in d:
            tag = d["save"] if isinstance(d["save"], str) else f"step-{trainer.global_step}"
            self._last = self._save(trainer, tag)
        applied = [set_group(g, d, ratio)
                   for o, ratios in zip(trainer.optimizers, self._ratios or [[1.0]] * len(trainer.optimizers))
                   for g, ratio in zip(o.param_groups, ratios)]
        if not all(applied):
            unsupported(self._set(), "momentum", "the optimizer has no momentum")
        if "accumulation" in d:
            trainer.accumulate_grad_batches = int(d["accumulation"])
        if "epochs" in d:
            trainer.fit_loop.max_epochs = int(d["epochs"])
        if "batch_size" in d:
            sampler = self._sampler(trainer)
            if sampler is None:
                unsupported(self._set(), "batch_size", "the train dataloader has no rudder.torch.ResizableBatchSampler")
            else:
                sampler.batch_size = int(d["batch_size"])
        if d.get("stop"):
            trainer.should_stop = True
        self._set().say(d)
        if d.get("metrics") and trainer.logger is not None:
            trainer.logger.log_metrics({f"policy/{k}": v for k, v in d["metrics"].items()}, step=trainer.global_step)

    def _save(self, trainer: pl.Trainer, name: str) -> str:
        path = os.path.join(self.checkpoint_dir or trainer.default_root_dir, f"{name}.ckpt")
        trainer.save_checkpoint(path)
        return path

    def _rollback(self, trainer: pl.Trainer, pl_module: pl.LightningModule, target: str) -> None:
        if target == "best":
            path = self._best_path
            cb: Any = trainer.checkpoint_callback
            theirs = str(getattr(cb, "best_model_path", "") or "") if cb is not None else ""
            if path is None and theirs:
                path = theirs
        else:
            path = self._last
        if not path or not os.path.exists(path):
            unsupported(self._set(), "rollback", f"no {target} checkpoint yet")
            return
        saved = safe_load(self._set(), path, map_location=pl_module.device)
        if saved is None:
            return
        keep: List[List[Dict[str, Any]]] = [[{k: g[k] for k in ("lr", "momentum", "betas", "weight_decay") if k in g} for g in o.param_groups]
                for o in trainer.optimizers]
        pl_module.load_state_dict(saved["state_dict"])
        for o, state, groups in zip(trainer.optimizers, saved.get("optimizer_states", []), keep):
            o.load_state_dict(state)
            # The run's settings go on: the optimizer's state, not its hyperparameters.
            for g, s in zip(o.param_groups, groups):
                g.update(s)
        self._set().info("rolled back to %s", path)

    # -- the callback's state in Lightning's checkpoints -----------------------------

    def state_dict(self) -> Dict[str, Any]:
        return {"policies": self.policies.state() if self.policies is not None else None,
                "best": self._best, "best_path": self._best_path, "last": self._last}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._pending_state = state.get("policies")
        self._best = state.get("best")
        self._best_path = state.get("best_path")
        self._last = state.get("last")
