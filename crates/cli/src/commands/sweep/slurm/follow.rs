//! The coordinator's side of a sweep on Slurm: ten times a second it reads what the
//! tasks recorded (their start and end under `slurm/attempts/`, each trial's
//! `slurm/reports/`), reports each new epoch to the scheduler, tells the trials its
//! decisions through their `control.jsonl` and answers each report
//! (`slurm/acks/`, which a trial under a scheduler waits for); once a second it asks
//! Slurm where each task stands, resubmits tasks that ended without finishing their
//! trial (up to `--max-retries`), and submits the trials the scheduler queues
//! (resumed, started) while fewer than `--jobs` tasks are queued or running.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use rudder_core::config::ConfigError;
use rudder_policy::sweep::Status;

use super::super::attempts::{Attempt, Tasks, now, terminal};
use super::super::coord::{Instruction, State, say, take_in};
use super::super::{AppError, record};
use super::Slurm;
use super::queue::{self, TaskState};
use super::task::record_path;

/// How long a task may run without its start record before the folder is taken
/// for one its node cannot see.
const START_GRACE_S: f64 = 120.0;

impl Slurm<'_> {
    /// One look at every trial: `Ok(true)` once none is queued, running or paused.
    pub(super) fn tick(&mut self) -> Result<bool, AppError> {
        let coord = self.coord;
        let mut st = coord.lock();
        // Slurm is asked every ASK_EVERY looks; a task's end is judged only then,
        // on states asked after every active task was submitted.
        let asked = self.ticks.is_multiple_of(super::ASK_EVERY);
        self.ticks += 1;
        if asked {
            super::heed::beat(&coord.cfg.out);
            match self.states(&st) {
                Some(s) => self.states = s,
                // Slurm did not answer: ask again at the next look.
                None => self.ticks = 0,
            }
        }
        let asked = asked && self.ticks > 0;
        for i in 0..st.slots.len() {
            if !st.slots[i].tasks.as_ref().is_some_and(Tasks::active) {
                continue;
            }
            self.started(&mut st, i);
            self.epochs(&mut st, i);
            if asked {
                let states = std::mem::take(&mut self.states);
                let r = self.ended(&mut st, i, &states);
                self.states = states;
                r?;
            }
        }
        if coord.heed_console(&mut st) {
            self.dirty = true;
        }
        self.deliver(&mut st);
        self.cancel_unneeded(&mut st);
        self.resume_paused(&mut st);
        self.submit_queued(&mut st);
        let running = self.active(&st);
        if running != st.running {
            self.dirty = true;
        }
        st.running = running;
        if self.dirty || asked {
            coord.save(&st);
            self.dirty = false;
        }
        let paused = st.slots.iter().any(|s| s.view.status == Status::Paused);
        Ok(st.running == 0 && st.queue.is_empty() && !paused)
    }

    /// Slots with a task queued or running.
    pub(super) fn active(&self, st: &State) -> usize {
        st.slots
            .iter()
            .filter(|s| s.tasks.as_ref().is_some_and(Tasks::active))
            .count()
    }

    /// Slurm's word on every task still active; `None` when it could not be asked.
    fn states(&self, st: &State) -> Option<HashMap<String, TaskState>> {
        let jobs: BTreeSet<String> = st
            .slots
            .iter()
            .filter_map(|s| s.tasks.as_ref()?.current().filter(|a| !a.over()))
            .filter_map(|a| a.job.split('_').next().map(str::to_string))
            .collect();
        let mut all = HashMap::new();
        for j in jobs {
            all.extend(queue::states(&j).ok()?);
        }
        Some(all)
    }

    /// Trial `i`'s task started (or started again after a requeue).
    fn started(&mut self, st: &mut State, i: usize) {
        let dir = self.coord.cfg.out.clone();
        let s = &mut st.slots[i];
        let Some(t) = s.tasks.as_mut() else { return };
        let Some(a) = t.current_mut() else { return };
        let next = if a.started.is_some() {
            a.restart + 1
        } else {
            a.restart
        };
        let Some(rec) = read(&record_path(&dir, &a.job, next, "start")) else {
            return;
        };
        let at = rec["time"].as_f64().unwrap_or_else(now);
        if a.started.is_some() {
            // Requeued (its warning, `scontrol requeue`, a preemption) and running again.
            let end = read(&record_path(&dir, &a.job, a.restart, "end"));
            let left = end.as_ref().and_then(|e| e["time"].as_f64()).unwrap_or(at);
            a.ended = Some(left);
            a.state = "REQUEUED".into();
            a.outcome = end.and_then(|e| e["outcome"].as_str().map(str::to_string));
            let mut b = Attempt::new(a.job.clone(), left);
            b.restart = next;
            t.attempts.push(b);
        }
        let Some(a) = t.current_mut() else { return };
        a.started = Some(at);
        a.state = "RUNNING".into();
        self.dirty = true;
        a.node = rec["node"].as_str().map(str::to_string);
        s.started = true;
        if s.view.status == Status::Pending {
            s.view.status = Status::Running;
        }
    }

    /// Trial `i`'s epochs not yet reported (its `slurm/reports/`), each reported to
    /// the scheduler (none once it was told to end), then answered (`slurm/acks/`):
    /// the trial waits for that answer under a scheduler.
    fn epochs(&mut self, st: &mut State, i: usize) {
        let out = self.coord.cfg.out.clone();
        let name = st.slots[i].plan.name.clone();
        let Ok(lines) = rudder_run::files::read_jsonl(&super::heed::reports(&out, &name)) else {
            return;
        };
        let Some(newest) = lines.iter().filter_map(|l| l["epoch"].as_u64()).max() else {
            return;
        };
        for line in lines {
            let next = st.slots[i].view.history.len();
            if line["epoch"].as_u64() != Some(next as u64) || st.slots[i].ending.is_some() {
                continue;
            }
            self.coord.report_in(st, i, line);
            self.deliver(st);
            self.dirty = true;
        }
        let ack = super::heed::ack(&out, &name);
        let answered = read(&ack).and_then(|a| a["epochs"].as_u64()).unwrap_or(0);
        if newest + 1 > answered {
            let text = format!("{}\n", json!({"epochs": newest + 1}));
            if let Err(e) = rudder_run::files::write_atomic(&ack, text.as_bytes()) {
                say(&format!("cannot write {}: {e}", ack.display()));
            }
        }
    }

    /// Trial `i`'s task ended (by Slurm's word): finished, resubmitted or failed.
    fn ended(
        &mut self,
        st: &mut State,
        i: usize,
        states: &HashMap<String, TaskState>,
    ) -> Result<(), AppError> {
        let dir = self.coord.cfg.out.clone();
        let Some(a) = st.slots[i].tasks.as_ref().and_then(Tasks::current).cloned() else {
            return Ok(());
        };
        let known = states.get(&a.job);
        let state = known.map_or("GONE", |k| k.state.as_str()).to_string();
        if !terminal(&state) {
            return self.unseen_start(st, &a, known, i);
        }
        self.dirty = true;
        let end = read(&record_path(&dir, &a.job, a.restart, "end"));
        let outcome = end
            .as_ref()
            .and_then(|e| e["outcome"].as_str().map(str::to_string));
        let exit = known.and_then(|k| k.exit);
        if exit == Some(i32::from(crate::error::NOT_SHARED)) && a.started.is_none() {
            return Err(self.not_shared(st, &a, known));
        }
        {
            let t = st.slots[i].tasks.as_mut().expect("an active task");
            let cur = t.current_mut().expect("an attempt");
            cur.ended = Some(
                end.as_ref()
                    .and_then(|e| e["time"].as_f64())
                    .unwrap_or_else(now),
            );
            cur.state = state.clone();
            cur.exit = exit;
            cur.outcome = outcome.clone();
            if cur.node.is_none() {
                cur.node = known.and_then(|k| k.node.clone());
            }
        }
        if outcome.as_deref() == Some("done") {
            let e = end.unwrap_or_default();
            let s = &st.slots[i];
            let r = record::read(
                &dir.join(&s.plan.name),
                &s.plan,
                self.coord.metric,
                e["diverged"].as_bool().unwrap_or(false),
                e["stop_reason"].as_str().map(str::to_string),
            );
            self.coord.finished_in(st, i, r);
            return Ok(());
        }
        self.retry(st, i, &state, exit);
        Ok(())
    }

    /// An attempt that ended unfinished: resubmitted, or the trial failed.
    fn retry(&self, st: &mut State, i: usize, state: &str, exit: Option<i32>) {
        let name = st.slots[i].plan.name.clone();
        let failures = st.slots[i].tasks.as_ref().map_or(0, Tasks::failures);
        let how = match exit {
            Some(e) => format!("{state} (exit {e})"),
            None => state.to_string(),
        };
        self.coord.event(json!({"kind": "task_ended", "trial": name, "state": state, "exit": exit, "attempt": failures}));
        if failures <= self.launch.max_retries && st.slots[i].ending != Some(Status::Stopped) {
            say(&format!(
                "{name}: its task ended {how} before the trial finished; resubmitted (retry {failures} of {})",
                self.launch.max_retries
            ));
            st.slots[i].view.status = Status::Pending;
            st.queue.push_front(i);
            return;
        }
        let why = if st.slots[i].ending == Some(Status::Stopped) {
            format!("stopped by the scheduler; its task ended {how}")
        } else {
            format!("failed: its task ended {how}, {} attempts", failures)
        };
        // A warning: said under -q too.
        rudder_core::term::say(&format!("rudder sweep: warning: {name}: {why}"));
        self.coord
            .event(json!({"kind": "trial_failed", "trial": name, "message": why}));
        let s = &mut st.slots[i];
        let run = self.coord.cfg.out.join(&s.plan.name);
        let mut r = if run.join("metrics.jsonl").is_file() {
            record::read(&run, &s.plan, self.coord.metric, false, Some(why.clone()))
        } else {
            let mut t = record::not_run(&s.plan);
            t.stop_reason = Some(why.clone());
            t.run.subtitle = why.clone();
            Ok(t)
        };
        if let Ok(t) = &mut r {
            t.stop_reason = Some(why.clone());
        }
        s.result = Some(r);
        s.started = true;
        if s.ending == Some(Status::Stopped) {
            s.view.status = Status::Stopped;
        } else {
            s.view.status = Status::Failed;
            if let Some(t) = s.tasks.as_mut() {
                t.failed = Some(why);
            }
        }
    }

    /// A task Slurm runs that has not recorded its start within the grace: its node
    /// cannot write the folder the coordinator reads.
    fn unseen_start(
        &mut self,
        st: &State,
        a: &Attempt,
        known: Option<&TaskState>,
        i: usize,
    ) -> Result<(), AppError> {
        let running = known.is_some_and(|k| k.state == "RUNNING") && a.started.is_none();
        if !running {
            self.running_since.remove(&i);
            return Ok(());
        }
        let since = *self.running_since.entry(i).or_insert_with(now);
        if now() - since < START_GRACE_S {
            return Ok(());
        }
        Err(self.not_shared(st, a, known))
    }

    /// Every task of the sweep cancelled, and the error that says why.
    fn not_shared(&self, st: &State, a: &Attempt, known: Option<&TaskState>) -> AppError {
        let jobs: Vec<String> = st
            .slots
            .iter()
            .filter_map(|s| s.tasks.as_ref()?.current().filter(|a| !a.over()))
            .map(|a| a.job.clone())
            .collect();
        queue::cancel(&jobs);
        let node = a
            .node
            .clone()
            .or_else(|| known.and_then(|k| k.node.clone()));
        not_shared_error(&self.coord.cfg.out, a, node.as_deref())
    }

    /// Trial's instructions (the scheduler's decisions) told through the control
    /// channel of every trial that trains.
    pub(super) fn deliver(&self, st: &mut State) {
        for i in 0..st.slots.len() {
            if st.slots[i].pending.is_empty() || !st.slots[i].started {
                continue;
            }
            let name = st.slots[i].plan.name.clone();
            let run = self.coord.cfg.out.join(&name);
            for ins in take_in(st, i) {
                let line = control_line(&ins);
                if let Err(e) = rudder_run::control::append(&run, &line.to_string()) {
                    say(&format!("cannot tell {name} {line}: {e}"));
                    self.coord.event(
                        json!({"kind": "control_failed", "trial": name, "message": e.to_string()}),
                    );
                }
            }
        }
    }

    /// Tasks still queued in Slurm for trials the scheduler finished before they
    /// started: cancelled.
    fn cancel_unneeded(&self, st: &mut State) {
        for s in &mut st.slots {
            let finished = s.view.status.finished();
            let Some(t) = s.tasks.as_mut() else { continue };
            let Some(a) = t.current_mut() else { continue };
            if finished && !a.over() && a.started.is_none() {
                queue::cancel(std::slice::from_ref(&a.job));
                a.ended = Some(now());
                a.state = "CANCELLED".into();
                a.outcome = Some("not needed".into());
            }
            if finished && s.result.is_none() {
                let run = self.coord.cfg.out.join(&s.plan.name);
                s.result = Some(if run.join("metrics.jsonl").is_file() {
                    record::read(
                        &run,
                        &s.plan,
                        self.coord.metric,
                        false,
                        Some("scheduler".into()),
                    )
                } else {
                    Ok(record::not_run(&s.plan))
                });
            }
        }
    }

    /// Nothing queued or running: the paused trials resume, the least trained first
    /// (as a local sweep's do).
    fn resume_paused(&self, st: &mut State) {
        if self.active(st) > 0 || !st.queue.is_empty() {
            return;
        }
        let mut paused: Vec<usize> = (0..st.slots.len())
            .filter(|&i| st.slots[i].view.status == Status::Paused)
            .collect();
        paused.sort_by_key(|&i| st.slots[i].view.history.len());
        for i in paused {
            st.slots[i].view.status = Status::Pending;
            st.slots[i].ending = None;
            st.queue.push_back(i);
        }
    }

    /// The queued trials submitted, one task each, while fewer than `--jobs` are
    /// queued or running.
    pub(super) fn submit_queued(&mut self, st: &mut State) {
        while self.active(st) < self.coord.jobs.max(1) {
            let Some(i) = st.queue.pop_front() else { break };
            let s = &st.slots[i];
            if s.view.status.finished() || s.tasks.as_ref().is_some_and(Tasks::active) {
                continue;
            }
            self.submit_one(st, i);
        }
    }
}

/// What a control line says for an instruction.
fn control_line(ins: &Instruction) -> Value {
    match ins {
        Instruction::End(Status::Paused) => {
            json!({"stop": true, "reason": "paused by the scheduler", "id": "sweep"})
        }
        Instruction::End(_) => json!({"stop": true, "reason": "scheduler", "id": "sweep"}),
        Instruction::Exploit { tag, decision } => {
            let mut d = decision.clone();
            d["rollback"] = json!(tag);
            d["id"] = json!("sweep");
            d
        }
    }
}

/// A record a task wrote (`None` while it has not).
fn read(path: &std::path::Path) -> Option<Value> {
    let bytes = rudder_core::input::read(path, 1 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The error of a sweep whose folder a node cannot see.
fn not_shared_error(sweep: &std::path::Path, a: &Attempt, node: Option<&str>) -> AppError {
    ConfigError::invalid(
        format!("--out {}", sweep.display()),
        format!(
            "task {} on node {} cannot see this folder as rudder sweep writes it (its slurm/marker, its records): a sweep on Slurm needs its folder on a file system every node shares; see {}/slurm/logs/",
            a.job,
            node.unwrap_or("?"),
            sweep.display()
        ),
    )
    .into()
}
