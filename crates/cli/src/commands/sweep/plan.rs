//! The sweep's trials, planned whole before any starts: each one's settings, LR
//! multiplier, folder name and resolved configuration, every one checked (its
//! options, its LR, its policies' parameters), so a bad one is exit 2 with nothing
//! trained.

use serde_json::{Value, json};

use rudder_core::TrainOptions;
use rudder_core::config::{ConfigError, TrainConfig};
use rudder_run::report::fmt_num;

use super::space::{self, Axis, Dist, Point};
use crate::cli::SweepOptions;
use crate::error::AppError;

/// The multipliers of a sweep of the LR alone (the founding notes' x1, x2, x4, x1/2,
/// x1/4).
pub(crate) const DEFAULT_MULTIPLIERS: [f64; 5] = [1.0, 2.0, 4.0, 0.5, 0.25];

/// One trial, planned.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Its folder's name in the sweep's folder.
    pub(crate) name: String,
    /// What the search set (empty for a sweep of the LR alone).
    pub(crate) settings: Vec<(String, Value)>,
    pub(crate) multiplier: f64,
    /// Its configuration: the command's, its settings over it, its LR coupled.
    pub(crate) cfg: TrainConfig,
}

/// What was searched, for `sweep.json` and the first line.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub(crate) plans: Vec<Plan>,
    /// `{"grid": {KEY: [V...]}}`, `{"samples": N, "space": {KEY: "log(A,B)"}}`, or
    /// `{}`; with `multipliers` in each.
    pub(crate) record: Value,
    /// For people: `lr x [1, 2, 4, 0.5, 0.25]`, `batch_size x lr`, `8 samples of lr, momentum`.
    pub(crate) summary: String,
}

/// Every trial of `o` over the command's options `base` (resolved as `cfg`).
pub(crate) fn plans(
    o: &SweepOptions,
    base: &TrainOptions,
    cfg: &TrainConfig,
) -> Result<Search, AppError> {
    let axes: Vec<Axis> = o
        .grid
        .iter()
        .map(|g| space::parse_grid(g))
        .collect::<Result<_, _>>()?;
    let dists: Vec<(String, Dist)> = o
        .space
        .iter()
        .map(|s| space::parse_space(s))
        .collect::<Result<_, _>>()?;
    check_search(&axes, &dists, o.samples)?;
    let searching = !axes.is_empty() || o.samples.is_some();
    let multipliers = o.multipliers.clone().unwrap_or_else(|| {
        if searching {
            vec![1.0]
        } else {
            DEFAULT_MULTIPLIERS.to_vec()
        }
    });
    check_multipliers(&multipliers)?;
    let one = multipliers.len() == 1;
    let (points, sampled) = match o.samples {
        Some(n) => (space::samples(&dists, n, cfg.seed, &multipliers), true),
        None => (space::grid(&axes, &multipliers), false),
    };
    let mut plans = Vec::with_capacity(points.len());
    for (i, p) in points.into_iter().enumerate() {
        let name = space::name(&p, i / multipliers.len(), sampled, one);
        let cfg = trial_config(base, cfg, &p)?;
        plans.push(Plan {
            name,
            settings: p.settings,
            multiplier: p.multiplier,
            cfg,
        });
    }
    // The policies of each distinct set of parameters, loaded once here: a bad one is
    // exit 2 before any trial (each trial loads its own when it starts).
    let mut checked: Vec<(&[String], &[String])> = Vec::new();
    for c in plans.iter().map(|p| &p.cfg) {
        let key = (c.policy.as_slice(), c.param.as_slice());
        if !checked.contains(&key) {
            rudder_train::load_policies(
                &c.policy,
                &c.param,
                c.lr_scaling,
                rudder_policy::WatchMode::Off,
            )?;
            checked.push(key);
        }
    }
    let mut names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::invalid(
            "--grid",
            format!(
                "two trials would share the folder {}: give each value once",
                w[0]
            ),
        )
        .into());
    }
    let (record, summary) = record(o, &axes, &dists, &multipliers, cfg.lr);
    Ok(Search {
        plans,
        record,
        summary,
    })
}

/// What was searched, as `sweep.json` records it and as the first line says it.
fn record(
    o: &SweepOptions,
    axes: &[Axis],
    dists: &[(String, Dist)],
    multipliers: &[f64],
    base_lr: f64,
) -> (Value, String) {
    let one = multipliers.len() == 1;
    let mults: Vec<String> = multipliers.iter().map(|&m| fmt_num(m)).collect();
    let (record, summary) = if o.samples.is_some() {
        let sp: serde_json::Map<String, Value> = o
            .space
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, d)| (k.trim().replace('-', "_"), json!(d.trim())))
            .collect();
        let keys: Vec<&str> = dists.iter().map(|(k, _)| k.as_str()).collect();
        (
            json!({"samples": o.samples, "space": sp, "multipliers": multipliers}),
            format!(
                "{} of {}",
                rudder_core::text::plural(o.samples.unwrap_or(0) as i64, "sample"),
                keys.join(", ")
            ),
        )
    } else if !axes.is_empty() {
        let g: serde_json::Map<String, Value> = axes
            .iter()
            .map(|a| (a.key.clone(), Value::Array(a.values.clone())))
            .collect();
        let keys: Vec<&str> = axes.iter().map(|a| a.key.as_str()).collect();
        (
            json!({"grid": g, "multipliers": multipliers}),
            keys.join(" x "),
        )
    } else {
        (json!({"multipliers": multipliers}), String::new())
    };
    let summary = match (summary.is_empty(), one) {
        (true, _) => format!("lr {} x [{}]", fmt_num(base_lr), mults.join(", ")),
        (false, true) => summary,
        (false, false) => format!("{summary}, lr x [{}]", mults.join(", ")),
    };
    (record, summary)
}

/// `--grid` or `--samples` with `--space`, not both.
fn check_search(
    axes: &[Axis],
    dists: &[(String, Dist)],
    samples: Option<usize>,
) -> Result<(), AppError> {
    let refuse = |at: &str, m: &str| Err(ConfigError::invalid(at, m).into());
    match (axes.is_empty(), dists.is_empty(), samples) {
        (false, _, Some(_)) => refuse(
            "--grid",
            "a sweep is a grid or random samples: give --grid or --samples, not both",
        ),
        (_, true, Some(_)) => refuse(
            "--samples",
            "needs at least one --space KEY=DIST to draw from",
        ),
        (_, false, None) => refuse("--space", "draws only with --samples N"),
        (_, _, Some(0)) => refuse("--samples", "needs at least 1"),
        (_, _, Some(n)) if n > 10_000 => refuse("--samples", "at most 10000"),
        _ => {
            let mut keys: Vec<&str> = axes
                .iter()
                .map(|a| a.key.as_str())
                .chain(dists.iter().map(|(k, _)| k.as_str()))
                .collect();
            keys.sort();
            match keys.windows(2).find(|w| w[0] == w[1]) {
                Some(w) => refuse(
                    if axes.is_empty() { "--space" } else { "--grid" },
                    &format!("{} is given twice", w[0]),
                ),
                None => Ok(()),
            }
        }
    }
}

/// The multipliers: at least one, finite, > 0, each once.
fn check_multipliers(multipliers: &[f64]) -> Result<(), AppError> {
    if let Some(&m) = multipliers.iter().find(|m| !m.is_finite() || **m <= 0.0) {
        return Err(ConfigError::invalid(
            "--multipliers",
            format!("need finite numbers > 0, got {}", fmt_num(m)),
        )
        .into());
    }
    if multipliers.is_empty() {
        return Err(ConfigError::invalid("--multipliers", "need at least one".to_string()).into());
    }
    // Each trial has a folder of its own: two multipliers that are the same number
    // would share one.
    let mut names: Vec<String> = multipliers.iter().map(|&m| super::trial_name(m)).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::invalid(
            "--multipliers",
            format!("{} is given twice", w[0].trim_start_matches('x')),
        )
        .into());
    }
    Ok(())
}

/// The trial's configuration: the command's options with its settings, resolved; its
/// LR carried from the command's batch size to its own by its `--lr-scaling` rule
/// (the notes' batch 1024 at LR 16 is batch 64 at LR 1), then multiplied.
fn trial_config(
    base: &TrainOptions,
    cfg: &TrainConfig,
    p: &Point,
) -> Result<TrainConfig, AppError> {
    let mut opts = space::options(base, p)?;
    opts.config = base.config.clone();
    let mut c = rudder_train::resolve(opts)?;
    let base_lr = c.lr;
    c.lr = c
        .lr_scaling
        .lr(base_lr, cfg.batch_size as f64, c.batch_size as f64)
        * p.multiplier;
    let at = || {
        if p.settings.is_empty() {
            "--multipliers".to_string()
        } else {
            format!("--grid/--space {}", space::describe(&p.settings))
        }
    };
    if !c.lr.is_finite() || c.lr <= 0.0 || rudder_core::check_hyper("lr", c.lr).is_err() {
        return Err(ConfigError::invalid(
            at(),
            format!(
                "{} x {} {} gives LR {}, not a finite number > 0",
                fmt_num(p.multiplier),
                if p.settings.is_empty() { "--lr" } else { "LR" },
                fmt_num(base_lr),
                fmt_num(c.lr)
            ),
        )
        .into());
    }
    Ok(c)
}

/// A trial a scheduler starts (`start: [#{settings}]`), the `k`-th: `new000`, ...,
/// planned and checked as the command's own are; why not, on one line.
pub(crate) fn started(
    base: &TrainOptions,
    cfg: &TrainConfig,
    settings: &serde_json::Map<String, Value>,
    k: usize,
) -> Result<Plan, String> {
    let settings = settings
        .iter()
        .map(|(key, v)| Ok((space::check_key(key)?, v.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    let p = Point {
        settings,
        multiplier: 1.0,
    };
    let c = trial_config(base, cfg, &p).map_err(|e| e.to_string())?;
    rudder_train::load_policies(
        &c.policy,
        &c.param,
        c.lr_scaling,
        rudder_policy::WatchMode::Off,
    )
    .map_err(|e| e.to_string())?;
    Ok(Plan {
        name: format!("new{k:03}"),
        settings: p.settings,
        multiplier: 1.0,
        cfg: c,
    })
}
