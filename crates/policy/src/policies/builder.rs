//! [`Builder`]: which policies, their parameters, where names are looked up,
//! whether edits reload, where messages go; and [`Messages`], where they go.

use std::collections::HashSet;
use std::sync::Arc;

use rhai::Dynamic;

use crate::errors::LoadError;
use crate::params::{Param, apply_params};
use crate::script::find::{self, SearchPath};

use super::Policies;
use crate::Rescale;
use crate::script::policy::Policy;
use crate::watch::{WatchMode, Watcher};

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

    pub(super) fn say(&self, m: &str) {
        if let Some(f) = &self.0 {
            f(m);
        }
    }

    pub(super) fn on(&self) -> bool {
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

impl Policies {
    /// A builder with no policies, no parameters, the search path from the
    /// environment, no watching, messages to stderr, linear rescaling.
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
}

impl Builder {
    /// A policy by name (`lr/cosine`, `PLUGIN/POLICY`) or path (`./mine.rhai`); they
    /// run in the order added.
    pub fn policy(mut self, spec: impl Into<String>) -> Builder {
        self.specs.push(spec.into());
        self
    }

    /// Several policies by name or path, in order, after those added so far.
    pub fn policies<S: Into<String>>(mut self, specs: impl IntoIterator<Item = S>) -> Builder {
        self.specs.extend(specs.into_iter().map(Into::into));
        self
    }

    /// A parameter over a policy's `fn params()` default, typed against it.
    pub fn param(mut self, p: Param) -> Builder {
        self.params.push(p);
        self
    }

    /// Several parameters (see [`Builder::param`]).
    pub fn params(mut self, ps: impl IntoIterator<Item = Param>) -> Builder {
        self.params.extend(ps);
        self
    }

    /// Where names are looked up; [`SearchPath::from_env`] by default (the project's
    /// locked plugins, `./plugins`, `./scripts`, `$RUDDER_PATH`, then the embedded
    /// standard library).
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
        let search = match self.search {
            Some(s) => s,
            None => SearchPath::from_env()?,
        };
        let mut policies = Vec::new();
        for spec in &self.specs {
            let src = find::locate(spec, &search).map_err(|message| {
                let clipped = crate::text::clip(spec);
                let message = crate::catalog::hint(spec, &message, &search);
                LoadError::not_found(&clipped, message.replace(spec.as_str(), &clipped))
            })?;
            let policy = Policy::compile(src, &search)?;
            if policy.defines_fn(crate::hooks::ON_REPORT, 1) {
                return Err(LoadError::not_found(
                    &crate::text::clip(spec),
                    "is a sweep policy (it defines on_report): give it to rudder sweep --scheduler"
                        .into(),
                ));
            }
            policies.push(policy);
        }
        let warnings = apply_params(&mut policies, &self.params)?;
        for w in &warnings {
            self.messages.say(&format!("warning: {w}"));
        }
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
            warnings,
        };
        let files = set.watched_files();
        let messages = set.messages.clone();
        set.watcher = Watcher::start(&files, self.watch, &move |m| messages.say(m))
            .map_err(|e| LoadError::watch(e.to_string()))?;
        Ok(set)
    }
}
