"""rudder policies as a Hugging Face ``Trainer`` callback.

    from transformers import Trainer, TrainingArguments
    from rudder.transformers import RudderCallback

    trainer = Trainer(model=model, args=TrainingArguments("out", num_train_epochs=5,
                      eval_strategy="epoch"), train_dataset=train, eval_dataset=val,
                      callbacks=[RudderCallback(["lr/onecycle", "stop/early_stop"])])
    trainer.train()

The Trainer steps its own LR scheduler right after each optimizer step. The callback
makes the policy's LR the one every step uses: it sets each param group's ``lr`` in
``on_pre_optimizer_step``, just before ``optimizer.step()``, whatever the scheduler
left there, and after each step sets the scheduler's last LR (what ``get_last_lr``
gives) to the LR applied, so the Trainer logs ``learning_rate`` as applied and its
checkpoints hold it. The scheduler still runs, but nothing it
sets reaches an optimizer step; ``lr_scheduler_type="constant"`` says so plainly.

Hooks: ``on_train_start`` at ``on_train_begin``, ``on_epoch_start`` at
``on_epoch_begin``, ``on_step`` at ``on_step_begin`` (once per optimizer step),
``on_epoch_end`` at ``on_evaluate`` with ``eval_strategy="epoch"`` (``eval_loss`` and
``eval_accuracy`` as val_loss and val_acc), else at ``on_epoch_end`` (the last logged
``loss`` as train_loss, and the last evaluation's metrics if any), ``on_train_end`` at ``on_train_end``. Decisions: ``lr``,
``momentum`` (beta1 for Adam-type optimizers) and ``weight_decay`` go to the param
groups; ``stop`` to ``control.should_training_stop``; ``save`` to
``control.should_save`` (the Trainer writes ``checkpoint-STEP``; a tag is not kept);
``log`` goes to the ``rudder`` logger (rank 0); ``metrics`` join the policies' ``ctx.history``. ``batch_size``, ``accumulation``,
``epochs`` and ``rollback`` cannot be applied to a running Trainer: each is an
``unsupported_decision`` event and a warning on the ``rudder`` logger.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from . import Policies
from ._common import Shared, build, momentum_of, set_group, torch_broadcast, torch_world, unsupported

__all__ = ["RudderCallback"]


def _per_epoch(args: TrainingArguments) -> bool:
    return str(getattr(args, "eval_strategy", "no")).lower().endswith("epoch")


class RudderCallback(TrainerCallback):
    """rudder policies steering a Hugging Face ``Trainer``.

    Under ``accelerate launch`` or ``torchrun`` (``torch.distributed`` initialized
    when training starts) the policies run on rank 0 and every process applies rank
    0's decision at the same step; log lines are rank 0's.

    Args:
        policies: a :class:`rudder.Policies`, or policy names or paths.
        params, watch, path, messages: as :class:`rudder.Policies` takes them.
        metrics: the context's names to the Trainer's (default ``{"val_loss":
            "eval_loss", "val_acc": "eval_accuracy"}``).
        rescale: the LR rule of a batch-size change (default ``"sqrt"`` for Adam-type
            optimizers, else ``"linear"``).

    Example:
        >>> cb = RudderCallback(["lr/onecycle"], watch=False)
        >>> cb.names["val_loss"]
        'eval_loss'
    """

    def __init__(self, policies: Union[Policies, Sequence[str], str], params: Optional[Mapping[str, Any]] = None,
                 watch: bool = True, path: Optional[Sequence[str]] = None, *,
                 metrics: Optional[Mapping[str, str]] = None, rescale: Optional[str] = None,
                 messages: Any = None) -> None:
        self._spec = (policies, params, watch, path, messages)
        self._rescale = rescale
        #: The policies (a :class:`rudder._common.Shared`), from the training's start on.
        self.policies: Any = None
        self.names = {"val_loss": "eval_loss", "val_acc": "eval_accuracy"}
        self.names.update(metrics or {})
        self.optimizer: Any = None
        self._scheduler: Any = None
        self.lr: float = 0.0
        self._ratios: list[float] = []
        self._evaluated_epoch = -1
        self._epoch = 0
        self._steps_per_epoch = 1
        self._batch_size = 1
        self._dataset_size: Optional[int] = None
        self._eval: Dict[str, float] = {}

    def _context(self, args: TrainingArguments, state: TrainerState) -> Dict[str, Any]:
        g = self.optimizer.param_groups[0]
        ctx = dict(lr=self.lr, momentum=momentum_of(g), weight_decay=g.get("weight_decay", 0.0),
                   batch_size=self._batch_size, accumulation=args.gradient_accumulation_steps,
                   epochs=max(1, math.ceil(args.num_train_epochs)), steps_per_epoch=self._steps_per_epoch,
                   step=state.global_step, optimizer=type(self.optimizer).__name__.lower())
        if self._dataset_size:
            ctx["dataset_size"] = self._dataset_size
        return ctx

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, optimizer: Any = None, lr_scheduler: Any = None,
                       train_dataloader: Any = None, **kw: Any) -> None:
        self.optimizer = optimizer
        g0 = optimizer.param_groups[0]
        base = args.learning_rate
        self.lr = base
        self._ratios = [g.get("initial_lr", g["lr"]) / (g0.get("initial_lr", g0["lr"]) or 1.0)
                        for g in optimizer.param_groups]
        if self.policies is None:
            rescale = self._rescale or ("sqrt" if "betas" in g0 else "linear")
            names, params, watch, path, messages = self._spec
            rank, world = torch_world()
            built = build(names, params, watch, path, rescale, messages, rank)
            self.policies = Shared(built, rank, torch_broadcast() if world > 1 else None)
        epochs = max(1, math.ceil(args.num_train_epochs))
        self._steps_per_epoch = max(1, state.max_steps // epochs) if state.max_steps else 1
        self._batch_size = args.per_device_train_batch_size * max(1, args.n_gpu)
        if train_dataloader is not None:
            try:
                self._dataset_size = len(train_dataloader.dataset)
            except TypeError:
                pass
        self._scheduler = lr_scheduler
        self._apply(control, self.policies.on_train_start(**self._context(args, state)))

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._epoch = int(state.epoch or 0)
        self._apply(control, self.policies.on_epoch_start(epoch=self._epoch, **self._context(args, state)))

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        # The rest of the context was given at the epoch's start.
        self._apply(control, self.policies.on_step(step=state.global_step, lr=self.lr))

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        # Whatever the scheduler set after the last step, this step uses the policy's LR.
        self._set_lr()
        self._report()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        # The scheduler's step has just set its own last LR again: the checkpoint the
        # Trainer may write now holds the applied one.
        self._report()

    def _report(self) -> None:
        # The Trainer logs the scheduler's last LR (get_last_lr, read right after the
        # optimizer step) and saves it with a checkpoint: make it the applied LR. A
        # plain list, so that it pickles.
        if self._scheduler is not None and hasattr(self._scheduler, "_last_lr"):
            self._scheduler._last_lr = [self.lr * ratio for ratio in self._ratios]

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: Optional[Dict[str, float]] = None,
                    **kw: Any) -> None:
        # Evaluated per epoch: the epoch ends here (the Trainer evaluates after its
        # on_epoch_end); evaluations by steps are not an epoch's end.
        given = metrics or {}
        self._eval = {name: float(given[key]) for name, key in self.names.items() if key in given}
        if _per_epoch(args):
            self._epoch_end(args, state, control, self._eval)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if _per_epoch(args):
            return
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        given = dict(self._eval)
        if losses:
            given["train_loss"] = float(losses[-1])
        self._epoch_end(args, state, control, given)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._apply(control, self.policies.on_train_end(**self._context(args, state)))

    def _epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: Dict[str, float]) -> None:
        if self._evaluated_epoch == self._epoch:
            return
        self._evaluated_epoch = self._epoch
        self._apply(control, self.policies.on_epoch_end(epoch=self._epoch, **self._context(args, state), **metrics))

    def _set_lr(self) -> None:
        for g, ratio in zip(self.optimizer.param_groups, self._ratios):
            g["lr"] = self.lr * ratio

    def _apply(self, control: TrainerControl, d: Dict[str, Any]) -> TrainerControl:
        if not d:
            return control
        if "lr" in d:
            self.lr = d["lr"]
            self._set_lr()
        # The LR goes through _set_lr (the scheduler's lambda); the rest per group.
        rest = {k: v for k, v in d.items() if k != "lr"}
        if not all([set_group(g, rest) for g in self.optimizer.param_groups]):
            unsupported(self.policies, "momentum", "the optimizer has no momentum")
        for key, why in (("batch_size", "the Trainer's dataloader is built once"),
                         ("accumulation", "gradient_accumulation_steps is read once"),
                         ("epochs", "the Trainer plans its steps once"),
                         ("rollback", "the Trainer has no rollback; resume from a checkpoint instead")):
            if key in d:
                unsupported(self.policies, key, why)
        if "save" in d:
            control.should_save = True
            if isinstance(d["save"], str):
                self.policies.info("save %s: the Trainer names it checkpoint-STEP", d["save"])
        if d.get("stop"):
            control.should_training_stop = True
        self.policies.say(d)
        return control
