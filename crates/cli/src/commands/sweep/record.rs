//! A trial as `sweep.json` records it: read back from its run folder (after each of
//! its runs, and for a finished one on `--resume`), or one the scheduler stopped
//! before it ever trained.

use serde_json::Value;

use rudder_core::config::ConfigError;
use rudder_core::metric::Metric;
use rudder_run::report;

use super::plan::Plan;
use super::{AppError, Trial, space};

/// Trial `p` as its folder `dir` has it now (it `diverged`, or stopped for
/// `stop_reason`), its score by `metric`.
pub(crate) fn read(
    dir: &std::path::Path,
    p: &Plan,
    metric: Metric,
    diverged: bool,
    stop_reason: Option<String>,
) -> Result<Trial, AppError> {
    let view = report::load_run(dir)
        .map_err(|e| ConfigError::file(format!("--out {}", dir.display()), e))?;
    let best = |k: Metric| {
        k.best_epoch(&view.history).map_or(
            Value::Null,
            |(e, v)| serde_json::json!({"epoch": e, "value": v}),
        )
    };
    Ok(Trial {
        settings: space::settings_json(&p.settings),
        described: space::describe(&p.settings),
        multiplier: p.multiplier,
        lr: p.cfg.lr,
        dir: p.name.clone(),
        diverged,
        stop_reason,
        status: rudder_policy::sweep::Status::Done,
        lineage: Vec::new(),
        slurm: None,
        interrupted: false,
        initial: serde_json::Map::new(),
        epochs_run: view.history.len(),
        last: view.history.last().cloned().unwrap_or(Value::Null),
        best: {
            let (score, _) = report::score_key(&view.history);
            let mut b = serde_json::Map::new();
            b.insert("val_loss".into(), best(Metric::ValLoss));
            b.insert(score.name().into(), best(score));
            if metric != Metric::ValLoss && metric != score {
                b.insert(metric.name().into(), best(metric));
            }
            Value::Object(b)
        },
        score: metric.best_epoch(&view.history).map(|(_, v)| v),
        run: report::RunView {
            name: format!(
                "{} lr {}{}",
                p.name,
                report::fmt_num(p.cfg.lr),
                if diverged { " (diverged)" } else { "" }
            ),
            ..view
        },
    })
}

/// A trial the scheduler stopped before it ever trained.
pub(crate) fn not_run(p: &Plan) -> Trial {
    Trial {
        settings: space::settings_json(&p.settings),
        described: space::describe(&p.settings),
        multiplier: p.multiplier,
        lr: p.cfg.lr,
        dir: p.name.clone(),
        diverged: false,
        stop_reason: Some("scheduler".into()),
        status: rudder_policy::sweep::Status::Stopped,
        lineage: Vec::new(),
        slurm: None,
        interrupted: false,
        initial: serde_json::Map::new(),
        epochs_run: 0,
        last: Value::Null,
        best: Value::Object(serde_json::Map::new()),
        score: None,
        run: report::RunView {
            name: p.name.clone(),
            subtitle: "not run: stopped by the scheduler before it started".into(),
            history: Vec::new(),
            markers: Vec::new(),
            stop_reason: Some("scheduler".into()),
        },
    }
}
