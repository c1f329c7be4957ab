//! `rudder rescale`: carry a reference setup's LR to another batch size (linear rule,
//! Goyal et al. 2017; square root for Adam-type optimizers), and what it does to the
//! number of updates.

use serde::Serialize;

use rudder_core::Rescale;
use rudder_core::config::ConfigError;

use crate::cli::{RescaleOptions, print_json};
use crate::error::AppError;

/// `rudder rescale`.
pub(crate) fn command(o: RescaleOptions) -> Result<(), AppError> {
    if !(o.lr.is_finite() && o.lr >= 0.0)
        || o.batch_size == 0
        || o.to_batch_size == 0
        || o.epochs == 0
    {
        return Err(ConfigError::invalid(
            "--lr, --batch-size, --to-batch-size, --epochs",
            "need a finite lr >= 0 and sizes >= 1",
        )
        .into());
    }
    if o.dataset_size == Some(0) {
        return Err(ConfigError::invalid("--dataset-size", "must be at least 1, got 0").into());
    }
    let r = rescale(
        o.lr,
        o.batch_size,
        o.to_batch_size,
        o.rule,
        o.dataset_size,
        o.epochs,
    );
    if o.json {
        print_json(serde_json::to_value(&r).expect("serialises"));
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in lines(&r) {
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(())
}

/// One side of a rescale: batch size, LR, and with a data set size the optimizer
/// steps per epoch and in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Setup {
    pub batch_size: usize,
    pub lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Rescaled {
    pub rule: Rescale,
    pub from: Setup,
    pub to: Setup,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_size: Option<usize>,
    pub epochs: usize,
}

/// The LR for `to_batch` from `lr` at `batch` under `rule`, with the step counts for
/// `dataset_size` examples over `epochs` epochs (`accumulation` batches per step).
pub(crate) fn rescale(
    lr: f64,
    batch: usize,
    to_batch: usize,
    rule: Rescale,
    dataset_size: Option<usize>,
    epochs: usize,
) -> Rescaled {
    let side = |b: usize, lr: f64| {
        let steps = dataset_size.map(|n| n.div_ceil(b));
        Setup {
            batch_size: b,
            lr,
            steps_per_epoch: steps,
            updates: steps.map(|s| s * epochs),
        }
    };
    Rescaled {
        rule,
        from: side(batch, lr),
        to: side(to_batch, rule.lr(lr, batch as f64, to_batch as f64)),
        dataset_size,
        epochs,
    }
}

/// The lines `rudder rescale` prints: the LR alone first, then (with a data set size)
/// the step counts.
pub(crate) fn lines(r: &Rescaled) -> Vec<String> {
    let mut out = vec![format!("{}", r.to.lr)];
    if let (Some(n), Some(a), Some(b)) =
        (r.dataset_size, r.from.steps_per_epoch, r.to.steps_per_epoch)
    {
        out.push(format!(
            "steps per epoch ({n} examples): {a} at batch {} -> {b} at batch {}",
            r.from.batch_size, r.to.batch_size
        ));
        out.push(format!(
            "updates in {}: {} -> {} (x{})",
            rudder_core::text::plural(r.epochs as i64, "epoch"),
            a * r.epochs,
            b * r.epochs,
            rudder_core::text::fmt_num(b as f64 / a as f64)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_founding_notes_example() {
        let r = rescale(16.0, 1024, 64, Rescale::Linear, None, 1);
        assert_eq!(lines(&r), ["1"]);
        let r = rescale(16.0, 1024, 64, Rescale::Sqrt, None, 1);
        assert_eq!(lines(&r), ["4"]);
        let r = rescale(16.0, 1024, 64, Rescale::Linear, Some(60_000), 10);
        assert_eq!(
            (r.from.steps_per_epoch, r.to.steps_per_epoch),
            (Some(59), Some(938))
        );
        assert_eq!((r.from.updates, r.to.updates), (Some(590), Some(9380)));
    }
}
