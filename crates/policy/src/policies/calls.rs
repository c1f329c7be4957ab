//! A hook's call through the policies in order: each one's reply converted and
//! checked, the replies merged, failures reported once and turned into events.

use rhai::Dynamic;
use serde_json::Value;

use crate::script::convert;
use crate::script::error::ScriptError;
use crate::script::policy::Policy;
use crate::{
    Ctx, Decision, EventKind, Hook, HookError, HookErrorKind, Location, PolicyEvent, Reply, Rescale,
};

use super::Policies;

impl Policies {
    /// `hook` for the policies `which` selects, in order, composed as a hook call is.
    pub(super) fn call_only(
        &mut self,
        hook: Hook,
        ctx: &Ctx,
        which: impl Fn(usize) -> bool,
    ) -> Reply {
        let history = self.history_if_used(ctx.history);
        let mut reply = Reply::default();
        let mut view = ctx.clone();
        for i in 0..self.policies.len() {
            if !which(i) || !self.policies[i].defines(hook) {
                continue;
            }
            let h = if self.policies[i].uses_history {
                history.clone()
            } else {
                Dynamic::UNIT
            };
            let ctx_value = self.policies[i].ctx_value(&view, &h);
            match self.policies[i].call(hook, ctx_value) {
                Ok(raw) => {
                    if let Some(d) = self.take(i, hook, &view, &raw, &mut reply) {
                        view.settings = d.apply(view.settings, self.rule);
                        reply.decision = std::mem::take(&mut reply.decision).then(d);
                    }
                }
                Err(e) => {
                    let p = &self.policies[i];
                    let mut ev = event(EventKind::PolicyError, p, hook);
                    ev.message = Some(e.message.clone());
                    ev.at = Some(location(&e));
                    reply.events.push(ev);
                    reply.errors.push(HookError {
                        kind: HookErrorKind::Script,
                        policy: p.name.clone(),
                        hook,
                        file: e.file.clone(),
                        line: e.line,
                        column: e.column,
                        message: e.message.clone(),
                        key: None,
                    });
                    self.report(i, &e);
                }
            }
        }
        // The trainer applies the merged decision in one go; make its settings those of
        // the sequence (a later batch-size change rescales an earlier policy's LR).
        let s = view.settings;
        if s.batch_size != ctx.settings.batch_size {
            reply.decision.batch_size = Some(s.batch_size);
            reply.decision.rescale = Some(Rescale::None);
            reply.decision.lr = Some(s.lr);
        } else if s.lr != ctx.settings.lr {
            reply.decision.lr = Some(s.lr);
        }
        reply
    }

    /// Policy `i`'s returned value as a checked decision, its event in `reply`; `None`
    /// (and an `invalid_decision`) when it is rejected.
    pub(super) fn take(
        &mut self,
        i: usize,
        hook: Hook,
        view: &Ctx,
        raw: &Dynamic,
        reply: &mut Reply,
    ) -> Option<Decision> {
        let p = &self.policies[i];
        match convert::decision(raw).and_then(|d| d.validate(view).map(|_| d)) {
            Err(invalid) => {
                let key = crate::text::clip(&invalid.key);
                let msg = crate::text::clip(&format!("{}: {}", invalid.key, invalid.message));
                let line = format!(
                    "policy {}: invalid decision in {} ({msg}); dropped",
                    p.name,
                    hook.function()
                );
                let mut ev = event(EventKind::InvalidDecision, p, hook);
                ev.message = Some(msg.clone());
                ev.key = Some(key.clone());
                ev.decision = Some(convert::to_json_bounded(raw));
                reply.events.push(ev);
                reply.errors.push(HookError {
                    kind: HookErrorKind::InvalidDecision,
                    policy: p.name.clone(),
                    hook,
                    file: p.file.clone(),
                    line: 0,
                    column: 0,
                    message: msg,
                    key: Some(key),
                });
                if self.messages.on() && self.printed_invalid.insert(line.clone()) {
                    if self.printed_invalid.len() > 256 {
                        self.printed_invalid.clear();
                    }
                    self.messages.say(&crate::text::one_line(&line));
                }
                None
            }
            Ok(d) if d.is_empty() => None,
            Ok(d) => {
                // A schedule's per-step LR and momentum are in steps.jsonl; an
                // event per step would bury the decisions worth reading.
                if !(hook == Hook::Step && d.is_schedule()) {
                    let mut ev = event(EventKind::Decision, p, hook);
                    ev.decision = Some(serde_json::to_value(&d).unwrap_or(Value::Null));
                    reply.events.push(ev);
                }
                Some(d)
            }
        }
    }

    /// Prints a script error once (with its line as compiled). The memory of what
    /// was printed is bounded: a policy failing differently at every step would
    /// otherwise grow it without end.
    pub(super) fn report(&mut self, i: usize, e: &ScriptError) {
        if !self.messages.on() || self.printed.contains(e) {
            return;
        }
        if self.printed.len() >= 256 {
            self.printed.clear();
        }
        self.printed.insert(e.clone());
        let source = self.policies[i].source_of(&e.file);
        self.messages.say(&e.render(source.as_deref()));
    }

    /// The history array, for the policies that mention it; `()` (no copy) when none
    /// does.
    pub(super) fn history_if_used(&mut self, h: &[Value]) -> Dynamic {
        if self.policies.iter().any(|p| p.uses_history) {
            if self.history.0 != h.len() {
                let arr: rhai::Array = h.iter().map(convert::from_json).collect();
                self.history = (h.len(), Dynamic::from_array(arr).into_read_only());
            }
            self.history.1.clone()
        } else {
            Dynamic::UNIT
        }
    }
}

pub(super) fn location(e: &ScriptError) -> Location {
    Location {
        file: e.file.display().to_string(),
        line: e.line,
        column: e.column,
    }
}

pub(super) fn event(kind: EventKind, policy: &Policy, hook: Hook) -> PolicyEvent {
    PolicyEvent::new(kind, &policy.name, hook, &policy.version)
}
