//! A set of policies run in order at each hook: the public face of the runtime, used by
//! `rudder train`, `rudder policy ...` and any other training loop.

mod builder;
mod calls;
mod reload;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rhai::Dynamic;
use serde_json::Value;

use crate::params::Param;
use crate::script::convert;
use crate::script::error::ScriptError;
use crate::script::find::SearchPath;
use crate::script::policy::Policy;
use crate::script::state;
use crate::watch::Watcher;
use crate::{Controller, Ctx, Hook, PolicyState, Reply, Rescale};

pub use builder::{Builder, Messages};

/// One loaded policy, as `policy check` shows it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PolicyInfo {
    /// Its name (`lr/cosine`), or its path's stem for a file given by path.
    pub name: String,
    /// The file it was loaded from (`<embedded>/NAME.rhai` for the standard library).
    pub file: PathBuf,
    /// The hooks it defines (`on_step`, ...).
    pub hooks: Vec<&'static str>,
    /// Its parameters with their values (defaults, then the parameters given), as
    /// JSON; `null` is a default of `()` ("the run's own").
    pub params: serde_json::Map<String, Value>,
    /// The content hash of its files.
    pub version: String,
    /// Every file it was built from, its script first.
    pub files: Vec<PathBuf>,
    /// Those files with their SHA-256, and the locked plugin it came from.
    pub provenance: crate::project::Provenance,
}

/// Policies in the order given, with what they share: run them at each hook with
/// [`Policies::call`] (or `on_step` and the other hooks), keep their state in a
/// checkpoint with [`Policies::state`].
///
/// ```
/// use rudder_policy::{Ctx, Policies, Settings};
/// let mut policies = Policies::builder().policy("lr/cosine").build()?;
/// let mut settings = Settings::new(0.1, 64);
/// settings.epochs = 10;
/// let mut ctx = Ctx::new(settings, 60_000);
/// ctx.epoch = 5;
/// let reply = policies.on_epoch_start(&ctx);
/// // torch's CosineAnnealingLR(T_max=10) at epoch 5: half way down.
/// assert!((reply.decision.lr.unwrap() - 0.05).abs() < 1e-12);
/// assert!(reply.errors.is_empty());
/// # Ok::<(), rudder_policy::LoadError>(())
/// ```
pub struct Policies {
    policies: Vec<Policy>,
    rule: Rescale,
    /// Errors and invalid decisions already printed (each once).
    printed: HashSet<ScriptError>,
    printed_invalid: HashSet<String>,
    /// The run's history as a read-only script array, rebuilt when it grows; each
    /// policy that mentions `history` gets a copy in its `ctx` (a value nested in
    /// `ctx` may not be shared: rhai's size checks assume so).
    history: (usize, Dynamic),
    messages: Messages,
    /// What the set was loaded from, for reloads.
    specs: Vec<String>,
    params: Vec<Param>,
    search: SearchPath,
    /// Per policy: versions loaded so far (1 at load), and the content hash of the
    /// last version that failed to load (not reported twice).
    generation: Vec<u32>,
    failed: Vec<Option<String>>,
    watcher: Option<Watcher>,
    /// What building it warned of (an unprefixed `--param` reaching several policies).
    warnings: Vec<String>,
}

impl Policies {
    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether the set holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// What building the set warned of: an unprefixed `--param` that reached more
    /// than one policy, naming them (also said through its [`Messages`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `policy check`'s warnings for each policy, `file:line:col: message`: a
    /// function named like a hook that is not one, a decision key that does not exist
    /// in a map a hook returns, a parameter nothing reads.
    pub fn lint(&self) -> Vec<String> {
        self.policies
            .iter()
            .flat_map(|p| p.lint())
            .map(|e| e.to_string())
            .collect()
    }

    /// Each policy's name, file, hooks, parameters and version.
    pub fn describe(&self) -> Vec<PolicyInfo> {
        self.policies
            .iter()
            .map(|p| PolicyInfo {
                name: p.name.clone(),
                file: p.file.clone(),
                hooks: p.hooks(),
                params: p
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), convert::to_json(v)))
                    .collect(),
                version: p.version.clone(),
                files: p.files.clone(),
                provenance: p.provenance.clone(),
            })
            .collect()
    }

    /// What steered the run: each policy's files with their hashes and its plugin.
    pub fn provenance(&self) -> Vec<crate::project::Provenance> {
        self.policies
            .iter()
            .map(|p| {
                let mut record = p.provenance.clone();
                for (k, v) in &p.params {
                    record
                        .params
                        .insert(k.to_string(), crate::script::convert::to_json(v));
                }
                record
            })
            .collect()
    }

    /// The files whose edits reload the set (none for the embedded library's).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        // A locked git plugin's files are fixed by the lock: not watched (a reload
        // for another file checks them against it).
        let fixed: Vec<&Path> = self
            .search
            .plugins()
            .iter()
            .filter(|p| p.origin.commit.is_some())
            .map(|p| p.home.as_path())
            .collect();
        self.policies
            .iter()
            .filter(|p| !p.file.starts_with("<embedded>"))
            .flat_map(|p| p.files.iter().cloned())
            .filter(|f| !fixed.iter().any(|h| f.starts_with(h)))
            .collect()
    }

    /// Whether the watcher has seen an edit that the next hook call will pick up.
    pub fn edit_seen(&self) -> bool {
        self.watcher.as_ref().is_some_and(Watcher::peek)
    }

    /// How the files are watched (`"native"` or `"poll"`), if they are.
    pub fn watching(&self) -> Option<&'static str> {
        self.watcher.as_ref().map(|w| w.mode)
    }

    /// Policy `i`'s `this`, as JSON (NaN and the infinities tagged `{"$float": "nan"}`).
    pub fn this(&self, i: usize) -> Value {
        state::to_json(&self.policies[i].this)
    }

    /// Replaces policy `i`'s `this` (from JSON, as [`Policies::this`] gives it).
    pub fn set_this(&mut self, i: usize, this: &Value) {
        self.policies[i].this = state::from_json(this);
    }

    /// Every policy's name, version and `this`: what a checkpoint keeps.
    pub fn state(&self) -> Vec<PolicyState> {
        (0..self.policies.len())
            .map(|i| {
                let p = &self.policies[i];
                PolicyState::new(&p.name, &p.version, self.this(i))
            })
            .collect()
    }

    /// Gives each policy its `this` from [`Policies::state`]'s output (by position,
    /// else by name); returns a note for each policy whose source changed since (its
    /// new version runs, with the saved `this`), whose saved `this` cannot be kept, or
    /// that the state does not know.
    pub fn load_state(&mut self, saved: &[PolicyState]) -> Vec<String> {
        let mut notes = Vec::new();
        for i in 0..self.policies.len() {
            let (name, version) = (
                self.policies[i].name.clone(),
                self.policies[i].version.clone(),
            );
            let found = saved
                .get(i)
                .filter(|s| s.name == name)
                .or_else(|| saved.iter().find(|s| s.name == name));
            let Some(s) = found else {
                notes.push(format!(
                    "policy {name} is not in the checkpoint; its this starts empty"
                ));
                continue;
            };
            self.set_this(i, &s.this);
            // A hand-edited or older checkpoint may hold what a call could not have
            // kept.
            if let Err(why) = state::check(&self.policies[i].this) {
                self.policies[i].this = Dynamic::from_map(rhai::Map::new());
                notes.push(format!(
                    "policy {name}: its saved this cannot be kept ({why}); it starts empty"
                ));
            } else if s.version != version {
                notes.push(format!(
                    "policy {name} changed since the checkpoint (version {} -> {version}); its new version runs, with its saved this",
                    s.version
                ));
            }
        }
        notes
    }

    /// Whether any file a policy was built from has changed since it was loaded (read
    /// now, not from the watcher).
    pub fn reload_pending(&self) -> bool {
        (0..self.policies.len()).any(|i| {
            !self.policies[i].file.starts_with("<embedded>")
                && self
                    .current_version(i)
                    .is_some_and(|v| v != self.policies[i].version)
        })
    }

    /// Calls `hook` on every policy that defines it, in order. An edit the watcher
    /// saw is picked up first: the changed policies are recompiled (`reload` or
    /// `reload_failed`), `on_reload` runs, and its decision comes before the hook's.
    pub fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        if !Controller::reload_due(self) {
            return self.call_only(hook, ctx, |_| true);
        }
        let first = Controller::reload(self, ctx);
        let mut after = ctx.clone();
        after.settings = first.decision.apply(ctx.settings, self.rule);
        let then = self.call_only(hook, &after, |_| true);
        first.then(then)
    }

    /// [`Policies::call`] at `on_train_start`.
    pub fn on_train_start(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::TrainStart, ctx)
    }

    /// [`Policies::call`] at `on_epoch_start`.
    pub fn on_epoch_start(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::EpochStart, ctx)
    }

    /// [`Policies::call`] at `on_step`.
    pub fn on_step(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::Step, ctx)
    }

    /// [`Policies::call`] at `on_epoch_end`.
    pub fn on_epoch_end(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::EpochEnd, ctx)
    }

    /// [`Policies::call`] at `on_train_end`.
    pub fn on_train_end(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::TrainEnd, ctx)
    }
}

impl Controller for Policies {
    fn provenance(&self) -> Vec<crate::project::Provenance> {
        Policies::provenance(self)
    }

    fn sources(&self) -> Vec<(String, String)> {
        self.policies
            .iter()
            .map(|p| (p.name.clone(), p.source().to_string()))
            .collect()
    }

    fn defines(&self, hook: Hook) -> bool {
        self.policies.iter().any(|p| p.defines(hook))
    }

    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        self.call_only(hook, ctx, |_| true)
    }

    fn reload_due(&mut self) -> bool {
        self.watcher.as_ref().is_some_and(Watcher::take)
    }

    fn snapshot(&self) -> Vec<PolicyState> {
        self.state()
    }

    fn restore(&mut self, saved: &[PolicyState]) -> Vec<String> {
        self.load_state(saved)
    }

    fn reload(&mut self, ctx: &Ctx) -> Reply {
        let history = self.history_if_used(ctx.history);
        let mut reply = Reply::default();
        let mut swapped = Vec::new();
        for i in 0..self.policies.len() {
            if let Some((ev, ok)) = self.reload_one(i, ctx, &history) {
                reply.events.push(ev);
                if ok {
                    swapped.push(i);
                }
            }
        }
        if swapped
            .iter()
            .any(|&i| self.policies[i].defines(Hook::Reload))
        {
            // Only the reloaded policies hear on_reload.
            let heard = self.call_only(Hook::Reload, ctx, |i| swapped.contains(&i));
            reply = reply.then(heard);
        }
        reply
    }
}
