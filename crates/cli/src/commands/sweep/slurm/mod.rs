//! `rudder sweep --launcher slurm`: the trials as a Slurm job array. This process is
//! the coordinator: it writes the sweep's `slurm/` folder (the batch script, the
//! marker, each trial's options in `trials.json`), submits the array with `sbatch`,
//! and follows the tasks (`follow`); each task trains one trial (`task`, as
//! `rudder sweep-task`). Everything between them goes through the sweep's folder,
//! which the nodes must share: the trials' run folders, their control channels,
//! the tasks' start and end records.

mod follow;
mod heed;
mod queue;
mod script;
mod task;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde_json::{Value, json};

use rudder_core::config::{ConfigError, TrainConfig};

use super::AppError;
use super::attempts::{Attempt, Tasks, now};
use super::coord::{Coordinator, State, say};
use crate::cli::SweepOptions;

pub(crate) use task::command as task;

/// How often the coordinator looks at the trials' records (a trial under a
/// scheduler waits for it at each epoch's end).
const POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Slurm is asked every this many looks (each question is a process).
const ASK_EVERY: u64 = 10;

/// What `--launcher slurm` was given.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// `--slurm-arg`s.
    pub(crate) args: Vec<String>,
    pub(crate) warning: script::Warning,
    pub(crate) max_retries: usize,
    pub(crate) detach: bool,
    pub(crate) dry_run: bool,
}

/// The launcher `o` asks for: `None` for local; the Slurm options checked (exit 2
/// for a Slurm option without `--launcher slurm`, or no `sbatch` to submit with).
pub(crate) fn launch(o: &SweepOptions) -> Result<Option<Launch>, AppError> {
    let from_file = match &o.train.config {
        Some(path) => rudder_core::TrainOptions::from_file(path)?.launcher,
        None => None,
    };
    let slurm = match o.launcher.as_deref() {
        Some(l) => l == "slurm",
        None => from_file == Some(rudder_core::SweepLauncher::Slurm),
    };
    if !slurm {
        let given = [
            (o.dry_run, "--dry-run"),
            (o.detach, "--detach"),
            (!o.slurm_arg.is_empty(), "--slurm-arg"),
        ];
        if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
            return Err(ConfigError::invalid(*flag, "is for --launcher slurm").into());
        }
        return Ok(None);
    }
    let warning = script::Warning::parse(&o.slurm_signal)
        .map_err(|e| ConfigError::invalid("--slurm-signal", e))?;
    if let Some((arg, n)) = ranks(&o.slurm_arg)
        && n > 1
        && !cfg!(feature = "mpi")
    {
        return Err(ConfigError::invalid(
            format!("--slurm-arg {}", rudder_core::text::clip(arg)),
            format!(
                "{n} processes per trial need a rudder built with --features mpi (this one is not)"
            ),
        )
        .into());
    }
    if !o.dry_run && !queue::on_path("sbatch") {
        return Err(ConfigError::invalid(
            "--launcher slurm",
            "sbatch is not on PATH: this machine needs Slurm's client commands (sbatch, squeue, scancel) to submit and follow the trials; --dry-run prints the batch script without them, --launcher local runs the trials here",
        )
        .into());
    }
    Ok(Some(Launch {
        args: o.slurm_arg.clone(),
        warning,
        max_retries: o.max_retries,
        detach: o.detach,
        dry_run: o.dry_run,
    }))
}

/// The processes per trial the `--slurm-arg`s ask for (`--ntasks=N`, `-n N`,
/// `--ntasks-per-node=N`), with the argument that says it.
fn ranks(args: &[String]) -> Option<(&str, usize)> {
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let t = a.trim();
        let value = ["--ntasks=", "--ntasks-per-node=", "--ntasks ", "-n "]
            .iter()
            .find_map(|p| t.strip_prefix(p).map(str::to_string))
            .or_else(|| {
                (t == "--ntasks" || t == "-n")
                    .then(|| it.peek().map(|v| v.to_string()))
                    .flatten()
            })
            .or_else(|| {
                t.strip_prefix("-n")
                    .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
                    .map(str::to_string)
            });
        if let Some(n) = value.and_then(|v| v.trim().parse().ok()) {
            return Some((a.as_str(), n));
        }
    }
    None
}

/// The coordinator of a sweep on Slurm.
pub(crate) struct Slurm<'a> {
    coord: &'a Coordinator,
    launch: &'a Launch,
    script: PathBuf,
    /// When a task was first seen running without its start record.
    running_since: HashMap<usize, f64>,
    /// Trials written into `trials.json` so far.
    written: usize,
    /// Looks so far.
    ticks: u64,
    /// Slurm's word at the last question.
    states: HashMap<String, queue::TaskState>,
    /// Something changed since `sweep.json` was written.
    dirty: bool,
}

/// The batch script of the sweep `cfg` with `tasks` trials, `jobs` at a time, for
/// `--dry-run` (its marker's token shown as `TOKEN`).
pub(crate) fn dry_run(cfg: &TrainConfig, launch: &Launch, tasks: usize, jobs: usize) -> String {
    let sweep = absolute(&cfg.out);
    let rudder = rudder_bin();
    script::Script {
        sweep: &sweep,
        rudder: &rudder,
        tasks,
        jobs,
        args: &launch.args,
        warning: &launch.warning,
        token: "TOKEN",
    }
    .text()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The binary the tasks run: this one.
fn rudder_bin() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rudder"))
}

/// Runs the trials of `coord` as Slurm tasks: `Ok(false)` when detached (they go
/// on; `--resume` follows them), `Ok(true)` once every trial has ended.
pub(crate) fn run_all(coord: &Coordinator, launch: &Launch, fresh: bool) -> Result<bool, AppError> {
    let mut s = Slurm {
        coord,
        launch,
        script: coord.cfg.out.join("slurm").join("sweep.sbatch"),
        running_since: HashMap::new(),
        written: 0,
        ticks: 0,
        states: HashMap::new(),
        dirty: true,
    };
    let token = s.prepare()?;
    {
        let mut st = coord.lock();
        if fresh {
            s.submit_array(&mut st, &token)?;
        } else {
            s.submit_queued(&mut st);
        }
        st.running = s.active(&st);
        coord.save(&st);
    }
    if launch.detach {
        return Ok(false);
    }
    loop {
        if rudder_core::interrupt::requested() {
            let st = coord.lock();
            coord.save(&st);
            let jobs: std::collections::BTreeSet<String> = st
                .slots
                .iter()
                .filter_map(|s| s.tasks.as_ref()?.current().filter(|a| !a.over()))
                .filter_map(|a| a.job.split('_').next().map(str::to_string))
                .collect();
            let dir = coord.cfg.out.display();
            return Err(AppError::Interrupted(format!(
                "interrupted; the sweep's tasks go on in Slurm (job {}; scancel stops them): rudder sweep --resume {dir} follows them again",
                jobs.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        if s.tick()? {
            return Ok(true);
        }
        std::thread::sleep(POLL);
    }
}

impl Slurm<'_> {
    /// The `slurm/` folder: its logs and records folders, the marker (a new token,
    /// or the one a resumed sweep has), the trials and the batch script.
    fn prepare(&mut self) -> Result<String, AppError> {
        let dir = self.coord.cfg.out.join("slurm");
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e: std::io::Error| ConfigError::file(p, e)
        };
        for sub in ["logs", "attempts", "reports", "acks"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir.join(sub)))?;
        }
        let marker = dir.join(task::MARKER);
        let token = match std::fs::read_to_string(&marker) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = format!("{:032x}", rand::rng().random::<u128>());
                rudder_run::files::write_atomic(&marker, format!("{t}\n").as_bytes())
                    .map_err(io(&marker))?;
                t
            }
        };
        self.write_trials(&self.coord.lock())?;
        let n = self.coord.lock().slots.len();
        let text = script::Script {
            sweep: &absolute(&self.coord.cfg.out),
            rudder: &rudder_bin(),
            tasks: n,
            jobs: self.coord.jobs,
            args: &self.launch.args,
            warning: &self.launch.warning,
            token: &token,
        }
        .text();
        rudder_run::files::write_atomic(&self.script, text.as_bytes()).map_err(io(&self.script))?;
        Ok(token)
    }

    /// `slurm/trials.json`: each trial's folder name and options, by task index.
    fn write_trials(&mut self, st: &State) -> Result<(), AppError> {
        let out = absolute(&self.coord.cfg.out);
        let list: Vec<Value> = st
            .slots
            .iter()
            .map(|s| {
                let mut c = s.plan.cfg.clone();
                c.out = out.join(&s.plan.name);
                json!({"name": s.plan.name, "options": options_of(&c)})
            })
            .collect();
        let file = self.coord.cfg.out.join("slurm").join(task::TRIALS);
        let all = json!({"scheduler": st.scheduler.is_some(), "trials": list});
        let mut text = serde_json::to_string_pretty(&all).unwrap_or_default();
        text.push('\n');
        rudder_run::files::write_atomic(&file, text.as_bytes())
            .map_err(|e| ConfigError::file(file.display().to_string(), e))?;
        self.written = st.slots.len();
        Ok(())
    }

    /// The whole array, as the batch script has it.
    fn submit_array(&mut self, st: &mut State, _token: &str) -> Result<(), AppError> {
        let id = queue::submit(&self.script, None).map_err(|e| {
            ConfigError::invalid(format!("--launcher slurm {}", self.script.display()), e)
        })?;
        let at = now();
        let queued: Vec<usize> = st.queue.drain(..).collect();
        for i in queued {
            st.slots[i].tasks = Some(Tasks {
                task: i,
                attempts: vec![Attempt::new(format!("{id}_{i}"), at)],
                failed: None,
            });
        }
        say(&format!(
            "submitted job {id}: {} task(s), {} at a time ({})",
            st.slots.len(),
            self.coord.jobs,
            self.script.display()
        ));
        self.coord
            .event(json!({"kind": "submitted", "job": id, "tasks": st.slots.len()}));
        Ok(())
    }

    /// Trial `i` as one task of its own (`--array=i`): a retry, a resume, a new trial.
    fn submit_one(&mut self, st: &mut State, i: usize) {
        self.dirty = true;
        if st.slots.len() > self.written
            && let Err(e) = self.write_trials(st)
        {
            say(&format!("cannot write the trials: {e}"));
        }
        let name = st.slots[i].plan.name.clone();
        // A new segment: what it reports is the scheduler's again.
        st.slots[i].ending = None;
        let t = st.slots[i].tasks.get_or_insert_with(|| Tasks {
            task: i,
            ..Tasks::default()
        });
        match queue::submit(&self.script, Some(&i.to_string())) {
            Ok(id) => {
                t.attempts.push(Attempt::new(format!("{id}_{i}"), now()));
                self.coord
                    .event(json!({"kind": "submitted", "job": id, "trial": name}));
            }
            Err(why) => {
                let mut a = Attempt::new("-".into(), now());
                a.state = "SUBMIT_FAILED".into();
                a.ended = a.started.or(Some(a.submitted));
                t.attempts.push(a);
                say(&format!("{name}: {why}"));
                self.retry_after_submit(st, i, &why);
            }
        }
    }

    fn retry_after_submit(&mut self, st: &mut State, i: usize, why: &str) {
        self.coord.event(
            json!({"kind": "submit_failed", "trial": st.slots[i].plan.name, "message": why}),
        );
        st.slots[i].view.status = rudder_policy::sweep::Status::Pending;
        let failures = st.slots[i].tasks.as_ref().map_or(0, Tasks::failures);
        if failures <= self.launch.max_retries {
            // Tried again at the next tick.
            st.queue.push_back(i);
        } else {
            st.slots[i].view.status = rudder_policy::sweep::Status::Failed;
            let mut t = super::record::not_run(&st.slots[i].plan);
            t.stop_reason = Some(format!("failed: {why}"));
            st.slots[i].result = Some(Ok(t));
        }
    }
}

/// `cfg` as a `--config` file has it (a run's `config.json` without its records).
pub(super) fn options_of(cfg: &TrainConfig) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for k in ["resumes", "data_sha256", "model_sha256", "provenance"] {
            m.remove(k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::ranks;

    #[test]
    fn the_processes_per_trial_as_sbatch_takes_them() {
        let r =
            |a: &[&str]| ranks(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|x| x.1);
        assert_eq!(r(&["--ntasks=2"]), Some(2));
        assert_eq!(r(&["--time=1:00", "-n", "4"]), Some(4));
        assert_eq!(r(&["-n3"]), Some(3));
        assert_eq!(r(&["--ntasks-per-node=8"]), Some(8));
        assert_eq!(r(&["--nodes=2"]), None);
    }
}
