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
dataloader has one; ``log`` is printed; ``metrics`` are logged as ``policy/NAME``. A
key it cannot apply is an ``unsupported_decision`` event. The policies' state is the
callback's state in Lightning's checkpoints, so a resumed fit resumes the policies.
Metric names: ``metrics={"val_loss": "valid/loss", ...}`` maps the context's names
to the logged ones.
"""

import math
import os
import sys

import lightning.pytorch as pl
import torch

from . import policies_from
from .torch import ResizableBatchSampler, momentum_of, safe_load, set_group, unsupported

__all__ = ["RudderCallback"]

_NAMES = ("val_loss", "val_acc", "train_loss", "train_acc")


def _scalar(v):
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        v = v.detach().float().item()
    return float(v)


class RudderCallback(pl.Callback):
    """``policies``: a :class:`rudder.Policies`, or names built with ``params``,
    ``watch``, ``path``; ``rescale``: the LR rule of a batch-size change (default
    ``"sqrt"`` for Adam-type optimizers, else ``"linear"``)."""

    def __init__(self, policies, params=None, watch=True, path=None, *, metrics=None,
                 checkpoint_dir=None, rescale=None, messages=None):
        super().__init__()
        self._spec = (policies, params, watch, path, messages)
        self._rescale = rescale
        # Names are built at the start of the fit, when the optimizer is known.
        self.policies = None if isinstance(policies, (list, tuple, str)) else policies
        self.names = {n: n for n in _NAMES}
        self.names.update(metrics or {})
        self.checkpoint_dir = checkpoint_dir
        self._ratios = None
        self._last = None
        self._best_path = None
        self._best = None
        self._ended_epoch = -1
        self._pending_state = None

    # -- setup ---------------------------------------------------------------------

    def _ensure(self, trainer):
        if self.policies is None:
            opt = trainer.optimizers[0] if trainer.optimizers else None
            rescale = self._rescale or ("sqrt" if opt is not None and "betas" in opt.param_groups[0] else "linear")
            names, params, watch, path, messages = self._spec
            self.policies = policies_from(names, params, watch, path, rescale, messages)
        if self._pending_state is not None:
            self.policies.load_state(self._pending_state)
            self._pending_state = None
        if self.checkpoint_dir is None:
            self.checkpoint_dir = os.path.join(trainer.default_root_dir, "rudder")

    def _sampler(self, trainer):
        loader = getattr(trainer, "train_dataloader", None)
        sampler = getattr(loader, "batch_sampler", None)
        return sampler if isinstance(sampler, ResizableBatchSampler) else None

    def _context(self, trainer):
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
        dataset = getattr(loader, "dataset", None)
        try:
            ctx["dataset_size"] = len(dataset)
        except TypeError:
            pass
        return ctx

    # -- Lightning's hooks -----------------------------------------------------------

    def on_train_start(self, trainer, pl_module):
        self._ensure(trainer)
        g0 = trainer.optimizers[0].param_groups[0]["lr"]
        self._ratios = [[g["lr"] / g0 if g0 else 1.0 for g in o.param_groups] for o in trainer.optimizers]
        self._apply(trainer, pl_module, self.policies.on_train_start(step=trainer.global_step, **self._context(trainer)))

    def on_train_epoch_start(self, trainer, pl_module):
        self._apply(trainer, pl_module, self.policies.on_epoch_start(
            epoch=trainer.current_epoch, step=trainer.global_step, **self._context(trainer)))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # Before each optimizer step: at the first micro-batch of its accumulation.
        if batch_idx % max(1, int(trainer.accumulate_grad_batches)) != 0:
            return
        # The rest of the context was given at the epoch's start; a step costs little.
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self._apply(trainer, pl_module, self.policies.on_step(step=trainer.global_step, lr=lr))

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._epoch_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        # Without validation, the epoch ends here.
        if self._ended_epoch != trainer.current_epoch:
            self._epoch_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._apply(trainer, pl_module, self.policies.on_train_end(step=trainer.global_step, **self._context(trainer)))

    def _epoch_end(self, trainer, pl_module):
        if self._ended_epoch == trainer.current_epoch or self.policies is None:
            return
        self._ended_epoch = trainer.current_epoch
        logged = trainer.callback_metrics
        metrics = {}
        for name, key in self.names.items():
            if key in logged:
                metrics[name] = _scalar(logged[key])
        val_loss = metrics.get("val_loss")
        if val_loss is not None and math.isfinite(val_loss) and (self._best is None or val_loss < self._best):
            self._best = val_loss
            self._best_path = self._save(trainer, "best")
        self._apply(trainer, pl_module, self.policies.on_epoch_end(
            epoch=trainer.current_epoch, step=trainer.global_step, **self._context(trainer), **metrics))

    # -- decisions -----------------------------------------------------------------

    def _apply(self, trainer, pl_module, d):
        if "rollback" in d:
            self._rollback(trainer, pl_module, d["rollback"])
        if "save" in d:
            tag = d["save"] if isinstance(d["save"], str) else f"step-{trainer.global_step}"
            self._last = self._save(trainer, tag)
        applied = [set_group(g, d, ratio)
                   for o, ratios in zip(trainer.optimizers, self._ratios or [[1.0]] * len(trainer.optimizers))
                   for g, ratio in zip(o.param_groups, ratios)]
        if not all(applied):
            unsupported(self.policies, "momentum", "the optimizer has no momentum")
        if "accumulation" in d:
            trainer.accumulate_grad_batches = int(d["accumulation"])
        if "epochs" in d:
            trainer.fit_loop.max_epochs = int(d["epochs"])
        if "batch_size" in d:
            sampler = self._sampler(trainer)
            if sampler is None:
                unsupported(self.policies, "batch_size", "the train dataloader has no rudder.torch.ResizableBatchSampler")
            else:
                sampler.batch_size = int(d["batch_size"])
        if d.get("stop"):
            trainer.should_stop = True
            print(f"rudder: stop: {d.get('reason', 'a policy stopped the run')}", file=sys.stderr)
        if "log" in d:
            print(f"policy: {d['log']}", file=sys.stderr)
        if d.get("metrics") and trainer.logger is not None:
            trainer.logger.log_metrics({f"policy/{k}": v for k, v in d["metrics"].items()}, step=trainer.global_step)

    def _save(self, trainer, name):
        path = os.path.join(self.checkpoint_dir, f"{name}.ckpt")
        trainer.save_checkpoint(path)
        return path

    def _rollback(self, trainer, pl_module, target):
        if target == "best":
            path = self._best_path
            cb = trainer.checkpoint_callback
            if path is None and cb is not None and getattr(cb, "best_model_path", ""):
                path = cb.best_model_path
        else:
            path = self._last
        if not path or not os.path.exists(path):
            unsupported(self.policies, "rollback", f"no {target} checkpoint yet")
            return
        saved = safe_load(self.policies, path, map_location=pl_module.device)
        if saved is None:
            return
        keep = [[{k: g[k] for k in ("lr", "momentum", "betas", "weight_decay") if k in g} for g in o.param_groups]
                for o in trainer.optimizers]
        pl_module.load_state_dict(saved["state_dict"])
        for o, state, groups in zip(trainer.optimizers, saved.get("optimizer_states", []), keep):
            o.load_state_dict(state)
            # The run's settings go on: the optimizer's state, not its hyperparameters.
            for g, s in zip(o.param_groups, groups):
                g.update(s)
        print(f"rudder: rolled back to {path}", file=sys.stderr)

    # -- the callback's state in Lightning's checkpoints -----------------------------

    def state_dict(self):
        return {"policies": self.policies.state() if self.policies is not None else None,
                "best": self._best, "best_path": self._best_path, "last": self._last}

    def load_state_dict(self, state):
        self._pending_state = state.get("policies")
        self._best = state.get("best")
        self._best_path = state.get("best_path")
        self._last = state.get("last")
