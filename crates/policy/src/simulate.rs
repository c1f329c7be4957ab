//! Running the hooks with no training, in the order a run calls them: `policy
//! schedule` (no metrics) and `policy replay` (recorded metrics). The same
//! controller, validation and decision arithmetic as a training loop.

use serde_json::{Value, json};

use crate::{Controller, EpochMetrics, EventKind, Hook, Rescale, RunState, Settings};

/// The run being simulated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Setup {
    /// The starting settings; `epochs` is the planned total.
    pub settings: Settings,
    /// Optimizer steps in one epoch.
    pub steps_per_epoch: usize,
    /// Training examples per epoch.
    pub dataset_size: usize,
    /// The optimizer's name as `ctx.optimizer` shows it.
    pub optimizer: String,
    /// The default rule for batch-size changes.
    pub rule: Rescale,
}

impl Setup {
    /// `settings` (its `epochs` the planned total) at `steps_per_epoch`; the training
    /// set as large as an epoch's batches, SGD, linear rescaling.
    pub fn new(settings: Settings, steps_per_epoch: usize) -> Setup {
        Setup {
            settings,
            steps_per_epoch,
            dataset_size: steps_per_epoch * settings.batch_size,
            optimizer: "sgd".into(),
            rule: Rescale::Linear,
        }
    }
}

/// One epoch to simulate: its index, the step count it ends at, and the metrics it
/// ends with (a `metrics.jsonl` object, or none for a schedule).
struct Epoch<'r> {
    epoch: usize,
    end_step: u64,
    record: Option<&'r Value>,
}

/// Where a simulated epoch is: after its start hook, after the hook of its k-th
/// step, before its end hook, after it.
#[derive(Clone, Copy)]
enum Moment {
    Started,
    Stepped(u64),
    Ending,
    Ended,
}

struct Sim<'c> {
    controller: &'c mut dyn Controller,
    setup: Setup,
    /// The simulated run, as a training loop keeps it.
    run: RunState,
    /// Decisions of the current epoch (not per-step LR schedules), as JSON.
    decisions: Vec<Value>,
}

impl Sim<'_> {
    fn hook(&mut self, hook: Hook) {
        if !self.controller.defines(hook) {
            return;
        }
        let reply = self.controller.call(hook, &self.run.ctx());
        // The controller's `decision` events: per policy, schedules' per-step LRs left out.
        for e in reply
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Decision)
        {
            self.decisions
                .push(json!({"hook": hook, "policy": e.policy, "decision": e.decision}));
        }
        self.run.apply(&reply.decision, self.setup.rule);
    }

    /// The hooks in a run's order: `on_train_start`, then per epoch `on_epoch_start`,
    /// `on_step` before each step (at least one), `on_epoch_end` (for a schedule,
    /// unless a step stopped the run); `on_train_end` last. `emit` hears each moment.
    fn drive<'r>(
        &mut self,
        mut next: impl FnMut(&Sim) -> Option<Epoch<'r>>,
        emit: &mut dyn FnMut(&Sim, Moment),
    ) {
        self.hook(Hook::TrainStart);
        while !self.run.stopped {
            let Some(e) = next(self) else { break };
            self.run.epoch = e.epoch;
            self.decisions.clear();
            self.hook(Hook::EpochStart);
            emit(self, Moment::Started);
            let first = self.run.step;
            while !self.run.stopped && (self.run.step < e.end_step || self.run.step == first) {
                self.hook(Hook::Step);
                emit(self, Moment::Stepped(self.run.step - first));
                self.run.step += 1;
            }
            if let Some(r) = e.record.and_then(Value::as_object) {
                self.run.end_epoch(EpochMetrics::from_json(r));
            }
            emit(self, Moment::Ending);
            if e.record.is_some() || !self.run.stopped {
                self.hook(Hook::EpochEnd);
            }
            emit(self, Moment::Ended);
            if let Some(r) = e.record {
                self.run.history.push(r.clone());
            }
            self.run.epoch += 1;
        }
        self.hook(Hook::TrainEnd);
    }
}

fn sim(controller: &mut dyn Controller, setup: Setup) -> Sim<'_> {
    let mut run = RunState::new(setup.settings);
    run.steps_per_epoch = Some(setup.steps_per_epoch);
    run.dataset_size = Some(setup.dataset_size);
    run.optimizer = setup.optimizer.clone();
    run.fix_bases();
    Sim {
        controller,
        setup,
        run,
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
    let next = |s: &Sim| {
        (s.run.epoch < s.run.settings.epochs).then(|| Epoch {
            epoch: s.run.epoch,
            end_step: s.run.step + s.setup.steps_per_epoch as u64,
            record: None,
        })
    };
    sim.drive(next, &mut |s, m| {
        if let Moment::Stepped(k) = m
            && (!per_epoch || k == 0)
        {
            let r = &s.run;
            emit(json!({"epoch": r.epoch, "step": r.step, "lr": r.settings.lr, "batch_size": r.settings.batch_size}));
        }
    });
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
    let mut records = records.iter();
    let next = |s: &Sim| {
        let r = records.next()?;
        Some(Epoch {
            epoch: r
                .get("epoch")
                .and_then(Value::as_u64)
                .map_or(s.run.epoch, |e| e as usize),
            end_step: r
                .get("step")
                .and_then(Value::as_u64)
                .unwrap_or(s.run.step + s.setup.steps_per_epoch as u64),
            record: Some(r),
        })
    };
    // The LR the epoch's last step used, and the batch size before its end hook.
    let (mut lr_used, mut batch) = (sim.run.settings.lr, sim.run.settings.batch_size);
    sim.drive(next, &mut |s, m| match m {
        Moment::Started | Moment::Stepped(_) => lr_used = s.run.settings.lr,
        Moment::Ending => batch = s.run.settings.batch_size,
        Moment::Ended => emit(json!({
            "epoch": s.run.epoch,
            "lr": lr_used,
            "batch_size": batch,
            "epochs": s.run.settings.epochs,
            "stop": s.run.stopped,
            "decisions": s.decisions,
        })),
    });
}
