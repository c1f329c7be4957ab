//! A trial's side of the population: its controller wraps its own policies, reports
//! each epoch's metrics to the coordinator (where the scheduler decides), and turns
//! what it is told into decisions at its next hook: a stop or a pause (reason
//! `scheduler`), an exploit's rollback to the copied checkpoint with the new
//! settings.

use serde_json::{Value, json};

use rudder_core::EventKind;
use rudder_policy::sweep::Status;
use rudder_policy::{Controller, Ctx, Decision, Hook, Policies, PolicyEvent, Reply};

use super::coord::{Coordinator, Instruction};

/// The `Controller` methods a trial's wrapping controller hands to the trial's own
/// policies (`self.inner`) unchanged: reloads, provenance, sources, state.
macro_rules! forward_to_inner {
    () => {
        fn reload_due(&mut self) -> bool {
            self.inner.reload_due()
        }

        fn reload(&mut self, ctx: &rudder_policy::Ctx) -> rudder_policy::Reply {
            self.inner.reload(ctx)
        }

        fn provenance(&self) -> Vec<rudder_policy::project::Provenance> {
            rudder_policy::Controller::provenance(&self.inner)
        }

        fn sources(&self) -> Vec<(String, String)> {
            rudder_policy::Controller::sources(&self.inner)
        }

        fn snapshot(&self) -> Vec<rudder_policy::PolicyState> {
            rudder_policy::Controller::snapshot(&self.inner)
        }

        fn restore(&mut self, saved: &[rudder_policy::PolicyState]) -> Vec<String> {
            rudder_policy::Controller::restore(&mut self.inner, saved)
        }
    };
}
pub(super) use forward_to_inner;

/// The controller a sweep trial trains under.
pub(crate) struct Reporter<'a> {
    pub(crate) inner: Policies,
    pub(crate) coord: &'a Coordinator,
    pub(crate) index: usize,
}

/// The epoch's metrics line as the scheduler sees it in `history`.
pub(super) fn line_of(ctx: &Ctx) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("epoch".into(), json!(ctx.epoch));
    for name in rudder_policy::METRIC_NAMES {
        if let Some(v) = ctx.metrics.get(name) {
            m.insert(name.into(), json!(v));
        }
    }
    m.insert("lr".into(), json!(ctx.settings.lr));
    m.insert("batch_size".into(), json!(ctx.settings.batch_size));
    Value::Object(m)
}

/// What an instruction is as a decision of the `sweep` policy.
fn decision_of(ins: &Instruction, ctx: &Ctx) -> (Decision, Option<String>) {
    match ins {
        Instruction::End(Status::Paused) => (
            Decision::from_json(&json!({"stop": true, "reason": "paused by the scheduler"}))
                .unwrap_or_default(),
            None,
        ),
        Instruction::End(_) => (
            Decision::from_json(&json!({"stop": true, "reason": "scheduler"})).unwrap_or_default(),
            None,
        ),
        Instruction::Exploit { tag, decision } => {
            let mut full = decision.clone();
            full["rollback"] = json!(tag);
            match Decision::from_json(&full).and_then(|d| d.validate(ctx).map(|()| d)) {
                Ok(d) => (d, None),
                // Settings that cannot apply: the weights are still copied.
                Err(e) => (
                    Decision::from_json(&json!({"rollback": tag})).unwrap_or_default(),
                    Some(format!("the exploit's settings were refused: {e}")),
                ),
            }
        }
    }
}

impl Controller for Reporter<'_> {
    fn defines(&self, hook: Hook) -> bool {
        self.inner.defines(hook) || matches!(hook, Hook::EpochStart | Hook::EpochEnd)
    }

    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        let mut reply = if self.inner.defines(hook) {
            self.inner.call(hook, ctx)
        } else {
            Reply::default()
        };
        if hook == Hook::EpochEnd {
            self.coord.report(self.index, line_of(ctx));
        }
        for ins in self.coord.take(self.index) {
            let (d, refused) = decision_of(&ins, ctx);
            let mut event = PolicyEvent::new(EventKind::Decision, "sweep", hook, "");
            event.decision = serde_json::to_value(&d).ok();
            let mut events = vec![event];
            if let Some(why) = refused {
                let mut e = PolicyEvent::new(EventKind::InvalidDecision, "sweep", hook, "");
                e.message = Some(why);
                events.push(e);
            }
            let mut r = Reply::new(d);
            r.events = events;
            reply = reply.then(r);
        }
        reply
    }

    forward_to_inner!();
}
