//! The per-epoch metrics by name, and the one rule of which value is better: lower
//! for losses and errors, higher for accuracies and R^2. `--monitor`, the sweep's
//! winner, the reports' "best" and a policy's `ctx.best` all use it.

use serde::{Deserialize, Serialize};

use crate::Task;

/// The per-epoch metrics by the names `metrics.jsonl`, `ctx` and the trainer's
/// `--monitor` use: classification's four, then regression's three.
pub const METRIC_NAMES: [&str; 7] = [
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_rmse",
    "val_mae",
    "val_r2",
];

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Lower is better (losses, errors).
    Min,
    /// Higher is better (accuracies, R^2).
    Max,
}

/// One of the per-epoch metrics ([`METRIC_NAMES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The mean training loss of the epoch.
    TrainLoss,
    /// The training accuracy of the epoch (classification).
    TrainAcc,
    /// The validation loss.
    ValLoss,
    /// The validation accuracy (classification).
    ValAcc,
    /// The validation root mean squared error, in the targets' units (regression).
    ValRmse,
    /// The validation mean absolute error, in the targets' units (regression).
    ValMae,
    /// The validation R^2, averaged over the targets (regression).
    ValR2,
}

/// A metric name that is not one of [`METRIC_NAMES`], or one the task has not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// Not a metric's name.
    #[error("expected one of {}, got {got:?}", METRIC_NAMES.join(", "))]
    Unknown {
        /// The name given.
        got: String,
    },
    /// A regression metric for classification.
    #[error("{0} is a regression metric (--task regression)")]
    RegressionOnly(&'static str),
    /// An accuracy for regression.
    #[error("{0} is a classification metric; regression has val_rmse, val_mae, val_r2")]
    ClassificationOnly(&'static str),
}

impl Metric {
    /// Every metric, in [`METRIC_NAMES`]' order.
    pub const ALL: [Metric; 7] = [
        Metric::TrainLoss,
        Metric::TrainAcc,
        Metric::ValLoss,
        Metric::ValAcc,
        Metric::ValRmse,
        Metric::ValMae,
        Metric::ValR2,
    ];

    /// The metric's name (`val_loss`).
    pub fn name(self) -> &'static str {
        METRIC_NAMES[self as usize]
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Result<Metric, MetricError> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| MetricError::Unknown {
                got: crate::text::clip(name),
            })
    }

    /// Which way it improves.
    pub fn goal(self) -> Goal {
        match self {
            Metric::TrainLoss | Metric::ValLoss | Metric::ValRmse | Metric::ValMae => Goal::Min,
            Metric::TrainAcc | Metric::ValAcc | Metric::ValR2 => Goal::Max,
        }
    }

    /// Whether `task` has this metric: accuracies are classification's, RMSE, MAE
    /// and R^2 regression's, losses both's.
    pub fn check_task(self, task: Task) -> Result<(), MetricError> {
        let regression = matches!(self, Metric::ValRmse | Metric::ValMae | Metric::ValR2);
        let accuracy = matches!(self, Metric::TrainAcc | Metric::ValAcc);
        match task {
            Task::Classification if regression => Err(MetricError::RegressionOnly(self.name())),
            Task::Regression if accuracy => Err(MetricError::ClassificationOnly(self.name())),
            _ => Ok(()),
        }
    }

    /// Whether `value` beats `best` (`None`: nothing yet); a value that is not
    /// finite never does.
    ///
    /// ```
    /// use rudder_core::metric::Metric;
    /// assert!(Metric::ValLoss.improves(0.3, Some(0.4)));
    /// assert!(Metric::ValAcc.improves(0.9, Some(0.8)));
    /// assert!(!Metric::ValLoss.improves(f64::NAN, None));
    /// ```
    pub fn improves(self, value: f64, best: Option<f64>) -> bool {
        value.is_finite()
            && best.is_none_or(|b| match self.goal() {
                Goal::Min => value < b,
                Goal::Max => value > b,
            })
    }

    /// The best `(index, value)` among `values` (the first of equals).
    pub fn best_of(self, values: impl IntoIterator<Item = (usize, f64)>) -> Option<(usize, f64)> {
        values.into_iter().fold(None, |best, (i, v)| {
            if self.improves(v, best.map(|b: (usize, f64)| b.1)) {
                Some((i, v))
            } else {
                best
            }
        })
    }

    /// The best `(epoch, value)` over `history` (`metrics.jsonl` objects).
    pub fn best_epoch(self, history: &[serde_json::Value]) -> Option<(usize, f64)> {
        self.best_of(
            history
                .iter()
                .enumerate()
                .filter_map(|(e, h)| Some((e, h.get(self.name())?.as_f64()?))),
        )
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_losses_and_errors_go_down() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Ok(m));
            let down = m.name().ends_with("loss")
                || m.name().ends_with("rmse")
                || m.name().ends_with("mae");
            assert_eq!(m.goal() == Goal::Min, down, "{m}");
        }
        assert_eq!(
            Metric::ValR2.best_of([(0, 0.1), (1, 0.5), (2, 0.5)]),
            Some((1, 0.5))
        );
        assert_eq!(
            Metric::ValMae.best_of([(0, f64::NAN), (1, 3.0), (2, 2.0)]),
            Some((2, 2.0))
        );
    }
}
