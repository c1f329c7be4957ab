//! The sweep's population while its trials run: each trial's status, history and
//! lineage, the slots, and the scheduler (a sweep policy) called at every trial's
//! epoch end with the whole population. Its decisions become instructions a trial
//! picks up at its next hook (stop, pause, an exploit's checkpoint and settings),
//! trials queued (resume, start), and lines in the sweep's `events.jsonl`. A
//! scheduler that fails is recorded and the sweep goes on as with none.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use rudder_core::TrainOptions;
use rudder_core::config::TrainConfig;
use rudder_policy::sweep::{DRAWS, Reloaded, Report, Scheduler, Status, SweepDecision, TrialView};

use super::plan::Plan;
use super::{AppError, Trial};

/// Salt of the scheduler's draws (`sweep.random`), apart from the samples' stream.
const DRAW_SALT: u64 = 0x5eed_5c4e_d01e_0001;

/// What a trial is told at its next hook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Instruction {
    /// End now, checkpointed: `scheduler` (stopped) or `paused`.
    End(Status),
    /// Restore `checkpoints/TAG` (another trial's, copied), then these settings.
    Exploit { tag: String, decision: Value },
}

/// One trial of the population.
pub(crate) struct Slot {
    pub(crate) plan: Plan,
    pub(crate) view: TrialView,
    /// Instructions not yet delivered.
    pub(crate) pending: Vec<Instruction>,
    /// How its current segment ends, once told to end.
    pub(crate) ending: Option<Status>,
    /// Its exploits: `{epoch, from, from_epoch, settings}`.
    pub(crate) lineage: Vec<Value>,
    /// Whether it has trained before (a later run resumes from its checkpoint).
    pub(crate) started: bool,
    /// Its result after its last segment.
    pub(crate) result: Option<Result<Trial, AppError>>,
    /// The settings a scheduler started it with (`None`: the command planned it).
    pub(crate) start: Option<Map<String, Value>>,
    /// Its tasks on a cluster (`--launcher slurm`).
    pub(crate) tasks: Option<super::attempts::Tasks>,
}

impl Slot {
    /// Plan `p`, the `number`-th trial, not started yet.
    pub(crate) fn new(p: Plan, number: usize, start: Option<Map<String, Value>>) -> Slot {
        Slot {
            view: TrialView {
                id: p.name.clone(),
                number,
                settings: settings_of(&p),
                status: Status::Pending,
                history: Vec::new(),
            },
            plan: p,
            pending: Vec::new(),
            ending: None,
            lineage: Vec::new(),
            started: false,
            result: None,
            start,
            tasks: None,
        }
    }
}

pub(crate) struct State {
    pub(crate) slots: Vec<Slot>,
    pub(crate) queue: VecDeque<usize>,
    pub(crate) running: usize,
    pub(crate) scheduler: Option<Scheduler>,
    /// Reports so far (the draws' stream position).
    pub(crate) reports: u64,
    pub(crate) exploits: usize,
}

/// The population, shared by the trial threads.
pub(crate) struct Coordinator {
    pub(crate) state: Mutex<State>,
    wake: Condvar,
    pub(crate) cfg: TrainConfig,
    pub(crate) base: TrainOptions,
    pub(crate) metric: rudder_core::metric::Metric,
    pub(crate) jobs: usize,
    /// The command's arguments after `sweep`, for `--resume`.
    pub(crate) args: Vec<String>,
    /// Its trials are Slurm tasks (`--launcher slurm`).
    pub(crate) slurm: bool,
    /// The sweep's own control channel (`console.rs`).
    pub(crate) console: Mutex<rudder_run::control::Reader>,
}

/// The settings a scheduler sees and an exploit may change: the searched ones, and
/// the trainer's own as planned.
pub(crate) fn settings_of(p: &Plan) -> Map<String, Value> {
    let mut m: Map<String, Value> = p.settings.iter().cloned().collect();
    let c = &p.cfg;
    m.insert("lr".into(), json!(c.lr));
    m.insert("batch_size".into(), json!(c.batch_size));
    m.insert("momentum".into(), json!(c.momentum));
    m.insert("weight_decay".into(), json!(c.weight_decay));
    m.insert("accumulation".into(), json!(c.accumulation));
    m
}

/// The keys a decision can set mid-run.
pub(super) const LIVE_KEYS: [&str; 5] = [
    "lr",
    "batch_size",
    "momentum",
    "weight_decay",
    "accumulation",
];

impl Coordinator {
    pub(crate) fn new(
        cfg: &TrainConfig,
        base: &TrainOptions,
        plans: Vec<Plan>,
        scheduler: Option<Scheduler>,
        metric: rudder_core::metric::Metric,
        jobs: usize,
    ) -> Coordinator {
        let slots: Vec<Slot> = plans
            .into_iter()
            .enumerate()
            .map(|(i, p)| Slot::new(p, i, None))
            .collect();
        Coordinator {
            state: Mutex::new(State {
                queue: (0..slots.len()).collect(),
                slots,
                running: 0,
                scheduler,
                reports: 0,
                exploits: 0,
            }),
            wake: Condvar::new(),
            cfg: cfg.clone(),
            base: base.clone(),
            metric,
            jobs,
            args: Vec::new(),
            slurm: false,
            console: Mutex::new(rudder_run::control::Reader::open(&cfg.out)),
        }
    }

    /// `sweep.json` as it stands, for `--resume` (written whole, atomically, after
    /// every report and every trial's end; a failure is said, never fatal).
    pub(crate) fn save(&self, st: &State) {
        let v = json!({
            "state": "running",
            "launcher": if self.slurm { "slurm" } else { "local" },
            "args": self.args,
            "metric": self.metric,
            "trials": st.slots.iter().map(entry).collect::<Vec<_>>(),
            "scheduler": st.scheduler.as_ref().map(|s| json!({
                "name": s.name(), "version": s.version(), "this": s.this(), "reports": st.reports,
            })),
        });
        let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
        let file = self.cfg.out.join("sweep.json");
        if let Err(e) = rudder_run::files::write_atomic(&file, text.as_bytes()) {
            say(&format!("cannot write {}: {e}", file.display()));
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next trial to run (marked running), waiting while the others run; `None`
    /// when every trial has finished (or after Ctrl-C). When nothing runs and nothing
    /// waits, paused trials resume, the least trained first.
    pub(crate) fn next(&self) -> Option<usize> {
        let mut st = self.lock();
        loop {
            if rudder_core::interrupt::requested() {
                return None;
            }
            if let Some(i) = st.queue.pop_front() {
                if st.slots[i].view.status.finished() {
                    continue;
                }
                st.slots[i].view.status = Status::Running;
                st.slots[i].ending = None;
                st.running += 1;
                self.save(&st);
                return Some(i);
            }
            if st.running == 0 {
                let mut paused: Vec<usize> = (0..st.slots.len())
                    .filter(|&i| st.slots[i].view.status == Status::Paused)
                    .collect();
                if paused.is_empty() {
                    self.wake.notify_all();
                    return None;
                }
                paused.sort_by_key(|&i| st.slots[i].view.history.len());
                for i in paused {
                    st.slots[i].view.status = Status::Pending;
                    st.queue.push_back(i);
                }
                continue;
            }
            // Woken by a trial's end or report, or to read the sweep's channel.
            st = self
                .wake
                .wait_timeout(st, std::time::Duration::from_millis(500))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if self.heed_console(&mut st) {
                self.save(&st);
            }
        }
    }

    /// Trial `i`'s segment ended with `result`: its status by how it was told to
    /// end (or done), its slot freed.
    pub(crate) fn finished(&self, i: usize, result: Result<Trial, AppError>) {
        let mut st = self.lock();
        self.finished_in(&mut st, i, result);
        self.save(&st);
        self.wake.notify_all();
    }

    /// [`Coordinator::finished`] with the population's lock held.
    pub(crate) fn finished_in(&self, st: &mut State, i: usize, result: Result<Trial, AppError>) {
        let s = &mut st.slots[i];
        s.started = true;
        if matches!(&result, Ok(t) if t.interrupted) {
            // Ctrl-C: it checkpointed mid-run and resumes with the sweep.
            s.view.status = Status::Running;
            st.running = st.running.saturating_sub(1);
            return;
        }
        s.view.status = match (&result, s.ending) {
            // Paused at its last epoch: nothing is left to resume.
            (Ok(t), Some(Status::Paused)) if t.epochs_run >= s.plan.cfg.epochs => Status::Done,
            (Ok(_), Some(Status::Paused)) => Status::Paused,
            (Ok(_), Some(Status::Stopped)) => Status::Stopped,
            _ => Status::Done,
        };
        let mut result = result;
        if let Ok(t) = &mut result
            && s.view.status == Status::Done
            && s.ending == Some(Status::Paused)
        {
            // A pause at its last epoch ended nothing early.
            t.stop_reason = None;
        }
        s.result = Some(result);
        st.running = st.running.saturating_sub(1);
    }

    /// The instructions for trial `i` now, delivered.
    pub(crate) fn take(&self, i: usize) -> Vec<Instruction> {
        take_in(&mut self.lock(), i)
    }

    /// Trial `i` finished an epoch with `line`: the scheduler's turn.
    pub(crate) fn report(&self, i: usize, line: Value) {
        let mut st = self.lock();
        let heeded = self.heed_console(&mut st);
        if self.report_in(&mut st, i, line) || heeded {
            self.save(&st);
            self.wake.notify_all();
        }
    }

    /// [`Coordinator::report`] with the population's lock held: whether a scheduler
    /// was asked.
    pub(crate) fn report_in(&self, st: &mut State, i: usize, line: Value) -> bool {
        st.slots[i].view.history.push(line);
        if st.scheduler.is_none() {
            return false;
        }
        if let Some(d) = self.ask(st, i) {
            self.carry_out(st, i, d);
        }
        true
    }

    /// Calls the scheduler (reloading it first when its file changed).
    fn ask(&self, st: &mut State, i: usize) -> Option<SweepDecision> {
        let draws = draws(self.cfg.seed, st.reports);
        st.reports += 1;
        let views: Vec<TrialView> = st.slots.iter().map(|s| s.view.clone()).collect();
        let id = views[i].id.clone();
        let step = views[i].history.len();
        let scheduler = st.scheduler.as_mut()?;
        match scheduler.reload_if_changed() {
            Some(Reloaded::Ok(v)) => {
                say(&format!(
                    "scheduler {} reloaded (version {v})",
                    scheduler.name()
                ));
                self.event(json!({"kind": "reload", "policy": scheduler.name(), "version": v}));
            }
            Some(Reloaded::Failed(e)) => {
                say(&format!(
                    "scheduler reload failed, the previous version runs on: {e}"
                ));
                self.event(json!({"kind": "reload_failed", "policy": scheduler.name(), "message": e.message, "file": e.file, "line": e.line, "column": e.column}));
            }
            None => {}
        }
        let mode = match self.metric.goal() {
            rudder_core::metric::Goal::Min => "min",
            _ => "max",
        };
        let report = Report {
            trials: &views,
            trial: i,
            metric: self.metric.name(),
            mode,
            epochs: self.cfg.epochs,
            jobs: self.jobs,
            random: &draws,
        };
        match scheduler.on_report(&report) {
            Ok(d) if d.is_empty() => None,
            Ok(d) => {
                self.event(json!({"kind": "decision", "policy": scheduler.name(), "trial": id, "step": step, "decision": d}));
                Some(d)
            }
            Err(e) => {
                say(&format!(
                    "scheduler {} failed at {id}'s epoch {step}; this report decides nothing: {e}",
                    scheduler.name()
                ));
                self.event(json!({"kind": "policy_error", "policy": scheduler.name(), "trial": id, "step": step, "message": e.message, "file": e.file, "line": e.line, "column": e.column}));
                None
            }
        }
    }

    /// A line in the sweep's `events.jsonl` (one append; a failure is said, never
    /// fatal).
    pub(crate) fn event(&self, mut line: Value) {
        line["time"] = json!(rudder_core::time::now_iso());
        let mut text = line.to_string();
        text.push('\n');
        let path: PathBuf = self.cfg.out.join("events.jsonl");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = written {
            say(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

/// The instructions for trial `i` now, delivered (its `ending` noted).
pub(crate) fn take_in(st: &mut State, i: usize) -> Vec<Instruction> {
    let s = &mut st.slots[i];
    let out = std::mem::take(&mut s.pending);
    for ins in &out {
        if let Instruction::End(status) = ins {
            s.ending = Some(*status);
        }
    }
    out
}

/// A trial's entry in the `sweep.json` written while the sweep runs.
fn entry(s: &Slot) -> Value {
    let done = s.result.as_ref().and_then(|r| r.as_ref().ok());
    let mut m = Map::new();
    m.insert("dir".into(), s.plan.name.clone().into());
    m.insert("status".into(), s.view.status.name().into());
    m.insert(
        "settings".into(),
        super::space::settings_json(&s.plan.settings),
    );
    m.insert("epochs_reported".into(), s.view.history.len().into());
    m.insert("lineage".into(), Value::Array(s.lineage.clone()));
    if let Some(t) = done {
        m.insert("diverged".into(), t.diverged.into());
        m.insert("stop_reason".into(), t.stop_reason.clone().into());
    }
    if let Some(start) = &s.start {
        m.insert("start".into(), Value::Object(start.clone()));
    }
    if let Some(t) = &s.tasks {
        m.insert("slurm".into(), t.json());
    }
    Value::Object(m)
}

/// The draws of report `n` of a sweep seeded `seed`.
fn draws(seed: u64, n: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ DRAW_SALT);
    rng.set_stream(n);
    (0..DRAWS).map(|_| rng.random::<f64>()).collect()
}

pub(super) fn say(m: &str) {
    rudder_core::term::info(&format!("rudder sweep: {m}"));
}
