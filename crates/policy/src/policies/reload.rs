//! A reload: which policies changed on disk (content hashes), each recompiled in a
//! fresh engine and dry-run on a copy of its `this` before it is swapped in.

use rhai::Dynamic;

use crate::params::{Param, apply_params, names_match};
use crate::script::convert;
use crate::script::error::ScriptError;
use crate::script::find::{self};
use crate::script::policy::{Policy, content_hash};
use crate::{Ctx, EventKind, Hook, PolicyEvent};

use super::Policies;
use super::calls::{event, location};

impl Policies {
    /// The content hash of policy `i`'s files now; `None` while one is missing or
    /// empty (a delete-then-create save, or a write in progress, keeps the old version
    /// until the file is back). A file that cannot be read for another reason (its
    /// permissions), or is too large, is a version of its own, which then fails to
    /// load with the reason.
    pub(super) fn current_version(&self, i: usize) -> Option<String> {
        let p = &self.policies[i];
        let mut parts = Vec::with_capacity(p.files.len());
        for f in &p.files {
            let bytes = read_version(f)?;
            // An empty file is a save in progress (truncated, not yet written): wait.
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            parts.push(bytes);
        }
        Some(content_hash(
            &parts.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        ))
    }

    /// Every locked git plugin's files against the checksum they were loaded with.
    fn check_locked(&self) -> Result<(), String> {
        for p in self.search.plugins() {
            if p.origin.commit.is_none() {
                continue;
            }
            let now = crate::checksum::listing(&p.home)
                .map(|e| crate::checksum::checksum(&e))
                .map_err(|e| format!("plugin {}: {e}", p.name))?;
            if now != p.origin.checksum {
                return Err(format!(
                    "plugin {}: installed files differ from rudder.lock (checksum {now}, locked {}); run rudder plugin install to repair",
                    p.name, p.origin.checksum
                ));
            }
        }
        Ok(())
    }

    /// Compiles policy `i` anew (a fresh engine and resolver), re-merges its params and
    /// dry-runs its hooks on a copy of `this`.
    pub(super) fn recompile(
        &self,
        i: usize,
        ctx: &Ctx,
        history: &Dynamic,
    ) -> Result<Policy, ScriptError> {
        let file = &self.policies[i].file;
        let at_file = |message: String| ScriptError {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
        };
        // A locked git plugin is what the lock says, at a reload as at the start.
        self.check_locked().map_err(at_file)?;
        let src = find::locate(&self.specs[i], &self.search).map_err(at_file)?;
        let mut fresh = Policy::compile(src, &self.search)?;
        // The parameters this policy took at load (a new version may drop a key).
        let mine: Vec<Param> = self
            .params
            .iter()
            .filter(|p| {
                p.policy.as_deref().is_none_or(|n| names_match(n, &fresh))
                    && fresh.params.contains_key(p.key.as_str())
            })
            .cloned()
            .collect();
        let _one_policy_no_warnings = apply_params(std::slice::from_mut(&mut fresh), &mine)
            .map_err(|e| at_file(e.to_string()))?;
        // Dry run on a copy of `this`; the caller moves the real one in.
        fresh.this = self.policies[i].this.clone();
        dry_run_one(&mut fresh, ctx, history)?;
        Ok(fresh)
    }

    /// Calls every policy's `on_epoch_start`, `on_step` and `on_epoch_end` once with
    /// `ctx`, on a copy of its `this`, as a reload does with a new version before it
    /// swaps it in: the first error, at its place. Nothing changes: each `this` is
    /// put back, no decision is kept. What `rudder serve`'s policy editor checks an
    /// edit with.
    pub fn dry_run(&mut self, ctx: &Ctx) -> Result<(), crate::LoadError> {
        let history = self.history_if_used(ctx.history);
        for p in &mut self.policies {
            let kept = p.this.clone();
            let result = dry_run_one(p, ctx, &history);
            p.this = kept;
            result.map_err(crate::LoadError::from)?;
        }
        Ok(())
    }

    /// Reloads policy `i` if its files changed: the event, and whether it was swapped.
    pub(super) fn reload_one(
        &mut self,
        i: usize,
        ctx: &Ctx,
        history: &Dynamic,
    ) -> Option<(PolicyEvent, bool)> {
        let now = self.current_version(i)?;
        let name = self.policies[i].name.clone();
        if now == self.policies[i].version {
            // Restored to the running text after a failed reload: nothing to swap,
            // but the error is gone, and the person who fixed it should see that.
            self.failed[i].take()?;
            let v = format!("v{} (error cleared)", self.generation[i]);
            self.messages.say(&crate::text::one_line(&format!(
                "policy {name} back to {v}"
            )));
            let mut ev = event(EventKind::Reload, &self.policies[i], Hook::Reload);
            ev.message = Some(v);
            return Some((ev, false));
        }
        if self.failed[i].as_deref() == Some(now.as_str()) {
            return None;
        }
        match self.recompile(i, ctx, history) {
            Ok(mut fresh) => {
                fresh.this = std::mem::replace(&mut self.policies[i].this, Dynamic::UNIT);
                self.policies[i] = fresh;
                self.generation[i] += 1;
                self.failed[i] = None;
                let v = format!("v{}", self.generation[i]);
                self.messages.say(&crate::text::one_line(&format!(
                    "policy {name} reloaded ({v}, {})",
                    &now[..6]
                )));
                let mut ev = event(EventKind::Reload, &self.policies[i], Hook::Reload);
                ev.message = Some(v);
                ev.files = Some(self.policies[i].provenance.files.clone());
                Some((ev, true))
            }
            Err(e) => {
                self.messages.say(&crate::text::one_line(&format!(
                    "policy {name}: reload failed at {e} (still running v{})",
                    self.generation[i]
                )));
                let mut ev = event(EventKind::ReloadFailed, &self.policies[i], Hook::Reload);
                ev.message = Some(e.message.clone());
                ev.at = Some(location(&e));
                ev.version = now.clone();
                self.failed[i] = Some(now);
                Some((ev, false))
            }
        }
    }
}

/// `p`'s epoch-start, step and epoch-end hooks called once each with `ctx`.
fn dry_run_one(p: &mut Policy, ctx: &Ctx, history: &Dynamic) -> Result<(), ScriptError> {
    for hook in [Hook::EpochStart, Hook::Step, Hook::EpochEnd] {
        if p.defines(hook) {
            let h = if p.uses_history {
                history.clone()
            } else {
                Dynamic::UNIT
            };
            let _dry_run = p.call(hook, convert::ctx_map(ctx, p.params_value(), &h))?;
        }
    }
    Ok(())
}

/// A file's bytes for its version: only a regular file is read, and no further than
/// a policy may be (a FIFO would block, /dev/zero never end); anything else is a
/// version of its own, which then fails to load, saying why. `None` while it is
/// missing.
fn read_version(f: &std::path::Path) -> Option<Vec<u8>> {
    use rudder_core::input::ReadError;
    Some(
        match rudder_core::input::read(f, crate::limits::MAX_SOURCE) {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(ReadError::Io(e)) => format!("unreadable:{e}").into_bytes(),
            Err(ReadError::TooLarge(n)) => format!("large:{n}").into_bytes(),
        },
    )
}
