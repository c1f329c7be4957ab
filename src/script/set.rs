//! A set of policies run in order at each hook: the public face of the runtime, used by
//! `rudder train`, `rudder policy ...` and any other training loop.

use std::collections::HashSet;

use rhai::Dynamic;
use serde_json::{Map as JsonMap, Value, json};

use super::convert;
use super::error::ScriptError;
use super::find::{self, SearchPath};
use super::policy::{Policy, content_hash};
use super::state;
use crate::policy::{Controller, Ctx, Decision, Hook, PolicyEvent, PolicyState, Reply, Rescale};

/// A fault found while loading: a script that does not compile, a policy that cannot
/// be found, a `--param` nobody declares. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Script(ScriptError),
    #[error("--policy {spec}: {message}")]
    NotFound { spec: String, message: String },
    #[error("--param {0}")]
    Param(String),
}

/// One `--param [POLICY.]KEY=VALUE`, VALUE as JSON. A VALUE that is not JSON is kept
/// as a string with `bare` set: it is taken only where the declared default is a
/// string (`--param mode=max`).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub policy: Option<String>,
    pub key: String,
    pub value: Value,
    pub bare: bool,
}

impl std::str::FromStr for Param {
    type Err = String;

    fn from_str(s: &str) -> Result<Param, String> {
        let (lhs, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected [POLICY.]KEY=VALUE"))?;
        let (value, bare) = match serde_json::from_str(value) {
            Ok(v) => (v, false),
            Err(_) => (Value::String(value.to_string()), true),
        };
        let (policy, key) = match lhs.rsplit_once('.') {
            Some((p, k)) => (Some(p.to_string()), k.to_string()),
            None => (None, lhs.to_string()),
        };
        if key.is_empty() {
            return Err(format!("{s:?}: empty key"));
        }
        Ok(Param {
            policy,
            key,
            value,
            bare,
        })
    }
}

/// Policies in the order given, with what they share.
pub struct PolicySet {
    policies: Vec<Policy>,
    rule: Rescale,
    /// Errors and invalid decisions already printed on stderr (each once).
    printed: HashSet<ScriptError>,
    printed_invalid: HashSet<String>,
    /// The run's history as a read-only script array, rebuilt when it grows; each
    /// policy that mentions `history` gets a copy in its `ctx` (a value nested in
    /// `ctx` may not be shared: rhai's size checks assume so).
    history: (usize, Dynamic),
    /// Print script errors on stderr.
    pub echo_errors: bool,
    /// What the set was loaded from, for reloads.
    specs: Vec<String>,
    params: Vec<Param>,
    search: SearchPath,
    /// Per policy: versions loaded so far (1 at load), and the content hash of the
    /// last version that failed to load (not reported twice).
    generation: Vec<u32>,
    failed: Vec<Option<String>>,
}

impl PolicySet {
    /// Finds, compiles and parameterises `specs` (names or paths) in order.
    pub fn load(
        specs: &[String],
        params: &[Param],
        search: &SearchPath,
        rule: Rescale,
    ) -> Result<PolicySet, LoadError> {
        let mut policies = Vec::new();
        for spec in specs {
            let src = find::locate(spec, search).map_err(|message| LoadError::NotFound {
                spec: crate::runlog::clip(spec),
                message: message.replace(spec.as_str(), &crate::runlog::clip(spec)),
            })?;
            policies.push(Policy::compile(src, search).map_err(LoadError::Script)?);
        }
        apply_params(&mut policies, params)?;
        Ok(PolicySet {
            policies,
            rule,
            printed: HashSet::new(),
            printed_invalid: HashSet::new(),
            history: (usize::MAX, Dynamic::UNIT),
            echo_errors: true,
            generation: vec![1; specs.len()],
            failed: vec![None; specs.len()],
            specs: specs.to_vec(),
            params: params.to_vec(),
            search: search.clone(),
        })
    }

    /// Replaces policy `i`'s `this` (from JSON), as a test or a resume does.
    pub fn set_this(&mut self, i: usize, this: &Value) {
        self.policies[i].this = state::from_json(this);
    }

    /// Policy `i`'s `this`, as JSON (NaN and the infinities tagged, see `state`).
    pub fn this_json(&self, i: usize) -> Value {
        state::to_json(&self.policies[i].this)
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Whether any file a policy was built from has changed since it was loaded.
    pub fn reload_pending(&self) -> bool {
        (0..self.policies.len()).any(|i| {
            !self.policies[i].file.starts_with("<embedded>")
                && self
                    .current_version(i)
                    .is_some_and(|v| v != self.policies[i].version)
        })
    }

    /// The history array, for the policies that mention it; `()` (no copy) when none
    /// does.
    fn history_if_used(&mut self, h: &[Value]) -> Dynamic {
        if self.policies.iter().any(|p| p.uses_history) {
            self.history(h)
        } else {
            Dynamic::UNIT
        }
    }

    fn history(&mut self, h: &[Value]) -> Dynamic {
        if self.history.0 != h.len() {
            let arr: rhai::Array = h.iter().map(convert::from_json).collect();
            self.history = (h.len(), Dynamic::from_array(arr).into_read_only());
        }
        self.history.1.clone()
    }

    /// Prints a script error once (with its line as compiled). The memory of what
    /// was printed is bounded: a policy failing differently at every step would
    /// otherwise grow it without end.
    fn report(&mut self, i: usize, e: &ScriptError) {
        if !self.echo_errors || self.printed.contains(e) {
            return;
        }
        if self.printed.len() >= 256 {
            self.printed.clear();
        }
        self.printed.insert(e.clone());
        let source = self.policies[i].source_of(&e.file);
        crate::runlog::say(&e.render(source.as_deref()));
    }
}

/// Merges `--param` values into the policies' `params()` defaults.
fn apply_params(policies: &mut [Policy], params: &[Param]) -> Result<(), LoadError> {
    for p in params {
        let key = crate::runlog::clip(&p.key);
        let targets: Vec<&mut Policy> = policies
            .iter_mut()
            .filter(|pol| match &p.policy {
                Some(name) => names_match(name, pol),
                None => pol.params.contains_key(p.key.as_str()),
            })
            .collect();
        if targets.is_empty() {
            let whose = p.policy.as_deref().map_or("no policy".to_string(), |n| {
                format!("no policy named {:?}", crate::runlog::clip(n))
            });
            return Err(LoadError::Param(format!(
                "{key}: {whose} declares {key:?} in fn params()"
            )));
        }
        for pol in targets {
            if !pol.params.contains_key(p.key.as_str()) {
                return Err(LoadError::Param(format!(
                    "{key}: policy {} declares no parameter {key:?}",
                    pol.name
                )));
            }
            let default = &pol.params[p.key.as_str()];
            let value = typed(p, default).map_err(|why| {
                LoadError::Param(format!(
                    "{key}={}: {why} (policy {} declares {key} = {})",
                    crate::runlog::clip(&p.value_text()),
                    pol.name,
                    crate::runlog::clip(&default.to_string())
                ))
            })?;
            let mut merged = pol.params.clone();
            merged.insert(p.key.as_str().into(), value);
            pol.set_params(merged);
        }
    }
    Ok(())
}

impl Param {
    /// VALUE as the user wrote it.
    fn value_text(&self) -> String {
        match &self.value {
            Value::String(s) if self.bare => s.clone(),
            v => v.to_string(),
        }
    }
}

/// `--param`'s value as a script value of its declared default's type: a number
/// (finite; a whole one where the default is an integer), a string (a bare word
/// too), a bool, an array or a map. A `()` default (`T_max: ()`, "the run's own")
/// takes any JSON value.
fn typed(p: &Param, default: &Dynamic) -> Result<Dynamic, String> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    };
    if p.bare && !default.is_string() {
        return Err("not valid JSON".into());
    }
    let v = &p.value;
    let want = if default.is_unit() {
        return Ok(convert::from_json(v));
    } else if default.is_int() {
        match v.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
                return Ok(Dynamic::from_int(x as rhai::INT));
            }
            Some(x) => return Err(format!("must be a whole number, got {x}")),
            None => "a whole number",
        }
    } else if default.is_float() {
        match v.as_f64() {
            Some(x) if x.is_finite() => return Ok(Dynamic::from_float(x)),
            _ => "a finite number",
        }
    } else if default.is_string() {
        match v {
            Value::String(s) => return Ok(s.as_str().into()),
            _ => "a string",
        }
    } else if default.is_bool() {
        match v {
            Value::Bool(b) => return Ok((*b).into()),
            _ => "true or false",
        }
    } else if default.is_array() {
        match v {
            Value::Array(_) => return Ok(convert::from_json(v)),
            _ => "an array",
        }
    } else if default.is_map() {
        match v {
            Value::Object(_) => return Ok(convert::from_json(v)),
            _ => "a map",
        }
    } else {
        return Ok(convert::from_json(v));
    };
    Err(format!("must be {want}, got {}", kind(v)))
}

fn names_match(name: &str, p: &Policy) -> bool {
    name == p.name
        || p.name.rsplit('/').next() == Some(name)
        || p.file.file_stem().is_some_and(|s| s == name)
}

fn event(
    kind: &'static str,
    policy: &Policy,
    hook: Hook,
    message: Option<String>,
    detail: JsonMap<String, Value>,
) -> PolicyEvent {
    let mut detail = detail;
    detail.insert("version".into(), json!(policy.version));
    PolicyEvent {
        kind,
        policy: policy.name.clone(),
        hook,
        message,
        detail,
    }
}

impl PolicySet {
    /// The content hash of policy `i`'s files now; `None` while one is missing or
    /// empty (a delete-then-create save, or a write in progress, keeps the old version
    /// until the file is back). A file that cannot be read for another reason (its
    /// permissions), or is too large, is a version of its own, which then fails to
    /// load with the reason.
    fn current_version(&self, i: usize) -> Option<String> {
        let p = &self.policies[i];
        let mut parts = Vec::with_capacity(p.files.len());
        for f in &p.files {
            // Only a regular file is read, and no further than a policy may be (a
            // FIFO would block, /dev/zero never end): anything else is a version of
            // its own, which then fails to load, saying why.
            let bytes = match std::fs::metadata(f) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => format!("unreadable:{e}").into_bytes(),
                Ok(m) if !m.is_file() => b"not a regular file".to_vec(),
                Ok(m) if m.len() > super::host::MAX_SOURCE => {
                    format!("large:{}", m.len()).into_bytes()
                }
                Ok(_) => {
                    let mut b = Vec::new();
                    let read = std::fs::File::open(f).and_then(|file| {
                        std::io::Read::read_to_end(
                            &mut std::io::Read::take(file, super::host::MAX_SOURCE + 1),
                            &mut b,
                        )
                    });
                    match read {
                        Ok(_) => b,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                        Err(e) => format!("unreadable:{e}").into_bytes(),
                    }
                }
            };
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
        // The `--param` values this policy took at load (a new version may drop a key).
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
}

impl Controller for PolicySet {
    fn defines(&self, hook: Hook) -> bool {
        self.policies.iter().any(|p| p.defines(hook))
    }

    fn snapshot(&self) -> Vec<PolicyState> {
        (0..self.policies.len())
            .map(|i| PolicyState {
                name: self.policies[i].name.clone(),
                version: self.policies[i].version.clone(),
                this: self.this_json(i),
            })
            .collect()
    }

    fn restore(&mut self, saved: &[PolicyState]) -> Vec<String> {
        let mut notes = Vec::new();
        for i in 0..self.policies.len() {
            let (name, version) = (
                self.policies[i].name.clone(),
                self.policies[i].version.clone(),
            );
            // By position first (the same policy twice keeps its own state), else by
            // name.
            let found = saved
                .get(i)
                .filter(|s| s.name == name)
                .or_else(|| saved.iter().find(|s| s.name == name));
            match found {
                Some(s) => {
                    self.set_this(i, &s.this);
                    // A hand-edited or older checkpoint may hold what a call could not
                    // have kept.
                    if let Err(why) = state::check(&self.policies[i].this) {
                        self.policies[i].this = Dynamic::from_map(rhai::Map::new());
                        notes.push(format!(
                            "policy {name}: its saved this cannot be kept ({why}); it starts empty"
                        ));
                        continue;
                    }
                    if s.version != version {
                        notes.push(format!(
                            "policy {name} changed since the checkpoint (version {} -> {version}); its new version runs, with its saved this",
                            s.version
                        ));
                    }
                }
                None => notes.push(format!(
                    "policy {name} is not in the checkpoint; its this starts empty"
                )),
            }
        }
        notes
    }

    fn watched(&self) -> Vec<std::path::PathBuf> {
        self.policies
            .iter()
            .filter(|p| !p.file.starts_with("<embedded>"))
            .flat_map(|p| p.files.iter().cloned())
            .collect()
    }

    fn reload(&mut self, ctx: &Ctx) -> Reply {
        let history = self.history_if_used(ctx.history);
        let mut events = Vec::new();
        let mut swapped = Vec::new();
        for i in 0..self.policies.len() {
            let Some(now) = self.current_version(i) else {
                continue;
            };
            if now == self.policies[i].version || self.failed[i].as_deref() == Some(now.as_str()) {
                continue;
            }
            let name = self.policies[i].name.clone();
            match self.recompile(i, ctx, &history) {
                Ok(mut fresh) => {
                    fresh.this = std::mem::replace(&mut self.policies[i].this, Dynamic::UNIT);
                    self.policies[i] = fresh;
                    self.generation[i] += 1;
                    self.failed[i] = None;
                    let v = format!("v{}", self.generation[i]);
                    if self.echo_errors {
                        crate::runlog::say(&crate::runlog::one_line(&format!(
                            "policy {name} reloaded ({v}, {})",
                            &now[..6]
                        )));
                    }
                    events.push(event(
                        "reload",
                        &self.policies[i],
                        Hook::Reload,
                        Some(v),
                        JsonMap::new(),
                    ));
                    swapped.push(i);
                }
                Err(e) => {
                    if self.echo_errors {
                        crate::runlog::say(&crate::runlog::one_line(&format!(
                            "policy {name}: reload failed at {e} (still running v{})",
                            self.generation[i]
                        )));
                    }
                    let mut d = JsonMap::new();
                    d.insert("file".into(), json!(e.file.display().to_string()));
                    d.insert("line".into(), json!(e.line));
                    d.insert("column".into(), json!(e.column));
                    let mut ev = event(
                        "reload_failed",
                        &self.policies[i],
                        Hook::Reload,
                        Some(e.message.clone()),
                        d,
                    );
                    ev.detail.insert("version".into(), json!(now));
                    events.push(ev);
                    self.failed[i] = Some(now);
                }
            }
        }
        if swapped
            .iter()
            .any(|&i| self.policies[i].defines(Hook::Reload))
        {
            // Only the reloaded policies hear on_reload.
            let mut reply = self.call_only(Hook::Reload, ctx, |i| swapped.contains(&i));
            events.append(&mut reply.events);
            return Reply {
                decision: reply.decision,
                events,
            };
        }
        Reply {
            decision: Decision::default(),
            events,
        }
    }

    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        self.call_only(hook, ctx, |_| true)
    }
}

impl PolicySet {
    /// `hook` for the policies `which` selects, in order, composed as a hook call is.
    fn call_only(&mut self, hook: Hook, ctx: &Ctx, which: impl Fn(usize) -> bool) -> Reply {
        let history = self.history_if_used(ctx.history);
        let mut merged = Decision::default();
        let mut events = Vec::new();
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
            let result = self.policies[i].call(hook, ctx_value);
            let p = &self.policies[i];
            let raw = match result {
                Ok(v) => v,
                Err(e) => {
                    let mut d = JsonMap::new();
                    d.insert("file".into(), json!(e.file.display().to_string()));
                    d.insert("line".into(), json!(e.line));
                    d.insert("column".into(), json!(e.column));
                    events.push(event("policy_error", p, hook, Some(e.message.clone()), d));
                    self.report(i, &e);
                    continue;
                }
            };
            let checked = convert::decision(&raw).and_then(|d| d.validate(&view).map(|_| d));
            match checked {
                Err(invalid) => {
                    let mut d = JsonMap::new();
                    d.insert("key".into(), json!(crate::runlog::clip(&invalid.key)));
                    d.insert("decision".into(), convert::to_json_bounded(&raw));
                    let msg = crate::runlog::clip(&format!("{}: {}", invalid.key, invalid.message));
                    let line = format!(
                        "policy {}: invalid decision in {} ({msg}); dropped",
                        p.name,
                        hook.function()
                    );
                    if self.echo_errors && self.printed_invalid.insert(line.clone()) {
                        crate::runlog::say(&crate::runlog::one_line(&line));
                    }
                    events.push(event("invalid_decision", p, hook, Some(msg), d));
                }
                Ok(d) if d.is_empty() => {}
                Ok(d) => {
                    // A schedule's per-step LR is in steps.jsonl and metrics.jsonl; an
                    // event per step would bury the decisions worth reading.
                    if !(hook == Hook::Step && d.is_lr_only()) {
                        let mut detail = JsonMap::new();
                        detail.insert(
                            "decision".into(),
                            serde_json::to_value(&d).unwrap_or(Value::Null),
                        );
                        events.push(event("decision", p, hook, None, detail));
                    }
                    view.settings = d.apply(view.settings, self.rule);
                    merged = merged.then(d);
                }
            }
        }
        // The trainer applies the merged decision in one go; make its settings those of
        // the sequence (a later batch-size change rescales an earlier policy's LR).
        let s = view.settings;
        if s.batch_size != ctx.settings.batch_size {
            merged.batch_size = Some(s.batch_size);
            merged.rescale = Some(Rescale::None);
            merged.lr = Some(s.lr);
        } else if s.lr != ctx.settings.lr {
            merged.lr = Some(s.lr);
        }
        Reply {
            decision: merged,
            events,
        }
    }
}
