//! A set of policies run in order at each hook: the public face of the runtime, used by
//! `rudder train`, `rudder policy ...` and any other training loop.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use rhai::Dynamic;
use serde_json::Value;

use crate::errors::LoadError;
use crate::params::{Param, apply_params, names_match};
use crate::script::convert;
use crate::script::error::ScriptError;
use crate::script::find::{self, SearchPath};
use crate::script::policy::{Policy, content_hash};
use crate::script::state;
use crate::watch::{WatchMode, Watcher};
use crate::{
    Controller, Ctx, Decision, EventKind, Hook, HookError, HookErrorKind, Location, PolicyEvent,
    PolicyState, Reply, Rescale,
};

/// Where the policies' messages go: a script error with its source line and a caret,
/// a reload, a rejected decision, each printed once. Standard error by default.
#[derive(Clone)]
pub struct Messages(Option<Say>);

/// A function that takes one message.
type Say = Arc<dyn Fn(&str) + Send + Sync>;

impl Messages {
    /// Each message as a line on stderr (a closed stderr is no error).
    pub fn stderr() -> Messages {
        Messages::to(|m| {
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "{m}");
        })
    }

    /// Nowhere: the events still say everything.
    pub fn none() -> Messages {
        Messages(None)
    }

    /// To `f`, one message per call (a message may span lines: an error's source line
    /// and caret).
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Messages {
        Messages(Some(Arc::new(f)))
    }

    fn say(&self, m: &str) {
        if let Some(f) = &self.0 {
            f(m);
        }
    }

    fn on(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.on() {
            "Messages(..)"
        } else {
            "Messages::none"
        })
    }
}

/// Builds a [`Policies`]: which policies, their parameters, where names are looked
/// up, whether edits reload, where messages go.
///
/// ```
/// use rudder_policy::{Param, Policies, WatchMode};
/// let policies = Policies::builder()
///     .policy("lr/cosine")
///     .policy("stop/early_stop")
///     .param(Param::new("patience", 3))
///     .watch(WatchMode::Off)
///     .build()?;
/// assert_eq!(policies.describe()[1].name, "stop/early_stop");
/// # Ok::<(), rudder_policy::LoadError>(())
/// ```
#[derive(Debug)]
pub struct Builder {
    specs: Vec<String>,
    params: Vec<Param>,
    search: Option<SearchPath>,
    watch: WatchMode,
    messages: Messages,
    rule: Rescale,
}

impl Builder {
    /// A policy by name (`lr/cosine`, `PLUGIN/POLICY`) or path (`./mine.rhai`); they
    /// run in the order added.
    pub fn policy(mut self, spec: impl Into<String>) -> Builder {
        self.specs.push(spec.into());
        self
    }

    pub fn policies<S: Into<String>>(mut self, specs: impl IntoIterator<Item = S>) -> Builder {
        self.specs.extend(specs.into_iter().map(Into::into));
        self
    }

    /// A parameter over a policy's `fn params()` default, typed against it.
    pub fn param(mut self, p: Param) -> Builder {
        self.params.push(p);
        self
    }

    pub fn params(mut self, ps: impl IntoIterator<Item = Param>) -> Builder {
        self.params.extend(ps);
        self
    }

    /// Where names are looked up; [`SearchPath::from_env`] by default (`./plugins`,
    /// `./scripts`, `$RUDDER_PATH`, then the embedded standard library).
    pub fn search_path(mut self, search: SearchPath) -> Builder {
        self.search = Some(search);
        self
    }

    /// Watch the policies' files, so that a saved edit is picked up at the next hook
    /// call; off by default.
    pub fn watch(mut self, mode: WatchMode) -> Builder {
        self.watch = mode;
        self
    }

    /// Where messages go; stderr by default.
    pub fn messages(mut self, messages: Messages) -> Builder {
        self.messages = messages;
        self
    }

    /// How a `batch_size` decision rescales the LR unless it says (`rescale`) or sets
    /// `lr`; linear by default (`Rescale::Sqrt` for Adam-type optimizers).
    pub fn rescale(mut self, rule: Rescale) -> Builder {
        self.rule = rule;
        self
    }

    /// Finds, compiles and parameterises the policies in order, and starts the
    /// watcher.
    pub fn build(self) -> Result<Policies, LoadError> {
        let search = self.search.unwrap_or_else(SearchPath::from_env);
        let mut policies = Vec::new();
        for spec in &self.specs {
            let src = find::locate(spec, &search).map_err(|message| {
                let clipped = crate::text::clip(spec);
                let message = crate::library::hint(spec, &message, &search);
                LoadError::not_found(&clipped, message.replace(spec.as_str(), &clipped))
            })?;
            policies.push(Policy::compile(src, &search)?);
        }
        apply_params(&mut policies, &self.params)?;
        let n = policies.len();
        let mut set = Policies {
            policies,
            rule: self.rule,
            printed: HashSet::new(),
            printed_invalid: HashSet::new(),
            history: (usize::MAX, Dynamic::UNIT),
            messages: self.messages,
            generation: vec![1; n],
            failed: vec![None; n],
            specs: self.specs,
            params: self.params,
            search,
            watcher: None,
        };
        let files = set.watched_files();
        let messages = set.messages.clone();
        set.watcher = Watcher::start(&files, self.watch, &move |m| messages.say(m))
            .map_err(LoadError::watch)?;
        Ok(set)
    }
}

/// One loaded policy, as `policy check` shows it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PolicyInfo {
    /// Its name (`lr/cosine`), or its path's stem for a file given by path.
    pub name: String,
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
}

impl Policies {
    pub fn builder() -> Builder {
        Builder {
            specs: Vec::new(),
            params: Vec::new(),
            search: None,
            watch: WatchMode::Off,
            messages: Messages::stderr(),
            rule: Rescale::Linear,
        }
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
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
            })
            .collect()
    }

    /// The files whose edits reload the set (none for the embedded library's).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.policies
            .iter()
            .filter(|p| !p.file.starts_with("<embedded>"))
            .flat_map(|p| p.files.iter().cloned())
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

    pub fn on_train_start(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::TrainStart, ctx)
    }

    pub fn on_epoch_start(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::EpochStart, ctx)
    }

    pub fn on_step(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::Step, ctx)
    }

    pub fn on_epoch_end(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::EpochEnd, ctx)
    }

    pub fn on_train_end(&mut self, ctx: &Ctx) -> Reply {
        self.call(Hook::TrainEnd, ctx)
    }

    /// The history array, for the policies that mention it; `()` (no copy) when none
    /// does.
    fn history_if_used(&mut self, h: &[Value]) -> Dynamic {
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

    /// Prints a script error once (with its line as compiled). The memory of what
    /// was printed is bounded: a policy failing differently at every step would
    /// otherwise grow it without end.
    fn report(&mut self, i: usize, e: &ScriptError) {
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

    /// The content hash of policy `i`'s files now; `None` while one is missing or
    /// empty (a delete-then-create save, or a write in progress, keeps the old version
    /// until the file is back). A file that cannot be read for another reason (its
    /// permissions), or is too large, is a version of its own, which then fails to
    /// load with the reason.
    fn current_version(&self, i: usize) -> Option<String> {
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

    /// Compiles policy `i` anew (a fresh engine and resolver), re-merges its params and
    /// dry-runs its hooks on a copy of `this`.
    fn recompile(&self, i: usize, ctx: &Ctx, history: &Dynamic) -> Result<Policy, ScriptError> {
        let file = &self.policies[i].file;
        let at_file = |message: String| ScriptError {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
        };
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
        apply_params(std::slice::from_mut(&mut fresh), &mine)
            .map_err(|e| at_file(e.to_string()))?;
        // Dry run on a copy of `this`; the caller moves the real one in.
        fresh.this = self.policies[i].this.clone();
        for hook in [Hook::EpochStart, Hook::Step, Hook::EpochEnd] {
            if fresh.defines(hook) {
                let h = if fresh.uses_history {
                    history.clone()
                } else {
                    Dynamic::UNIT
                };
                let _dry_run = fresh.call(hook, convert::ctx_map(ctx, fresh.params_value(), &h))?;
            }
        }
        Ok(fresh)
    }

    /// Reloads policy `i` if its files changed: the event, and whether it was swapped.
    fn reload_one(
        &mut self,
        i: usize,
        ctx: &Ctx,
        history: &Dynamic,
    ) -> Option<(PolicyEvent, bool)> {
        let now = self.current_version(i)?;
        if now == self.policies[i].version || self.failed[i].as_deref() == Some(now.as_str()) {
            return None;
        }
        let name = self.policies[i].name.clone();
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

    /// `hook` for the policies `which` selects, in order, composed as a hook call is.
    fn call_only(&mut self, hook: Hook, ctx: &Ctx, which: impl Fn(usize) -> bool) -> Reply {
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
            let ctx_value = convert::ctx_map(&view, self.policies[i].params_value(), &h);
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
    fn take(
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
                // A schedule's per-step LR is in steps.jsonl and metrics.jsonl; an
                // event per step would bury the decisions worth reading.
                if !(hook == Hook::Step && d.is_lr_only()) {
                    let mut ev = event(EventKind::Decision, p, hook);
                    ev.decision = Some(serde_json::to_value(&d).unwrap_or(Value::Null));
                    reply.events.push(ev);
                }
                Some(d)
            }
        }
    }
}

/// A file's bytes for its version: only a regular file is read, and no further than
/// a policy may be (a FIFO would block, /dev/zero never end); anything else is a
/// version of its own, which then fails to load, saying why. `None` while it is
/// missing.
fn read_version(f: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let max = crate::limits::MAX_SOURCE;
    Some(match std::fs::metadata(f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => format!("unreadable:{e}").into_bytes(),
        Ok(m) if !m.is_file() => b"not a regular file".to_vec(),
        Ok(m) if m.len() > max => format!("large:{}", m.len()).into_bytes(),
        Ok(_) => {
            let mut b = Vec::new();
            let read =
                std::fs::File::open(f).and_then(|file| file.take(max + 1).read_to_end(&mut b));
            match read {
                Ok(_) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => format!("unreadable:{e}").into_bytes(),
            }
        }
    })
}

fn location(e: &ScriptError) -> Location {
    Location {
        file: e.file.display().to_string(),
        line: e.line,
        column: e.column,
    }
}

fn event(kind: EventKind, policy: &Policy, hook: Hook) -> PolicyEvent {
    PolicyEvent::new(kind, &policy.name, hook, &policy.version)
}

impl Controller for Policies {
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
