//! The one place hooks are called and decisions applied: the hook's call (rank 0),
//! the decision checked again and shared with every rank, then applied between
//! steps; a reload picked up at a step boundary.

use rudder_core::EventKind;
use rudder_policy::{Controller, Decision, Hook, PolicyEvent, Reply};
use serde_json::{Map, Value, json};

use super::{TrainError, Trainer};

impl Trainer<'_> {
    /// A step or epoch boundary (`epoch_start`): policies reloaded when their files
    /// changed, and the control channel's new lines. Picks up a pending reload with one
    /// atomic load when there is none, and the channel's likewise (see `control`).
    /// With many ranks, rank 0 alone watches and reads, and the merged decision
    /// (the reload's, then the channel's) reaches every rank at this same boundary.
    pub(super) fn boundary(
        &mut self,
        controller: &mut dyn Controller,
        epoch_start: bool,
    ) -> Result<(), TrainError> {
        let mut decided = None;
        let mut from_control = false;
        if self.is_root() {
            if controller.reload_due() {
                let reply = controller.reload(&self.state.ctx());
                self.record(reply.events)?;
                decided = Some(reply.decision);
            }
            if let Some(d) = self.control_decision(epoch_start)? {
                decided = Some(decided.unwrap_or_default().then(d));
                from_control = true;
            }
        }
        match self.share_from(decided, from_control)? {
            Some((d, true)) => self.apply(super::control::CONTROL, d),
            Some((d, false)) => self.apply(Hook::Reload.function(), d),
            None => Ok(()),
        }
    }

    /// The one place hooks are called and their decisions applied.
    /// With many ranks, rank 0 calls the policies and broadcasts the validated
    /// decision; every rank applies it here.
    pub(super) fn hook(
        &mut self,
        hook: Hook,
        controller: &mut dyn Controller,
    ) -> Result<(), TrainError> {
        let decided = if self.is_root() {
            self.decide(hook, controller)?
        } else {
            None
        };
        match self.share(decided)? {
            Some(d) => self.apply(hook.function(), d),
            None => Ok(()),
        }
    }

    /// Calls `hook` and validates what it returns (`None` when no policy defines it).
    fn decide(
        &mut self,
        hook: Hook,
        controller: &mut dyn Controller,
    ) -> Result<Option<Decision>, TrainError> {
        if !controller.defines(hook) {
            return Ok(None);
        }
        let ctx = self.state.ctx();
        let Reply {
            decision, events, ..
        } = controller.call(hook, &ctx);
        // The controller validates; checking again keeps a faulty one from
        // reaching the model.
        let checked = decision
            .validate(&ctx)
            .and_then(|()| self.can_roll_back(&decision))
            .map(|()| decision);
        let decision = match checked {
            Ok(d) => d,
            Err(e) => {
                let mut f = Map::new();
                f.insert("hook".into(), json!(hook));
                f.insert("key".into(), json!(e.key));
                f.insert("message".into(), json!(e.to_string()));
                self.sinks.event(
                    self.state.epoch,
                    self.state.step,
                    EventKind::InvalidDecision,
                    f,
                )?;
                Decision::default()
            }
        };
        self.record(events)?;
        Ok(Some(decision))
    }

    /// Records the policies' events.
    fn record(&mut self, events: Vec<PolicyEvent>) -> Result<(), TrainError> {
        for e in events {
            let fields = match serde_json::to_value(&e) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            self.sinks
                .event(self.state.epoch, self.state.step, e.kind, fields)?;
        }
        Ok(())
    }

    /// Applies a validated decision between steps; `hook` (the hook's function, or
    /// `control`) is what its events name.
    pub(super) fn apply(&mut self, hook: &'static str, d: Decision) -> Result<(), TrainError> {
        if d.is_empty() {
            return Ok(());
        }
        // A rollback first: the decision's other values apply to the restored state.
        if let Some(target) = &d.rollback {
            self.rollback(hook, target)?;
        }
        if d.save.is_some() {
            self.ckpt.pending = d.save.clone();
        }
        let before = self.state.settings;
        self.state.apply(&d, self.cfg.lr_scaling);
        let s = self.state.settings;
        if (s.lr, s.momentum, s.weight_decay) != (before.lr, before.momentum, before.weight_decay) {
            self.sync_hyper();
        }
        if let Some(msg) = &d.log {
            self.sinks.progress.note(msg);
            let mut f = Map::new();
            f.insert("hook".into(), json!(hook));
            f.insert("message".into(), json!(msg));
            self.sinks
                .event(self.state.epoch, self.state.step, EventKind::Log, f)?;
        }
        self.policy_metrics
            .extend(d.metrics.iter().map(|(k, v)| (k.clone(), *v)));
        if d.stop && self.stop.is_none() {
            let reason = d
                .reason
                .clone()
                .unwrap_or_else(|| "a policy stopped the run".into());
            self.sinks.progress.note(&format!("stopping: {reason}"));
            let mut f = Map::new();
            f.insert("hook".into(), json!(hook));
            f.insert("reason".into(), json!(reason));
            self.sinks
                .event(self.state.epoch, self.state.step, EventKind::Stop, f)?;
            self.stop = Some(reason);
        }
        Ok(())
    }
}
