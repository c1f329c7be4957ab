//! The LR range test's training loop (`rudder lr-find`): one optimizer step per LR of
//! an exponential ramp, the loss smoothed, stopped once it runs away.

use rudder_core::config::TrainConfig;
use rudder_nn::data::{Batcher, Data};

use super::{Learner, SHUFFLE_SALT, TrainError};

/// The ramp: `steps` LRs from `start_lr` to `end_lr`, evenly spaced in log.
#[derive(Debug, Clone, Copy)]
pub struct Ramp {
    /// The first LR.
    pub start_lr: f64,
    /// The last LR.
    pub end_lr: f64,
    /// How many LRs (one optimizer step each).
    pub steps: usize,
}

/// The most steps a range test takes.
pub const MAX_STEPS: usize = 100_000;

impl Ramp {
    /// The LR of step `i`: start * (end / start)^(i / (steps - 1)), computed in logs
    /// so that no ratio overflows (1e-308 to 1e308 stays finite), the last exactly
    /// `end_lr`.
    pub fn lr(&self, i: usize) -> f64 {
        let last = self.steps.max(2) - 1;
        if i >= last {
            return self.end_lr;
        }
        let t = i as f64 / last as f64;
        let (a, b) = (self.start_lr.ln(), self.end_lr.ln());
        (a + t * (b - a)).exp()
    }
}

/// What the test saw: per step the LR, the batch loss and the smoothed loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeRun {
    /// The LR of each step.
    pub lrs: Vec<f64>,
    /// The batch loss of each step.
    pub losses: Vec<f64>,
    /// The smoothed loss of each step.
    pub smoothed: Vec<f64>,
    /// The smoothed loss passed `STOP_FACTOR` x its best (or was not finite).
    pub stopped_early: bool,
}

/// fastai's and Lightning's smoothing: an exponential moving average with this beta,
/// bias-corrected.
pub const BETA: f64 = 0.98;
/// Stop once the smoothed loss exceeds this multiple of its best (both libraries' 4).
pub const STOP_FACTOR: f64 = 4.0;

/// Runs the ramp on `learner` over `data`'s training split, in the order a run with
/// `cfg`'s seed would draw its batches. The caller discards the learner afterwards.
pub fn range_test(
    cfg: &TrainConfig,
    data: &Data,
    learner: &mut dyn Learner,
    ramp: Ramp,
) -> Result<RangeRun, TrainError> {
    let train = &data.train;
    let mut batcher = Batcher::new(train.len(), cfg.seed ^ SHUFFLE_SALT);
    let bs = cfg.batch_size.min(train.len());
    let acc = cfg.accumulation;
    let mut out = RangeRun::default();
    let (mut avg, mut best) = (0f64, f64::INFINITY);
    for i in 0..ramp.steps {
        // Ctrl-C: the caller exits 130 (a range test is not resumed).
        if rudder_core::interrupt::requested() {
            break;
        }
        let lr = ramp.lr(i);
        let mut h = learner.hyper();
        h.lr = lr;
        learner.set_hyper(h);
        let (mut loss_sum, mut count) = (0f64, 0usize);
        for k in 0..acc {
            if batcher.remaining() == 0 {
                batcher.start_epoch();
            }
            let rows = batcher.next_rows(bs).expect("a fresh epoch has rows");
            let (loss, _) = learner.accumulate(train, rows, k == 0, 1.0 / acc as f64)?;
            loss_sum += loss * rows.len() as f64;
            count += rows.len();
        }
        learner.step()?;
        let loss = loss_sum / count as f64;
        avg = BETA * avg + (1.0 - BETA) * loss;
        let smooth = avg / (1.0 - BETA.powi(i as i32 + 1));
        out.lrs.push(lr);
        out.losses.push(loss);
        out.smoothed.push(smooth);
        if i == 0 || smooth < best {
            best = smooth;
        }
        if !smooth.is_finite() || smooth > STOP_FACTOR * best {
            out.stopped_early = true;
            break;
        }
    }
    Ok(out)
}
