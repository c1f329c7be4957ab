//! What a person watching the run sees on stderr: a bar per epoch (loss, lr,
//! samples/s) and one summary line per epoch. `--quiet` shows nothing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use rudder_core::text::fmt_metric;
use rudder_run::log::EpochRecord;
use rudder_run::sink::Sink;

/// The progress bar and summary lines on stderr, a [`Sink`] of the run's events.
pub struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// Notes held back until the epoch's summary line (what `on_epoch_end` says
    /// belongs after the numbers it saw).
    held: Option<Vec<String>>,
}

impl Progress {
    /// Progress on stderr, or nothing when `quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            bar: None,
            held: None,
        }
    }

    /// Holds notes back until the next summary line.
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Starts the bar of `epoch` over `samples` training examples.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, samples: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(
            Some(samples as u64),
            ProgressDrawTarget::stderr_with_hz(5),
        );
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30.cyan/blue} {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    /// Advances by `samples`; refreshes the message every few calls.
    pub fn advance(&mut self, samples: usize, step: u64, loss: f64, lr: f64, elapsed: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(samples as u64);
            if step.is_multiple_of(16) {
                let rate = bar.position() as f64 / elapsed.max(1e-9);
                bar.set_message(format!(
                    "loss {} lr {lr:.4e} {}",
                    fmt_metric(loss),
                    rate_text(rate)
                ));
            }
        }
    }

    /// Clears the bar of an epoch left unfinished.
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn summary(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            // Classification's accuracies, or regression's errors.
            let (train, val) = match (r.train_acc, r.val_acc, r.val_rmse) {
                (Some(t), Some(v), _) => (
                    format!(" acc {}", fmt_metric(t)),
                    format!(" acc {}", fmt_metric(v)),
                ),
                (_, _, Some(rmse)) => (
                    String::new(),
                    format!(
                        " rmse {} r2 {}",
                        fmt_metric(rmse),
                        fmt_metric(r.val_r2.unwrap_or(f64::NAN))
                    ),
                ),
                _ => (String::new(), String::new()),
            };
            rudder_core::term::say(&format!(
                "epoch {:>3}/{}  train loss {}{train}  val loss {}{val}  lr {}  bs {}  {}  {:.1}s",
                r.epoch + 1,
                r.epochs,
                fmt_metric(r.train_loss),
                fmt_metric(r.val_loss),
                rudder_core::text::fmt_num(r.lr),
                r.batch_size,
                rate_text(r.samples_per_s),
                r.epoch_time_s
            ));
        }
    }

    /// A message of its own line (policy logs, the run's end).
    pub fn note(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        if let Some(held) = &mut self.held {
            held.push(msg.to_string());
            return;
        }
        // Policy text may hold control characters (ANSI escapes): shown escaped.
        let msg = rudder_core::text::one_line(msg);
        match &self.bar {
            Some(bar) => bar.suspend(|| rudder_core::term::say(&msg)),
            None => rudder_core::term::say(&msg),
        }
    }
}

fn rate_text(rate: f64) -> String {
    if rate >= 1e3 {
        format!("{:.1}k samples/s", rate / 1e3)
    } else {
        format!("{rate:.0} samples/s")
    }
}

/// An epoch's end clears the bar and prints the epoch's summary line, then the notes
/// held back.
impl Sink for Progress {
    fn epoch(&mut self, r: &EpochRecord, _history: &[serde_json::Value]) -> std::io::Result<()> {
        self.summary(r);
        for note in self.held.take().unwrap_or_default() {
            self.note(&note);
        }
        Ok(())
    }
}
