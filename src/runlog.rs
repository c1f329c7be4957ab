//! The run directory's logs: `config.json`, `metrics.jsonl`, `events.jsonl` and
//! `steps.jsonl`, each line written and flushed at once.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

/// Sizes of the run's logs when the checkpoint was taken; a resume cuts them back to
/// these, so nothing logged after the checkpoint is left twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LogSizes {
    pub metrics: u64,
    pub events: u64,
    pub steps: u64,
}

pub use rudder_policy::text::{QUOTE_MAX, clip, clip_quoted, fmt_num, nearest, one_line};

/// Writes `msg` and a newline to stderr. A closed or broken stderr is not an error:
/// the run goes on, its files are still written (SPEC section 9).
pub fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Writes `text` as it is to stderr, ignoring a closed or broken stderr.
pub fn say_text(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes `text` as it is to stdout, ignoring a closed or broken stdout.
pub fn out_text(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Writes `msg` and a newline to stdout, ignoring a closed or broken stdout.
pub fn out(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{msg}");
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub step: u64,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub accumulation: usize,
    pub train_loss: f64,
    /// Classification only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_acc: Option<f64>,
    pub val_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    /// Regression only: root mean squared error, mean absolute error (over all
    /// targets, in the targets' own units) and R^2 (averaged over the targets, as
    /// scikit-learn's `r2_score`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_r2: Option<f64>,
    pub epoch_time_s: f64,
    pub samples_per_s: f64,
    pub policy: std::collections::BTreeMap<String, f64>,
}

impl EpochRecord {
    /// The metric `name` (one of [`METRICS`]; NaN for any other name, or one this
    /// task does not have).
    pub fn metric(&self, name: &str) -> f64 {
        match name {
            "train_loss" => Some(self.train_loss),
            "train_acc" => self.train_acc,
            "val_loss" => Some(self.val_loss),
            "val_acc" => self.val_acc,
            "val_rmse" => self.val_rmse,
            "val_mae" => self.val_mae,
            "val_r2" => self.val_r2,
            _ => None,
        }
        .unwrap_or(f64::NAN)
    }

    /// As JSON, with non-finite numbers written as `null`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an epoch record serialises")
    }
}

/// The open log files of a run, and the run folder's lock; or, on the ranks other
/// than 0 of a many-process job, nothing: they write no file.
pub struct RunLog {
    dir: PathBuf,
    metrics: Option<File>,
    events: Option<File>,
    steps: Option<BufWriter<File>>,
    _lock: Option<Lock>,
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsynced, renamed
/// over it, and the folder fsynced. A reader (or a crash) sees the old file or the
/// new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `config` as pretty JSON in `dir/config.json`, atomically.
pub fn write_config(dir: &Path, config: &impl Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write_atomic(&dir.join("config.json"), &text)
}

/// The exclusive lock of a run folder, held while a process writes the run: `flock`
/// on the folder itself (deleting a file cannot undo it), with the holder's PID in
/// `DIR/.lock` for the message a second process gets.
pub struct Lock {
    _dir: File,
}

/// The name of the file that names a run folder's holder.
pub const LOCK_FILE: &str = ".lock";

/// The PID written in `dir/.lock`, read without following a link, blocking on a FIFO
/// or reading more than a PID.
fn holder(dir: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 24), &mut text).ok()?;
    let pid = text.trim();
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.to_string())
}

impl Lock {
    /// Takes `dir`'s lock, or says which process holds it (`flag` names the option
    /// that chose the folder).
    pub fn take(dir: &Path, flag: &str) -> Result<Lock, String> {
        let fault = |e: std::io::Error| format!("{flag} {}: {e}", dir.display());
        let folder = File::open(dir).map_err(fault)?;
        match folder.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = holder(dir).map_or("another process".to_string(), |pid| {
                    format!("another rudder (pid {pid})")
                });
                return Err(format!(
                    "{flag} {}: {who} is using this run folder; wait for it to end",
                    dir.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fault(e)),
        }
        // The PID, by a new file renamed into place: whatever `.lock` was (a link, a
        // hard link to someone's file) is replaced, never written through. Best
        // effort: the lock itself is the folder's.
        let _ = write_atomic(
            &dir.join(LOCK_FILE),
            format!("{}\n", std::process::id()).as_bytes(),
        );
        Ok(Lock { _dir: folder })
    }
}

/// Claims `dir` for a new run: it must be absent or empty (besides a lock file);
/// creates it and takes its lock.
pub fn claim(dir: &Path, flag: &str) -> Result<Lock, String> {
    let others = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK_FILE)
            .collect()
    };
    let refuse = |mut names: Vec<String>| {
        names.sort();
        let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 3 { ", ..." } else { "" };
        format!(
            "{flag} {}: not empty (holds {}{more}); a new run needs an absent or empty folder (to continue a run: --resume {})",
            dir.display(),
            clip(&shown),
            dir.display()
        )
    };
    let held = others(dir);
    if !held.is_empty() {
        return Err(refuse(held));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{flag} {}: {e}", dir.display()))?;
    let lock = Lock::take(dir, flag)?;
    // Another process may have filled it between the look and the lock.
    let held = others(dir);
    if !held.is_empty() {
        return Err(refuse(held));
    }
    Ok(lock)
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl RunLog {
    /// Opens (creating) the log files of the run in `dir`, whose `lock` the caller
    /// holds.
    pub fn create(dir: &Path, log_steps: bool, lock: Lock) -> std::io::Result<RunLog> {
        std::fs::create_dir_all(dir)?;
        Ok(RunLog {
            dir: dir.to_path_buf(),
            metrics: Some(append(&dir.join("metrics.jsonl"))?),
            events: Some(append(&dir.join("events.jsonl"))?),
            steps: if log_steps {
                Some(BufWriter::new(append(&dir.join("steps.jsonl"))?))
            } else {
                None
            },
            _lock: Some(lock),
        })
    }

    /// The log of a rank other than 0: it reads the run in `dir` (a resume's
    /// metrics) and writes nothing.
    pub fn silent(dir: &Path) -> RunLog {
        RunLog {
            dir: dir.to_path_buf(),
            metrics: None,
            events: None,
            steps: None,
            _lock: None,
        }
    }

    /// Opens the logs of a run being resumed: cuts each back to the size it had at
    /// the checkpoint (dropping what came after, half-written lines included; the
    /// sizes were validated against the files first).
    pub fn reopen(
        dir: &Path,
        log_steps: bool,
        sizes: LogSizes,
        lock: Lock,
    ) -> std::io::Result<RunLog> {
        for (name, len) in [
            ("metrics.jsonl", sizes.metrics),
            ("events.jsonl", sizes.events),
            ("steps.jsonl", sizes.steps),
        ] {
            let path = dir.join(name);
            if path.exists() {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(len.min(f.metadata()?.len()))?;
                f.sync_all()?;
            }
        }
        RunLog::create(dir, log_steps, lock)
    }

    /// The current sizes of the logs (`steps.jsonl` flushed first).
    pub fn sizes(&mut self) -> std::io::Result<LogSizes> {
        self.flush_steps()?;
        let len = |name: &str| std::fs::metadata(self.dir.join(name)).map_or(0, |m| m.len());
        Ok(LogSizes {
            metrics: len("metrics.jsonl"),
            events: len("events.jsonl"),
            steps: len("steps.jsonl"),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn line(file: Option<&mut File>, v: &impl Serialize) -> std::io::Result<()> {
        let Some(file) = file else {
            return Ok(());
        };
        let mut text = serde_json::to_vec(v).map_err(std::io::Error::other)?;
        text.push(b'\n');
        file.write_all(&text)?;
        file.flush()
    }

    pub fn epoch(&mut self, r: &EpochRecord) -> std::io::Result<()> {
        Self::line(self.metrics.as_mut(), r)
    }

    /// Appends an event: `time`, `epoch`, `step`, `kind`, then `fields`; returns it.
    pub fn event(
        &mut self,
        epoch: usize,
        step: u64,
        kind: &str,
        fields: Map<String, Value>,
    ) -> std::io::Result<Value> {
        let mut obj = Map::new();
        obj.insert("time".into(), now_iso().into());
        obj.insert("epoch".into(), epoch.into());
        obj.insert("step".into(), step.into());
        obj.insert("kind".into(), kind.into());
        obj.extend(fields);
        let obj = Value::Object(obj);
        Self::line(self.events.as_mut(), &obj)?;
        Ok(obj)
    }

    /// Appends a `steps.jsonl` line when `--log-steps` is on (buffered; flushed at
    /// each epoch's end).
    pub fn step(
        &mut self,
        step: u64,
        epoch: usize,
        lr: f64,
        batch_size: usize,
        loss: f64,
    ) -> std::io::Result<()> {
        if let Some(w) = &mut self.steps {
            writeln!(
                w,
                "{}",
                serde_json::json!({"step": step, "epoch": epoch, "lr": lr, "batch_size": batch_size, "loss": finite(loss)})
            )?;
        }
        Ok(())
    }

    pub fn flush_steps(&mut self) -> std::io::Result<()> {
        match &mut self.steps {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// The per-epoch metrics `--monitor` and `sweep --metric` may name.
pub use rudder_policy::METRIC_NAMES as METRICS;

/// `Err` for a metric that `task` does not have (accuracy for regression, the
/// regression metrics for classification).
pub fn check_task_metric(name: &str, task: crate::config::Task) -> Result<(), String> {
    check_metric(name)?;
    let regression = ["val_rmse", "val_mae", "val_r2"].contains(&name);
    let accuracy = name.ends_with("_acc");
    match task {
        crate::config::Task::Classification if regression => {
            Err(format!("{name} is a regression metric (--task regression)"))
        }
        crate::config::Task::Regression if accuracy => Err(format!(
            "{name} is a classification metric; regression has val_rmse, val_mae, val_r2"
        )),
        _ => Ok(()),
    }
}

/// `Err` with the message for a name that is not one of [`METRICS`].
pub fn check_metric(name: &str) -> Result<(), String> {
    if METRICS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "expected one of {}, got {name:?}",
            METRICS.join(", ")
        ))
    }
}

/// Whether `value` of metric `name` beats `best`: lower for losses and errors,
/// higher for accuracies and R^2; a value that is not finite never does.
pub fn improves(name: &str, value: f64, best: Option<f64>) -> bool {
    value.is_finite()
        && best.is_none_or(|b| {
            if name.ends_with("loss") || name.ends_with("rmse") || name.ends_with("mae") {
                value < b
            } else {
                value > b
            }
        })
}

/// The best `(index, value)` of metric `name` among `values`, by [`improves`] (the
/// first of equals).
pub fn best_of(name: &str, values: impl IntoIterator<Item = (usize, f64)>) -> Option<(usize, f64)> {
    values.into_iter().fold(None, |best, (i, v)| {
        if improves(name, v, best.map(|b: (usize, f64)| b.1)) {
            Some((i, v))
        } else {
            best
        }
    })
}

/// The best `(epoch, value)` of metric `key` over `history` (metrics.jsonl objects).
pub fn best_epoch(history: &[Value], key: &str) -> Option<(usize, f64)> {
    best_of(
        key,
        history
            .iter()
            .enumerate()
            .filter_map(|(e, h)| Some((e, h.get(key)?.as_f64()?))),
    )
}

/// The objects of a JSONL file (blank lines skipped); errors name the file, and the
/// line and column of a bad line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                format!("{}:{}:{}: {msg}", path.display(), i + 1, e.column())
            })
        })
        .collect()
}

/// `Some(x)` for a finite `x`, so JSON shows non-finite numbers as `null`.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn utc_parts() -> (i64, u32, u32, u64, u64, u64, u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, m, d, s / 3600, s / 60 % 60, s % 60, now.subsec_millis())
}

/// The current UTC time as `2026-11-27T04:26:00.123Z`.
pub fn now_iso() -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `runs/<UTC time>`, with a suffix if that folder exists.
pub fn default_run_dir() -> PathBuf {
    let (y, mo, d, h, mi, s, _) = utc_parts();
    let base = format!("runs/{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}");
    let mut dir = PathBuf::from(&base);
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_784), (2026, 11, 27));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
