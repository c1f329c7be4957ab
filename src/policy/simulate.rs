//! Running the hooks with no training, in the order a run calls them: `rudder policy
//! schedule` (no metrics) and `rudder policy replay` (recorded metrics). The same
//! controller, validation and decision arithmetic as `rudder train`.

use serde_json::{Value, json};

use super::{Best, Controller, Ctx, EpochMetrics, Hook, Rescale, Settings};

/// The run being simulated.
#[derive(Debug, Clone)]
pub struct Setup {
    pub settings: Settings,
    pub steps_per_epoch: usize,
    pub dataset_size: usize,
    pub optimizer: &'static str,
    pub rule: Rescale,
}

struct Sim<'c> {
    controller: &'c mut dyn Controller,
    setup: Setup,
    s: Settings,
    epoch: usize,
    step: u64,
    metrics: EpochMetrics,
    best: Best,
    history: Vec<Value>,
    stop: bool,
    /// Decisions of the current epoch (not per-step LR schedules), as JSON.
    decisions: Vec<Value>,
}

impl Sim<'_> {
    fn hook(&mut self, hook: Hook) {
        if !self.controller.defines(hook) {
            return;
        }
        let ctx = Ctx {
            epoch: self.epoch,
            step: self.step,
            steps_per_epoch: self.setup.steps_per_epoch,
            settings: self.s,
            base_lr: self.setup.settings.lr,
            base_batch_size: self.setup.settings.batch_size,
            optimizer: self.setup.optimizer,
            dataset_size: self.setup.dataset_size,
            metrics: self.metrics,
            history: &self.history,
            best: self.best,
            resumed: false,
        };
        let reply = self.controller.call(hook, &ctx);
        // The controller's `decision` events: per policy, schedules' per-step LRs left out.
        for e in reply.events.iter().filter(|e| e.kind == "decision") {
            self.decisions.push(
                json!({"hook": hook, "policy": e.policy, "decision": e.detail.get("decision")}),
            );
        }
        let d = reply.decision;
        self.s = d.apply(self.s, self.setup.rule);
        self.stop |= d.stop;
    }
}

fn sim(controller: &mut dyn Controller, setup: Setup) -> Sim<'_> {
    Sim {
        controller,
        s: setup.settings,
        setup,
        epoch: 0,
        step: 0,
        metrics: EpochMetrics::default(),
        best: Best::default(),
        history: Vec::new(),
        stop: false,
        decisions: Vec::new(),
    }
}

/// One `{epoch, step, lr, batch_size}` per optimizer step (or per epoch, its first
/// step, with `per_epoch`), the LR being the one that step uses.
pub fn schedule(
    controller: &mut dyn Controller,
    setup: Setup,
    per_epoch: bool,
    emit: &mut dyn FnMut(Value),
) {
    let mut sim = sim(controller, setup);
    sim.hook(Hook::TrainStart);
    while !sim.stop && sim.epoch < sim.s.epochs {
        sim.hook(Hook::EpochStart);
        for k in 0..sim.setup.steps_per_epoch {
            if sim.stop {
                break;
            }
            sim.hook(Hook::Step);
            if !per_epoch || k == 0 {
                emit(
                    json!({"epoch": sim.epoch, "step": sim.step, "lr": sim.s.lr, "batch_size": sim.s.batch_size}),
                );
            }
            sim.step += 1;
        }
        if !sim.stop {
            sim.hook(Hook::EpochEnd);
        }
        sim.epoch += 1;
    }
    sim.hook(Hook::TrainEnd);
}

fn metric(r: &Value, key: &str) -> Option<f64> {
    match r.get(key) {
        Some(Value::Null) => Some(f64::NAN),
        Some(v) => v.as_f64(),
        None => None,
    }
}

/// Feeds recorded per-epoch metrics (`metrics.jsonl` objects) to the hooks; one
/// `{epoch, lr, batch_size, epochs, stop, decisions}` per epoch, ending after the
/// epoch whose hooks stop. Steps per epoch follow the records' `step` counts.
pub fn replay(
    controller: &mut dyn Controller,
    setup: Setup,
    records: &[Value],
    emit: &mut dyn FnMut(Value),
) {
    let mut sim = sim(controller, setup);
    sim.hook(Hook::TrainStart);
    let mut done_steps = 0u64;
    for r in records {
        if sim.stop {
            break;
        }
        sim.epoch = r
            .get("epoch")
            .and_then(Value::as_u64)
            .map_or(sim.epoch, |e| e as usize);
        sim.decisions.clear();
        sim.hook(Hook::EpochStart);
        let end = r
            .get("step")
            .and_then(Value::as_u64)
            .unwrap_or(done_steps + sim.setup.steps_per_epoch as u64);
        let lr_at_start = sim.s.lr;
        let mut lr_used = lr_at_start;
        while sim.step < end.max(done_steps + 1) && !sim.stop {
            sim.hook(Hook::Step);
            lr_used = sim.s.lr;
            sim.step += 1;
        }
        done_steps = sim.step;
        sim.metrics = EpochMetrics {
            train_loss: metric(r, "train_loss"),
            train_acc: metric(r, "train_acc"),
            val_loss: metric(r, "val_loss"),
            val_acc: metric(r, "val_acc"),
        };
        if let Some(v) = sim.metrics.val_loss.filter(|v| v.is_finite())
            && sim.best.val_loss.is_none_or(|b| v < b)
        {
            sim.best = Best {
                val_loss: Some(v),
                val_acc: sim.metrics.val_acc,
                epoch: Some(sim.epoch),
            };
        }
        let batch = sim.s.batch_size;
        sim.hook(Hook::EpochEnd);
        emit(json!({
            "epoch": sim.epoch,
            "lr": lr_used,
            "batch_size": batch,
            "epochs": sim.s.epochs,
            "stop": sim.stop,
            "decisions": sim.decisions,
        }));
        sim.history.push(r.clone());
        sim.epoch += 1;
    }
    sim.hook(Hook::TrainEnd);
}
