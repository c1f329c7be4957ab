//! `rudder lr-find`: the LR range test (Smith 2015; fastai's `lr_find`, Lightning's
//! `Tuner.lr_find`) and its three suggestions, with fastai's and Lightning's rules:
//!
//! - `steepest` (Lightning): the LR where the smoothed loss falls fastest, the
//!   minimum of `np.gradient` over the smoothed losses without the first 10 and
//!   the last point;
//! - `valley` (fastai's default): the middle of the longest descending stretch,
//!   over the smoothed losses without the first tenth of the planned steps and the
//!   last 5;
//! - `minimum` (fastai): the LR at the lowest smoothed loss, divided by 10, over the
//!   same slice.

use serde::Serialize;

use rudder_core::config::ConfigError;
use rudder_run::report::{Plot, Series, VLine};
use rudder_train::trainer::range::{MAX_STEPS, Ramp, RangeRun, range_test};

use crate::cli::{LrFindOptions, print_json};
use crate::error::AppError;

/// `rudder lr-find`.
pub(crate) fn command(o: LrFindOptions) -> Result<(), AppError> {
    let mut opts = o.train.options();
    if opts.out.is_none() {
        opts.out = Some(rudder_core::time::default_run_dir().with_extension("lr-find"));
    }
    let cfg = super::resolve(opts)?;
    let shown = rudder_core::text::fmt_num;
    check_ramp(o.start_lr, o.end_lr, o.steps)?;
    let _lock = rudder_run::lock::claim(&cfg.out, "--out").map_err(rudder_train::Error::from)?;
    let device = rudder_train::device(&cfg)?;
    let data = rudder_train::load_data(&cfg, &device)?;
    let ramp = Ramp {
        start_lr: o.start_lr,
        end_lr: o.end_lr,
        steps: o.steps,
    };
    // A model of its own, dropped at the end: nothing a later run uses is changed.
    let run = rudder_train::with_threads(cfg.threads, || -> Result<_, AppError> {
        let (mut learner, _) = rudder_train::build_learner(&cfg, &data)?;
        Ok(range_test(&cfg, &data, learner.as_mut(), ramp).map_err(rudder_train::Error::from)?)
    })?;
    if rudder_core::interrupt::requested() {
        return Err(AppError::Interrupted(format!(
            "interrupted after {} of {} steps; nothing written (an LR range test is not resumed: run it again)",
            run.lrs.len(),
            o.steps
        )));
    }
    let s = suggest(&run, o.steps);
    let finite = |v: &[f64]| v.iter().map(|&x| rudder_run::files::finite(x)).collect();
    let report = Report {
        start_lr: o.start_lr,
        end_lr: o.end_lr,
        steps: run.lrs.len(),
        batch_size: cfg.batch_size,
        stopped_early: run.stopped_early,
        lrs: run.lrs.clone(),
        losses: finite(&run.losses),
        smoothed: finite(&run.smoothed),
        suggestion: s,
    };
    let out = &cfg.out;
    let io = |e: std::io::Error| ConfigError::file(format!("--out {}", out.display()), e);
    let mut text = serde_json::to_string_pretty(&report).expect("serialises");
    text.push('\n');
    rudder_run::files::write_atomic(&out.join("lr_find.json"), text.as_bytes()).map_err(io)?;
    rudder_run::files::write_atomic(
        &out.join("lr_find.svg"),
        svg_page(&run, &s, &svg_title(&cfg)).as_bytes(),
    )
    .map_err(io)?;
    let show = |v: Option<f64>| v.map_or("-".into(), rudder_core::text::fmt_num);
    rudder_core::term::info(&format!(
        "lr-find: {} steps{} from {} to {}; suggestions: steepest {}, valley {}, minimum/10 {}; lr_find.json and lr_find.svg in {}",
        run.lrs.len(),
        if run.stopped_early {
            " (stopped: the loss ran away)"
        } else {
            ""
        },
        shown(o.start_lr),
        shown(run.lrs.last().copied().unwrap_or(o.start_lr)),
        show(s.steepest),
        show(s.valley),
        show(s.minimum),
        out.display()
    ));
    print_json(serde_json::to_value(s).expect("serialises"));
    Ok(())
}

/// The ramp's ends and length: finite, 0 < start < end, 2 to [`MAX_STEPS`] steps.
fn check_ramp(start_lr: f64, end_lr: f64, steps: usize) -> Result<(), AppError> {
    let shown = rudder_core::text::fmt_num;
    if !(start_lr > 0.0 && end_lr > start_lr && end_lr.is_finite()) {
        return Err(ConfigError::invalid(
            "--start-lr, --end-lr",
            format!(
                "need finite numbers with 0 < start < end, got {} and {}",
                shown(start_lr),
                shown(end_lr)
            ),
        )
        .into());
    }
    if !(2..=MAX_STEPS).contains(&steps) {
        return Err(ConfigError::invalid(
            "--steps",
            format!("must be from 2 to {MAX_STEPS}, got {steps}"),
        )
        .into());
    }
    Ok(())
}

/// The suggested LRs; `None` where too few points were recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Suggestions {
    pub steepest: Option<f64>,
    pub valley: Option<f64>,
    pub minimum: Option<f64>,
}

/// `numpy.gradient` of `f` with unit spacing: central differences inside, one-sided
/// at the ends.
pub(crate) fn gradient(f: &[f64]) -> Vec<f64> {
    let n = f.len();
    (0..n)
        .map(|i| match i {
            _ if n < 2 => 0.0,
            0 => f[1] - f[0],
            i if i == n - 1 => f[n - 1] - f[n - 2],
            i => (f[i + 1] - f[i - 1]) / 2.0,
        })
        .collect()
}

/// Lightning's `suggestion(skip_begin=10, skip_end=1)`.
pub(crate) fn steepest(lrs: &[f64], smoothed: &[f64]) -> Option<f64> {
    let (begin, end) = (10, 1);
    if smoothed.len() <= begin + end {
        return None;
    }
    let idx: Vec<usize> = (begin..smoothed.len() - end)
        .filter(|&i| smoothed[i].is_finite())
        .collect();
    if idx.len() < 2 {
        return None;
    }
    let f: Vec<f64> = idx.iter().map(|&i| smoothed[i]).collect();
    let g = gradient(&f);
    let k = (0..g.len()).min_by(|&a, &b| g[a].total_cmp(&g[b]))?;
    // As Lightning: the position among the finite values, offset by skip_begin.
    lrs.get(k + begin).copied()
}

/// fastai's `valley`: the longest run of decreasing losses (by longest decreasing
/// subsequence lengths), and the point 1/2 of the way into its middle third.
pub(crate) fn valley(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let n = losses.len();
    if n == 0 {
        return None;
    }
    let (mut max_start, mut max_end) = (0usize, 0usize);
    let mut lds = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    }
    let sections = (max_end - max_start) as f64 / 3.0;
    let idx = max_start + sections as usize + (sections / 2.0) as usize;
    lrs.get(idx).copied()
}

/// fastai's `minimum`: the LR at the lowest loss, over 10.
pub(crate) fn minimum(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let k = (0..losses.len())
        .filter(|&i| losses[i].is_finite())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))?;
    Some(lrs[k] / 10.0)
}

/// All three, from a run of `planned` steps (fastai slices by the planned count).
pub(crate) fn suggest(run: &RangeRun, planned: usize) -> Suggestions {
    let n = run.lrs.len();
    let (a, b) = (planned / 10, n.saturating_sub(5));
    let (lrs, losses) = if a + 2 <= b {
        (&run.lrs[a..b], &run.smoothed[a..b])
    } else {
        (&run.lrs[..], &run.smoothed[..])
    };
    // The valley rule compares values; a trailing non-finite loss must not count.
    let keep = losses.iter().take_while(|l| l.is_finite()).count();
    Suggestions {
        steepest: steepest(&run.lrs, &run.smoothed),
        valley: valley(&lrs[..keep], &losses[..keep]),
        minimum: minimum(lrs, losses),
    }
}

/// `lr_find.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub start_lr: f64,
    pub end_lr: f64,
    pub steps: usize,
    pub batch_size: usize,
    pub stopped_early: bool,
    pub lrs: Vec<f64>,
    pub losses: Vec<Option<f64>>,
    pub smoothed: Vec<Option<f64>>,
    pub suggestion: Suggestions,
}

/// The y range of the chart: the smoothed curve's, from a little under its lowest to
/// its start or at most 1.5 times its start (as fastai shows it: the raw loss spikes
/// hundreds of times above, which would flatten the curve that matters).
pub(crate) fn y_range(smoothed: &[f64]) -> Option<(f64, f64)> {
    let finite: Vec<f64> = smoothed.iter().copied().filter(|v| v.is_finite()).collect();
    let start = *finite.first()?;
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .min(1.5 * start)
        .max(start);
    let pad = ((hi - lo) * 0.06).max(1e-9);
    Some((lo - pad, hi + pad))
}

/// What the chart is of: `LR range test: mlp [256, 128] on digits, sgd momentum 0.9,
/// batch 64`.
fn svg_title(cfg: &rudder_core::config::TrainConfig) -> String {
    let model = match &cfg.model {
        rudder_core::ModelKind::Mlp => format!("mlp {:?}", cfg.hidden),
        rudder_core::ModelKind::Cnn => format!("cnn {:?}", cfg.channels),
        rudder_core::ModelKind::File(p) => format!("model {}", p.display()),
    };
    let momentum = match cfg.momentum {
        m if m > 0.0 => format!(" momentum {}", rudder_core::text::fmt_num(m)),
        _ => String::new(),
    };
    format!(
        "LR range test: {model} on {}, {}{momentum}, batch {}",
        cfg.data,
        cfg.optimizer.name(),
        cfg.batch_size
    )
}

/// The chart, an SVG file of its own titled `title`: the raw loss faint, the
/// smoothed loss bold, against the LR on a log axis, clipped to the smoothed curve's
/// range; the suggestions as labelled lines, their labels staggered so none overlaps.
pub(crate) fn svg_page(run: &RangeRun, s: &Suggestions, title: &str) -> String {
    let pts = |ys: &[f64]| -> Vec<(f64, f64)> {
        run.lrs.iter().copied().zip(ys.iter().copied()).collect()
    };
    let mut vlines = Vec::new();
    for (name, v, color) in [
        ("steepest", s.steepest, "#c2255c"),
        ("valley", s.valley, "#2b8a3e"),
        ("minimum/10", s.minimum, "#7048e8"),
    ] {
        if let Some(lr) = v {
            let text = format!("{name} {}", rudder_core::text::fmt_num(lr));
            vlines.push(VLine {
                x: lr,
                label: text.clone(),
                color: color.into(),
                tag: Some(text),
            });
        }
    }
    Plot {
        title: "LR range test: loss per step against the learning rate",
        x_label: "learning rate (log scale)",
        x_log: true,
        y_log: false,
        x_whole: false,
        series: vec![
            Series {
                faint: true,
                width: 1.0,
                ..Series::new("loss per step", "#495057", pts(&run.losses))
            },
            Series {
                width: 2.6,
                ..Series::new("smoothed (EMA 0.98)", "#3b5bdb", pts(&run.smoothed))
            },
        ],
        vlines,
        events: &[],
        y_label: "loss",
        y_range: y_range(&run.smoothed),
        legend_inside: true,
        legend: false,
    }
    .standalone(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_numpy() {
        // numpy.gradient([1, 4, 9, 16, 20]) = [3, 4, 6, 5.5, 4]
        assert_eq!(
            gradient(&[1.0, 4.0, 9.0, 16.0, 20.0]),
            [3.0, 4.0, 6.0, 5.5, 4.0]
        );
    }

    /// A loss curve: flat, then falling (steepest in the middle of the fall), then
    /// rising.
    fn curve() -> (Vec<f64>, Vec<f64>) {
        let lrs: Vec<f64> = (0..40).map(|i| 1e-4 * 1.3f64.powi(i)).collect();
        let losses = (0..40)
            .map(|i| match i {
                0..=14 => 2.3,
                15..=29 => 2.3 - 0.1 * (i - 14) as f64 - if i == 22 { 0.1 } else { 0.0 },
                _ => 0.8 + 0.3 * (i - 29) as f64,
            })
            .collect();
        (lrs, losses)
    }

    #[test]
    fn steepest_is_lightnings_rule() {
        let (lrs, losses) = curve();
        // The largest drop: the extra 0.1 at i = 22; central differences put it at 21
        // and 23 equally (-0.15 each), argmin takes the first.
        assert_eq!(steepest(&lrs, &losses), Some(lrs[21]));
    }

    #[test]
    fn valley_is_fastais_rule() {
        let (lrs, losses) = curve();
        // The index fastai's own `valley` gives for this curve (run in Python with
        // numpy): 21. (Its longest decreasing subsequence skips the tie at 23.)
        assert_eq!(valley(&lrs, &losses), Some(lrs[21]));
        assert_eq!(minimum(&lrs, &losses), Some(lrs[29] / 10.0));
    }
}
