//! `rudder._rudder`: the Python face of `rudder-policy`. `Policies` keeps the run's
//! context between calls (each hook takes keyword metrics that update it), applies
//! each decision to its own settings, and keeps every event; the policy commands
//! (`list`, `doc`, `check`, `test`) are functions. The GIL is released while policies
//! run and while a changed file is recompiled.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rudder_policy::{
    Best, Controller, Ctx, EpochMetrics, Hook, LoadError, Messages, Param, Policies, PolicyState,
    Reply, Rescale, SearchPath, Settings, WatchMode, library, testing,
};
use serde_json::{Map, Value, json};

pyo3::create_exception!(
    _rudder,
    PolicyLoadError,
    PyValueError,
    "A policy set that could not be loaded: `kind`, `file`, `line`, `column`, `message`."
);

/// The most events kept (the oldest go first).
const MAX_EVENTS: usize = 100_000;

/// The context a hook sees, kept between calls.
struct Run {
    epoch: usize,
    step: u64,
    steps_per_epoch: usize,
    settings: Settings,
    base_lr: Option<f64>,
    base_batch_size: Option<usize>,
    optimizer: String,
    /// Training examples per epoch; unknown: steps per epoch x batch size.
    dataset_size: Option<usize>,
    metrics: EpochMetrics,
    best: Best,
    resumed: bool,
    history: Vec<Value>,
    /// Whether a decision stopped the run.
    stopped: bool,
}

struct State {
    set: Policies,
    run: Run,
    rule: Rescale,
    events: Vec<Value>,
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
        let search = path.map_or_else(SearchPath::from_env, SearchPath::new);
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
                run: Run {
                    epoch: 0,
                    step: 0,
                    steps_per_epoch: 1,
                    settings: Settings::new(0.0, 1),
                    base_lr: None,
                    base_batch_size: None,
                    optimizer: "sgd".into(),
                    dataset_size: None,
                    metrics: EpochMetrics::default(),
                    best: Best::default(),
                    resumed: false,
                    history: Vec::new(),
                    stopped: false,
                },
                rule,
                events: Vec::new(),
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
        let decision = py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.call(hook, &updates)
        });
        match to_py(py, &decision)?.cast_into::<PyDict>() {
            Ok(d) => Ok(d),
            Err(_) => Ok(PyDict::new(py)),
        }
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
        let state = self.lock();
        let list = PyList::empty(py);
        for e in &state.events {
            list.append(to_py(py, e)?)?;
        }
        Ok(list)
    }

    /// Adds an event of the caller's (an adapter's: a decision key it cannot apply).
    #[pyo3(signature = (kind, **fields))]
    fn record_event(&self, kind: &str, fields: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let mut event = Map::new();
        event.insert("kind".into(), json!(kind));
        if let Some(fields) = fields {
            for (k, v) in fields.iter() {
                event.insert(k.extract()?, to_json(&v)?);
            }
        }
        let mut state = self.lock();
        let (epoch, step) = (state.run.epoch, state.run.step);
        event.entry("epoch").or_insert(json!(epoch));
        event.entry("step").or_insert(json!(step));
        state.push_event(Value::Object(event));
        Ok(())
    }

    /// Whether a decision has stopped the run.
    #[getter]
    fn should_stop(&self) -> bool {
        self.lock().run.stopped
    }

    /// The settings as the decisions so far left them: `lr`, `batch_size`,
    /// `accumulation`, `epochs`, `momentum`, `weight_decay`.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.lock().run.settings;
        to_py(
            py,
            &json!({"lr": s.lr, "batch_size": s.batch_size, "accumulation": s.accumulation,
                    "epochs": s.epochs, "momentum": s.momentum, "weight_decay": s.weight_decay}),
        )
    }

    /// The policies' and the context's state, for the trainer's own checkpoints:
    /// `{"policies": [{name, version, this}, ...], "run": {...}}`.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.lock();
        let r = &state.run;
        let s = r.settings;
        let value = json!({
            "policies": state.set.state(),
            "run": {
                "epoch": r.epoch, "step": r.step, "steps_per_epoch": r.steps_per_epoch,
                "lr": s.lr, "batch_size": s.batch_size, "accumulation": s.accumulation,
                "epochs": s.epochs, "momentum": s.momentum, "weight_decay": s.weight_decay,
                "base_lr": r.base_lr, "base_batch_size": r.base_batch_size,
                "optimizer": r.optimizer, "dataset_size": r.dataset_size,
                "best": r.best, "history": r.history, "stopped": r.stopped,
            },
        });
        to_py(py, &value)
    }

    /// Restores `state()`'s output (or a bare list of policy states); the run counts
    /// as resumed. Returns a note per policy whose source changed since, whose state
    /// cannot be kept, or that the state does not know.
    fn load_state(&self, saved: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
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
        let mut state = self.lock();
        let notes = state.set.load_state(&policies);
        if let Some(run) = run {
            state.run.restore(&run);
        }
        state.run.resumed = true;
        Ok(notes)
    }

    /// Recompiles what changed on disk now (a hook call does it by itself when
    /// `watch` is on); returns the decision of `on_reload`.
    fn reload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let decision = py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.reload()
        });
        to_py(py, &decision)
    }

    /// Whether the watcher has seen an edit that the next hook call picks up.
    #[getter]
    fn edit_seen(&self) -> bool {
        self.lock().set.edit_seen()
    }

    /// How the files are watched: `"native"`, `"poll"`, or None (not watched).
    #[getter]
    fn watching(&self) -> Option<&'static str> {
        self.lock().set.watching()
    }

    /// Whether a policy's files changed since they were loaded.
    #[getter]
    fn reload_pending(&self) -> bool {
        self.lock().set.reload_pending()
    }

    /// Each policy: `name`, `file`, `hooks`, `params`, `version`.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let state = self.lock();
        let list = PyList::empty(py);
        for p in state.set.describe() {
            let v = json!({"name": p.name, "file": p.file.display().to_string(),
                "hooks": p.hooks, "params": p.params, "version": p.version});
            list.append(to_py(py, &v)?)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        let state = self.lock();
        let names: Vec<String> = state.set.describe().into_iter().map(|p| p.name).collect();
        format!("Policies({names:?})")
    }
}

impl PyPolicies {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A keyword argument of a hook call.
enum Update {
    Int(&'static str, u64),
    Num(&'static str, Option<f64>),
    Optimizer(String),
    Resumed(bool),
}

const INTS: [&str; 7] = [
    "epoch",
    "step",
    "steps_per_epoch",
    "batch_size",
    "accumulation",
    "epochs",
    "dataset_size",
];
/// The real-valued settings; the metrics (`rudder_policy::METRIC_NAMES`) are too.
const NUMS: [&str; 4] = ["lr", "momentum", "weight_decay", "base_lr"];

fn read_kwargs(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<Update>> {
    let mut out = Vec::new();
    let Some(kwargs) = kwargs else {
        return Ok(out);
    };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        let bad = |want: &str| {
            let shown = v.repr().map_or_else(|_| "?".to_string(), |r| r.to_string());
            PyTypeError::new_err(format!(
                "{key} must be {want}, got {}",
                rudder_policy::text::clip(&shown)
            ))
        };
        if let Some(k) = INTS.iter().find(|n| **n == key) {
            let n: u64 = v.extract().map_err(|_| bad("a whole number >= 0"))?;
            out.push(Update::Int(k, n));
        } else if let Some(k) = NUMS
            .iter()
            .chain(&rudder_policy::METRIC_NAMES)
            .find(|n| **n == key)
        {
            let x: Option<f64> = if v.is_none() {
                None
            } else {
                Some(v.extract().map_err(|_| bad("a number or None"))?)
            };
            out.push(Update::Num(k, x));
        } else if key == "optimizer" {
            out.push(Update::Optimizer(v.extract().map_err(|_| bad("a str"))?));
        } else if key == "base_batch_size" {
            out.push(Update::Int(
                "base_batch_size",
                v.extract().map_err(|_| bad("a whole number"))?,
            ));
        } else if key == "resumed" {
            out.push(Update::Resumed(v.extract().map_err(|_| bad("a bool"))?));
        } else {
            return Err(PyTypeError::new_err(format!(
                "unexpected keyword {key:?}: the context has {}, {}, {}, base_batch_size, optimizer and resumed",
                INTS.join(", "),
                NUMS.join(", "),
                rudder_policy::METRIC_NAMES.join(", ")
            )));
        }
    }
    Ok(out)
}

impl Run {
    fn dataset_size(&self) -> usize {
        self.dataset_size
            .unwrap_or(self.steps_per_epoch * self.settings.batch_size)
    }

    fn update(&mut self, u: &Update) {
        let s = &mut self.settings;
        match *u {
            Update::Int("epoch", n) => self.epoch = n as usize,
            Update::Int("step", n) => self.step = n,
            Update::Int("steps_per_epoch", n) => self.steps_per_epoch = (n as usize).max(1),
            Update::Int("batch_size", n) => s.batch_size = (n as usize).max(1),
            Update::Int("accumulation", n) => s.accumulation = (n as usize).max(1),
            Update::Int("epochs", n) => s.epochs = n as usize,
            Update::Int("dataset_size", n) => self.dataset_size = Some((n as usize).max(1)),
            Update::Int("base_batch_size", n) => self.base_batch_size = Some(n as usize),
            Update::Num("lr", Some(x)) => s.lr = x,
            Update::Num("momentum", Some(x)) => s.momentum = x,
            Update::Num("weight_decay", Some(x)) => s.weight_decay = x,
            Update::Num("base_lr", x) => self.base_lr = x,
            Update::Num(name, x) if self.metrics.set(name, x) => {}
            Update::Optimizer(ref t) => self.optimizer = t.clone(),
            Update::Resumed(b) => self.resumed = b,
            _ => {}
        }
    }

    /// From `state()`'s `run`.
    fn restore(&mut self, r: &Map<String, Value>) {
        let int = |k: &str| r.get(k).and_then(Value::as_u64);
        let num = |k: &str| r.get(k).and_then(Value::as_f64);
        let s = &mut self.settings;
        self.epoch = int("epoch").map_or(self.epoch, |v| v as usize);
        self.step = int("step").unwrap_or(self.step);
        self.steps_per_epoch = int("steps_per_epoch").map_or(self.steps_per_epoch, |v| v as usize);
        s.lr = num("lr").unwrap_or(s.lr);
        s.batch_size = int("batch_size").map_or(s.batch_size, |v| v as usize);
        s.accumulation = int("accumulation").map_or(s.accumulation, |v| v as usize);
        s.epochs = int("epochs").map_or(s.epochs, |v| v as usize);
        s.momentum = num("momentum").unwrap_or(s.momentum);
        s.weight_decay = num("weight_decay").unwrap_or(s.weight_decay);
        self.base_lr = num("base_lr").or(self.base_lr);
        self.base_batch_size = int("base_batch_size")
            .map(|v| v as usize)
            .or(self.base_batch_size);
        if let Some(o) = r.get("optimizer").and_then(Value::as_str) {
            self.optimizer = o.to_string();
        }
        self.dataset_size = int("dataset_size")
            .map(|v| v as usize)
            .or(self.dataset_size);
        if let Some(b) = r
            .get("best")
            .and_then(|b| serde_json::from_value(b.clone()).ok())
        {
            self.best = b;
        }
        if let Some(h) = r.get("history").and_then(Value::as_array) {
            self.history = h.clone();
            if let Some(last) = h.last().and_then(Value::as_object) {
                self.metrics = EpochMetrics::from_json(last);
            }
        }
        self.stopped = r.get("stopped").and_then(Value::as_bool).unwrap_or(false);
    }
}

impl State {
    fn call(&mut self, hook: Hook, updates: &[Update]) -> Value {
        // The defaults that move on by themselves: the step after the last `on_step`,
        // the epoch after the last `on_epoch_end`.
        for u in updates {
            self.run.update(u);
        }
        let r = &mut self.run;
        if hook == Hook::EpochEnd {
            r.best = r.best.update(r.epoch, &r.metrics);
        }
        let base_lr = *r.base_lr.get_or_insert(r.settings.lr);
        let base_batch = *r.base_batch_size.get_or_insert(r.settings.batch_size);
        let mut ctx = Ctx::new(r.settings, r.dataset_size());
        ctx.epoch = r.epoch;
        ctx.step = r.step;
        ctx.steps_per_epoch = r.steps_per_epoch;
        ctx.base_lr = base_lr;
        ctx.base_batch_size = base_batch;
        ctx.optimizer = &r.optimizer;
        ctx.metrics = r.metrics;
        ctx.history = &r.history;
        ctx.best = r.best;
        ctx.resumed = r.resumed;
        let reply = self.set.call(hook, &ctx);
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
    /// decision as JSON.
    fn take(&mut self, reply: Reply) -> Value {
        let (epoch, step) = (self.run.epoch, self.run.step);
        for e in &reply.events {
            if let Ok(Value::Object(mut m)) = serde_json::to_value(e) {
                m.insert("epoch".into(), json!(epoch));
                m.insert("step".into(), json!(step));
                self.push_event(Value::Object(m));
            }
        }
        let d = reply.decision;
        self.run.settings = d.apply(self.run.settings, self.rule);
        self.run.stopped |= d.stop;
        serde_json::to_value(&d).unwrap_or(Value::Null)
    }

    fn reload(&mut self) -> Value {
        let r = &self.run;
        let mut ctx = Ctx::new(r.settings, r.dataset_size());
        ctx.epoch = r.epoch;
        ctx.step = r.step;
        ctx.steps_per_epoch = r.steps_per_epoch;
        ctx.history = &r.history;
        let reply = Controller::reload(&mut self.set, &ctx);
        self.take(reply)
    }

    fn push_event(&mut self, e: Value) {
        if self.events.len() >= MAX_EVENTS {
            self.events.drain(..MAX_EVENTS / 10);
        }
        self.events.push(e);
    }
}

/// The `metrics.jsonl`-like record of an epoch, for `ctx.history` (a non-finite
/// number is `null`, as there).
fn epoch_record(r: &Run, decision: &Value) -> Value {
    let s = r.settings;
    let m = r.metrics;
    json!({
        "epoch": r.epoch, "step": r.step, "epochs": s.epochs, "lr": s.lr,
        "batch_size": s.batch_size, "accumulation": s.accumulation,
        "train_loss": m.train_loss, "train_acc": m.train_acc,
        "val_loss": m.val_loss, "val_acc": m.val_acc,
        "val_rmse": m.val_rmse, "val_mae": m.val_mae, "val_r2": m.val_r2,
        "policy": decision.get("metrics").cloned().unwrap_or(json!({})),
    })
}

fn load_error(py: Python<'_>, e: &LoadError) -> PyErr {
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

/// A Python value as JSON: None, bool, int, float, str, list, tuple, dict (str keys),
/// or anything `float()` takes (a numpy or torch scalar).
fn to_json(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(json!(i));
        }
        return Ok(json!(v.extract::<f64>()?));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, x) in d.iter() {
            let key: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("dict keys must be str"))?;
            m.insert(key, to_json(&x)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    let x: f64 = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "cannot be JSON: {}",
            v.get_type().name().map_or("?".into(), |n| n.to_string())
        ))
    })?;
    Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
}

/// JSON as Python values.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => i.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(to_py(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn search(path: Option<Vec<PathBuf>>) -> SearchPath {
    path.map_or_else(SearchPath::from_env, SearchPath::new)
}

/// `policy list`: one aligned line per name on the search path and in the library.
#[pyfunction]
#[pyo3(signature = (path=None))]
fn policy_list(py: Python<'_>, path: Option<Vec<PathBuf>>) -> Vec<String> {
    py.detach(|| library::list_lines(&search(path)))
}

/// `policy doc NAME`: its doc, hooks and parameters.
#[pyfunction]
#[pyo3(signature = (name, path=None))]
fn policy_doc(py: Python<'_>, name: &str, path: Option<Vec<PathBuf>>) -> PyResult<String> {
    py.detach(|| library::doc(name, &search(path)))
        .map_err(|e| load_error(py, &e))
}

/// `policy check NAME... [KEY=VALUE...]`: an `ok` line per policy; raises the first
/// load error after the lines it has.
#[pyfunction]
#[pyo3(signature = (names, params=vec![], path=None))]
fn policy_check(
    py: Python<'_>,
    names: Vec<String>,
    params: Vec<String>,
    path: Option<Vec<PathBuf>>,
) -> PyResult<(Vec<String>, Option<String>)> {
    let params = params
        .iter()
        .map(|p| p.parse::<Param>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| PyValueError::new_err(format!("param {m}")))?;
    let (lines, failed) = py.detach(|| library::check(&names, &params, &search(path)));
    Ok((lines, failed.map(|e| e.to_string())))
}

/// `policy test [WHICH...]` under `root`: (passed, failed, failures).
#[pyfunction]
#[pyo3(signature = (root=PathBuf::from("."), which=vec![], path=None))]
fn policy_test(
    py: Python<'_>,
    root: PathBuf,
    which: Vec<String>,
    path: Option<Vec<PathBuf>>,
) -> PyResult<(usize, usize, Vec<String>)> {
    let out = py
        .detach(|| testing::run(&root, &which, &search(path)))
        .map_err(PyValueError::new_err)?;
    Ok((out.passed, out.failed, out.failures))
}

/// The names of the embedded standard library.
#[pyfunction]
fn embedded() -> Vec<&'static str> {
    rudder_policy::EMBEDDED.iter().map(|(n, _)| *n).collect()
}

#[pymodule]
fn _rudder(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPolicies>()?;
    m.add("PolicyLoadError", m.py().get_type::<PolicyLoadError>())?;
    m.add_function(wrap_pyfunction!(policy_list, m)?)?;
    m.add_function(wrap_pyfunction!(policy_doc, m)?)?;
    m.add_function(wrap_pyfunction!(policy_check, m)?)?;
    m.add_function(wrap_pyfunction!(policy_test, m)?)?;
    m.add_function(wrap_pyfunction!(embedded, m)?)?;
    Ok(())
}
