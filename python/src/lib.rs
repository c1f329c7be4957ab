//! `rudder._rudder`: the Python face of `rudder-policy`. `Policies` keeps the run's
//! context between calls (each hook takes keyword metrics that update it), applies
//! each decision to its own settings, and keeps every event; the policy commands
//! (`list`, `doc`, `check`, `test`) are functions. The GIL is released while policies
//! run and while a changed file is recompiled.

mod commands;
mod context;
mod convert;
mod events;

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use rudder_policy::{
    Controller, Decision, Hook, LoadError, Messages, Param, Policies, PolicyState, Reply, Rescale,
    RunState, Settings, WatchMode,
};

use serde_json::{Map, Value, json};

use commands::{policy_check, policy_doc, policy_list, policy_test};
use context::{Update, epoch_record, read_kwargs, restore, update};
use convert::{decision_to_py, to_json, to_py};
use events::Event;

pyo3::create_exception!(
    _rudder,
    PolicyLoadError,
    PyValueError,
    "A policy set that could not be loaded: `kind`, `file`, `line`, `column`, `message`."
);

/// The most events kept (the oldest go first).
const MAX_EVENTS: usize = 100_000;

struct State {
    set: Policies,
    /// The context a hook sees, kept between calls.
    run: RunState,
    rule: Rescale,
    /// Kept as they came, made dicts only when `events` is read.
    events: Vec<Event>,
    /// Which of the bases the loop has given a value for yet.
    given: Given,
}

/// Whether a hook call has brought the LR and the batch size yet (until then the
/// context's are placeholders, not bases).
#[derive(Debug, Default)]
struct Given {
    lr: bool,
    batch_size: bool,
}

/// A policy set for a Python training loop.
///
/// `Policies(names, params=None, watch=True, path=None, rescale="linear",
/// messages=None)`: `names` are policy names (`"lr/cosine"`) or paths
/// (`"./mine.rhai"`), run in that order; `params` maps `KEY` or `POLICY.KEY` to a
/// value over the policies' defaults; `watch` reloads an edited file at the next
/// hook call; `path` is the folders searched for names before the embedded library
/// (default: ./plugins, ./scripts, $RUDDER_PATH); `rescale` the rule for a batch-size
/// change without an LR (`"linear"`, `"sqrt"`, `"none"`); `messages` a callable that
/// takes each message (default: stderr).
#[pyclass(module = "rudder._rudder", name = "Policies")]
struct PyPolicies {
    state: Mutex<State>,
}

#[pymethods]
impl PyPolicies {
    #[new]
    #[pyo3(signature = (names, params=None, watch=true, path=None, rescale="linear", messages=None))]
    fn new(
        py: Python<'_>,
        names: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyDict>>,
        watch: bool,
        path: Option<Vec<PathBuf>>,
        rescale: &str,
        messages: Option<Py<PyAny>>,
    ) -> PyResult<PyPolicies> {
        let names: Vec<String> = if let Ok(one) = names.cast::<PyString>() {
            vec![one.extract::<String>()?]
        } else {
            names.extract()?
        };
        let mut ps = Vec::new();
        if let Some(params) = params {
            for (k, v) in params.iter() {
                let key: String = k.extract()?;
                let value = to_json(&v)?;
                ps.push(match key.rsplit_once('.') {
                    Some((policy, key)) => Param::new(key, value).of(policy),
                    None => Param::new(&key, value),
                });
            }
        }
        let rule = Rescale::from_name(rescale)
            .map_err(|m| PyValueError::new_err(format!("rescale {m}")))?;
        let messages = match messages {
            None => Messages::stderr(),
            Some(f) => Messages::to(move |m| {
                Python::attach(|py| {
                    if let Err(e) = f.call1(py, (m,)) {
                        e.print(py);
                    }
                })
            }),
        };
        let search = commands::search(py, path)?;
        let built = py.detach(|| {
            Policies::builder()
                .policies(names)
                .params(ps)
                .search_path(search)
                .watch(if watch {
                    WatchMode::Auto
                } else {
                    WatchMode::Off
                })
                .rescale(rule)
                .messages(messages)
                .build()
        });
        let set = built.map_err(|e| load_error(py, &e))?;
        Ok(PyPolicies {
            state: Mutex::new(State {
                set,
                run: {
                    let mut run = RunState::new(Settings::new(0.0, 1));
                    run.steps_per_epoch = Some(1);
                    run
                },
                rule,
                events: Vec::new(),
                given: Given::default(),
            }),
        })
    }

    /// Calls `hook` (`"on_step"`, ...) with the context updated by `kwargs`; returns
    /// the merged decision as a dict (empty: no change).
    #[pyo3(signature = (hook, **kwargs))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        hook: &str,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let hook = Hook::from_function(hook).ok_or_else(|| {
            PyValueError::new_err(format!(
                "no hook {hook:?}: on_train_start, on_epoch_start, on_step, on_epoch_end or on_train_end"
            ))
        })?;
        let updates = read_kwargs(kwargs)?;
        let decision = self.with(py, |state| state.call(hook, &updates));
        decision_to_py(py, &decision)
    }

    /// `on_train_start(**metrics)`: once, before the first epoch.
    #[pyo3(signature = (**kwargs))]
    fn on_train_start<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.call(py, "on_train_start", kwargs)
    }

    /// `on_epoch_start(epoch=..., **metrics)`: before each epoch (`epoch` counts from
    /// 0; by default the one after the last `on_epoch_end`).
    #[pyo3(signature = (**kwargs))]
    fn on_epoch_start<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.call(py, "on_epoch_start", kwargs)
    }

    /// `on_step(step=..., **metrics)`: before each optimizer step (`step` = steps
    /// done so far; by default one more than at the last `on_step`).
    #[pyo3(signature = (**kwargs))]
    fn on_step<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.call(py, "on_step", kwargs)
    }

    /// `on_epoch_end(val_loss=..., val_acc=..., train_loss=..., train_acc=...)`: after
    /// each epoch's validation; the epoch joins `ctx.history`.
    #[pyo3(signature = (**kwargs))]
    fn on_epoch_end<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.call(py, "on_epoch_end", kwargs)
    }

    /// `on_train_end(**metrics)`: once, at the end.
    #[pyo3(signature = (**kwargs))]
    fn on_train_end<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.call(py, "on_train_end", kwargs)
    }

    /// Everything that happened, oldest first: each a dict with `kind`, `policy`,
    /// `hook`, `epoch`, `step` and by kind `decision`, `message`, `file`, `line`,
    /// `column`, `key`, `version`.
    #[getter]
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events: Vec<Value> = self.with(py, |s| s.events.iter().map(Event::to_json).collect());
        let list = PyList::empty(py);
        for e in &events {
            list.append(to_py(py, e)?)?;
        }
        Ok(list)
    }

    /// Adds an event of the caller's (an adapter's: a decision key it cannot apply).
    #[pyo3(signature = (kind, **fields))]
    fn record_event(
        &self,
        py: Python<'_>,
        kind: &str,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let mut event = Map::new();
        event.insert("kind".into(), json!(kind));
        if let Some(fields) = fields {
            for (k, v) in fields.iter() {
                event.insert(k.extract()?, to_json(&v)?);
            }
        }
        self.with(py, move |state| {
            let (epoch, step) = (state.run.epoch, state.run.step);
            event.entry("epoch").or_insert(json!(epoch));
            event.entry("step").or_insert(json!(step));
            state.push_event(Event::Own(Value::Object(event)));
        });
        Ok(())
    }

    /// Whether a decision has stopped the run.
    #[getter]
    fn should_stop(&self, py: Python<'_>) -> bool {
        self.with(py, |s| s.run.stopped)
    }

    /// The settings as the decisions so far left them: `lr`, `batch_size`,
    /// `accumulation`, `epochs`, `momentum`, `weight_decay`.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.with(py, |s| s.run.settings);
        to_py(
            py,
            &json!({"lr": s.lr, "batch_size": s.batch_size, "accumulation": s.accumulation,
                    "epochs": s.epochs, "momentum": s.momentum, "weight_decay": s.weight_decay}),
        )
    }

    /// What steers the run, per policy: `{policy, files: [{path, sha256}], plugin:
    /// {name, version, source, commit, checksum}}` (the plugin only for a locked
    /// plugin's policy), as `rudder train` records it in `config.json`.
    fn provenance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self.with(py, |state| json!(state.set.provenance()));
        to_py(py, &value)
    }

    /// The policies' and the context's state, for the trainer's own checkpoints:
    /// `{"policies": [{name, version, this}, ...], "run": {...}}`.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self.with(py, |state| {
            let r = &state.run;
            let s = r.settings;
            json!({
                "policies": state.set.state(),
                "run": {
                    "epoch": r.epoch, "step": r.step, "steps_per_epoch": r.steps_per_epoch(),
                    "lr": s.lr, "batch_size": s.batch_size, "accumulation": s.accumulation,
                    "epochs": s.epochs, "momentum": s.momentum, "weight_decay": s.weight_decay,
                    "base_lr": r.base_lr, "base_batch_size": r.base_batch_size,
                    "optimizer": r.optimizer, "dataset_size": r.dataset_size,
                    "best": r.best, "history": r.history, "stopped": r.stopped,
                },
            })
        });
        to_py(py, &value)
    }

    /// Restores `state()`'s output (or a bare list of policy states); the run counts
    /// as resumed. Returns a note per policy whose source changed since, whose state
    /// cannot be kept, or that the state does not know.
    fn load_state(&self, py: Python<'_>, saved: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let value = to_json(saved)?;
        let (policies, run) = match &value {
            Value::Array(_) => (value.clone(), None),
            Value::Object(m) => (
                m.get("policies").cloned().unwrap_or(Value::Array(vec![])),
                m.get("run").and_then(Value::as_object).cloned(),
            ),
            _ => return Err(PyTypeError::new_err("load_state takes what state() gave")),
        };
        let policies: Vec<PolicyState> = serde_json::from_value(policies)
            .map_err(|e| PyValueError::new_err(format!("policies: {e}")))?;
        Ok(self.with(py, move |state| {
            let notes = state.set.load_state(&policies);
            if let Some(run) = run {
                restore(&mut state.run, &run);
                state.given.lr |= state.run.base_lr.is_some();
                state.given.batch_size |= state.run.base_batch_size.is_some();
            }
            state.run.resumed = true;
            notes
        }))
    }

    /// Recompiles what changed on disk now (a hook call does it by itself when
    /// `watch` is on); returns the decision of `on_reload`.
    fn reload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let decision = self.with(py, |state| state.reload());
        Ok(decision_to_py(py, &decision)?.into_any())
    }

    /// Whether the watcher has seen an edit that the next hook call picks up.
    #[getter]
    fn edit_seen(&self, py: Python<'_>) -> bool {
        self.with(py, |s| s.set.edit_seen())
    }

    /// How the files are watched: `"native"`, `"poll"`, or None (not watched).
    #[getter]
    fn watching(&self, py: Python<'_>) -> Option<&'static str> {
        self.with(py, |s| s.set.watching())
    }

    /// Whether a policy's files changed since they were loaded.
    #[getter]
    fn reload_pending(&self, py: Python<'_>) -> bool {
        self.with(py, |s| s.set.reload_pending())
    }

    /// Each policy: `name`, `file`, `hooks`, `params`, `version`.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let described = self.with(py, |s| s.set.describe());
        let list = PyList::empty(py);
        for p in described {
            let v = json!({"name": p.name, "file": p.file.display().to_string(),
                "hooks": p.hooks, "params": p.params, "version": p.version});
            list.append(to_py(py, &v)?)?;
        }
        Ok(list)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let names: Vec<String> = self.with(py, |s| {
            s.set.describe().into_iter().map(|p| p.name).collect()
        });
        format!("Policies({names:?})")
    }
}

impl PyPolicies {
    /// `f` on the state, the GIL released while the lock is waited for and held: the
    /// one lock order (a hook holds the state while a `messages=` callback takes the
    /// GIL; a thread holding the GIL never waits for the state), so no two threads
    /// can deadlock.
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R + Send) -> R {
        py.detach(|| f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

impl State {
    fn call(&mut self, hook: Hook, updates: &[Update]) -> Decision {
        // The defaults that move on by themselves: the step after the last `on_step`,
        // the epoch after the last `on_epoch_end`.
        for u in updates {
            update(&mut self.run, u);
            match u {
                Update::Num("lr" | "base_lr", Some(_)) => self.given.lr = true,
                Update::Int("batch_size" | "base_batch_size", _) => self.given.batch_size = true,
                _ => {}
            }
        }
        let r = &mut self.run;
        if hook == Hook::EpochEnd {
            let m = r.metrics;
            r.end_epoch(m);
        }
        // The bases are the first values the loop gives, not the placeholders before
        // them (a first hook without `lr=` must not fix `base_lr` at 0).
        if self.given.lr {
            r.base_lr.get_or_insert(r.settings.lr);
        }
        if self.given.batch_size {
            r.base_batch_size.get_or_insert(r.settings.batch_size);
        }
        let reply = self.set.call(hook, &r.ctx());
        let decision = self.take(reply);
        let r = &mut self.run;
        match hook {
            Hook::Step => r.step += 1,
            Hook::EpochEnd => {
                r.history.push(epoch_record(r, &decision));
                r.epoch += 1;
            }
            _ => {}
        }
        decision
    }

    /// Records a reply's events, applies its decision to the settings, and gives the
    /// decision.
    fn take(&mut self, reply: Reply) -> Decision {
        let (epoch, step) = (self.run.epoch, self.run.step);
        for e in reply.events {
            self.push_event(Event::Policy(e, epoch, step));
        }
        self.run.apply(&reply.decision, self.rule);
        reply.decision
    }

    fn reload(&mut self) -> Decision {
        let reply = Controller::reload(&mut self.set, &self.run.ctx());
        self.take(reply)
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.drain(..MAX_EVENTS / 10);
        }
        self.events.push(e);
    }
}

pub(crate) fn load_error(py: Python<'_>, e: &LoadError) -> PyErr {
    let err = PolicyLoadError::new_err(e.to_string());
    let value = err.value(py);
    let kind = format!("{:?}", e.kind).to_lowercase();
    let file = e.file.as_ref().map(|f| f.display().to_string());
    for (k, v) in [
        ("kind", kind.into_pyobject(py).map(Bound::into_any)),
        ("file", file.into_pyobject(py).map(Bound::into_any)),
        ("line", e.line.into_pyobject(py).map(Bound::into_any)),
        ("column", e.column.into_pyobject(py).map(Bound::into_any)),
        (
            "message",
            e.message.as_str().into_pyobject(py).map(Bound::into_any),
        ),
    ] {
        let Ok(v) = v;
        let _ = value.setattr(k, v);
    }
    err
}

/// The names of the embedded standard library.
#[pyfunction]
fn embedded() -> Vec<&'static str> {
    rudder_policy::EMBEDDED.iter().map(|(n, _)| *n).collect()
}

#[pymodule]
fn _rudder(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // One version for the workspace and the package: Cargo.toml's, which maturin
    // also gives the wheel.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("library_version", rudder_policy::VERSION)?;
    m.add_class::<PyPolicies>()?;
    m.add("PolicyLoadError", m.py().get_type::<PolicyLoadError>())?;
    m.add_function(wrap_pyfunction!(commands::plugin_run, m)?)?;
    m.add_function(wrap_pyfunction!(policy_list, m)?)?;
    m.add_function(wrap_pyfunction!(policy_doc, m)?)?;
    m.add_function(wrap_pyfunction!(policy_check, m)?)?;
    m.add_function(wrap_pyfunction!(policy_test, m)?)?;
    m.add_function(wrap_pyfunction!(embedded, m)?)?;
    Ok(())
}
