//! The run directory's logs: `metrics.jsonl`, `events.jsonl` and `steps.jsonl`,
//! each line written and flushed at once, and cut back to a checkpoint's sizes on
//! resume.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rudder_core::metric::Metric;

use crate::lock::Lock;

use serde::Serialize;
use serde_json::Value;

/// Sizes of the run's logs when the checkpoint was taken; a resume cuts them back to
/// these, so nothing logged after the checkpoint is left twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LogSizes {
    /// `metrics.jsonl`'s size in bytes.
    pub metrics: u64,
    /// `events.jsonl`'s size in bytes.
    pub events: u64,
    /// `steps.jsonl`'s size in bytes.
    pub steps: u64,
}

/// One line of `steps.jsonl`: an optimizer step and the settings it used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLine {
    /// Steps done after it (the first line is 1).
    pub step: u64,
    /// The epoch's index.
    pub epoch: usize,
    /// The learning rate.
    pub lr: f64,
    /// The optimizer's momentum (beta1 for AdamW).
    pub momentum: f64,
    /// The batch size.
    pub batch_size: usize,
    /// The step's mean training loss.
    pub loss: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRecord {
    /// 0-based.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// The planned total of epochs.
    pub epochs: usize,
    /// The LR at the epoch's last step.
    pub lr: f64,
    /// The batch size at the epoch's end.
    pub batch_size: usize,
    /// Batches per optimizer step.
    pub accumulation: usize,
    /// Mean training loss over the epoch's examples, in training mode.
    pub train_loss: f64,
    /// Classification only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_acc: Option<f64>,
    /// Validation loss, in evaluation mode.
    pub val_loss: f64,
    /// Classification only: validation accuracy, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    /// Regression only: root mean squared error, mean absolute error (over all
    /// targets, in the targets' own units) and R^2 (averaged over the targets, as
    /// scikit-learn's `r2_score`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f64>,
    /// Regression only: mean absolute error, in the targets' units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_mae: Option<f64>,
    /// Regression only: R^2, averaged over the targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_r2: Option<f64>,
    /// Wall-clock seconds of the epoch.
    pub epoch_time_s: f64,
    /// Training examples per second, over the training phase alone.
    pub samples_per_s: f64,
    /// Scalars recorded by policies (a decision's `metrics`).
    pub policy: std::collections::BTreeMap<String, f64>,
}

impl EpochRecord {
    /// The metric `m` (NaN for one this task does not have).
    pub fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::TrainLoss => Some(self.train_loss),
            Metric::TrainAcc => self.train_acc,
            Metric::ValLoss => Some(self.val_loss),
            Metric::ValAcc => self.val_acc,
            Metric::ValRmse => self.val_rmse,
            Metric::ValMae => self.val_mae,
            Metric::ValR2 => self.val_r2,
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

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `line` to `events.jsonl` and flushes it.
    pub fn event_line(&mut self, line: &Value) -> std::io::Result<()> {
        Self::line(self.events.as_mut(), line)
    }

    /// Appends `record` to `metrics.jsonl` (after `steps.jsonl`'s buffered lines)
    /// and flushes it.
    pub fn epoch_line(&mut self, record: &EpochRecord) -> std::io::Result<()> {
        self.flush_steps()?;
        Self::line(self.metrics.as_mut(), record)
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

    /// Appends a `steps.jsonl` line when `--log-steps` is on (buffered; flushed at
    /// each epoch's end).
    pub fn step(&mut self, line: &StepLine) -> std::io::Result<()> {
        if let Some(w) = &mut self.steps {
            writeln!(
                w,
                "{}",
                serde_json::json!({
                    "step": line.step,
                    "epoch": line.epoch,
                    "lr": line.lr,
                    "momentum": line.momentum,
                    "batch_size": line.batch_size,
                    "loss": crate::files::finite(line.loss),
                })
            )?;
        }
        Ok(())
    }

    /// Writes out `steps.jsonl`'s buffered lines.
    pub fn flush_steps(&mut self) -> std::io::Result<()> {
        match &mut self.steps {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}
