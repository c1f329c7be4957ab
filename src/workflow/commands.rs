//! The workflow commands: options in, files and lines out. The work itself is in
//! `sweep`, `lr_find`, `rescale` and `crate::report`.

use crate::cli::print_json;
use crate::cli::{LrFindOptions, ReportOptions, RescaleOptions, SweepOptions};
use crate::config::ConfigError;
use crate::pipeline::{AppError, build_learner, device, load_data, resolve};

/// `rudder sweep`.
pub fn sweep(o: SweepOptions) -> Result<(), AppError> {
    let mut opts = o.train;
    if opts.resume.is_some() {
        return Err(ConfigError("--resume: a sweep cannot be resumed; run it again".into()).into());
    }
    if opts.out.is_none() {
        opts.out = Some(crate::runlog::default_run_dir().with_extension("sweep"));
    }
    let cfg = resolve(opts)?;
    let jobs = o.jobs.max(1);
    let spec = crate::workflow::sweep::Spec {
        multipliers: o.multipliers,
        metric: o.metric,
        jobs,
    };
    crate::workflow::sweep::check(&spec)?;
    let device = device(&cfg)?;
    let data = load_data(&cfg, &device)?;
    crate::runlog::say(&format!(
        "rudder sweep: {} trials of {} epochs (lr {} x {:?}), {} at a time, in {}",
        spec.multipliers.len(),
        cfg.epochs,
        cfg.lr,
        spec.multipliers,
        jobs.min(spec.multipliers.len()),
        cfg.out.display()
    ));
    let outcome = crate::workflow::sweep::run(&cfg, &spec, &data)?;
    crate::runlog::say_text(&crate::workflow::sweep::table(&outcome));
    match outcome.winner {
        Some(w) => {
            let t = &outcome.trials[w];
            crate::runlog::say(&format!(
                "winner: {} (lr {}) by {}; report: {}",
                t.dir,
                t.lr,
                outcome.metric,
                cfg.out.join("report.html").display()
            ));
            print_json(
                serde_json::json!({"multiplier": t.multiplier, "lr": t.lr, "dir": cfg.out.join(&t.dir), "metric": outcome.metric, "score": t.score}),
            );
        }
        None => crate::runlog::say("no winner: every trial diverged"),
    }
    Ok(())
}

/// `rudder lr-find`.
pub fn lr_find(o: LrFindOptions) -> Result<(), AppError> {
    use crate::train::range::{Ramp, range_test};
    use crate::workflow::lr_find as lf;
    let mut opts = o.train;
    if opts.out.is_none() {
        opts.out = Some(crate::runlog::default_run_dir().with_extension("lr-find"));
    }
    let cfg = resolve(opts)?;
    if !(o.start_lr > 0.0 && o.end_lr > o.start_lr && o.end_lr.is_finite()) || o.steps < 2 {
        return Err(ConfigError(format!(
            "--start-lr, --end-lr, --steps: need 0 < start < end and at least 2 steps, got {} {} {}",
            o.start_lr, o.end_lr, o.steps
        ))
        .into());
    }
    let _lock = crate::runlog::claim(&cfg.out, "--out").map_err(ConfigError)?;
    let device = device(&cfg)?;
    let data = load_data(&cfg, &device)?;
    let ramp = Ramp {
        start_lr: o.start_lr,
        end_lr: o.end_lr,
        steps: o.steps,
    };
    // A model of its own, dropped at the end: nothing a later run uses is changed.
    let run = crate::pipeline::with_threads(cfg.threads, || -> Result<_, AppError> {
        let (mut learner, _) = build_learner(&cfg, &data)?;
        Ok(range_test(&cfg, &data, learner.as_mut(), ramp)?)
    })?;
    if crate::interrupt::requested() {
        return Err(AppError::Interrupted(format!(
            "interrupted after {} of {} steps; nothing written (an LR range test is not resumed: run it again)",
            run.lrs.len(),
            o.steps
        )));
    }
    let s = lf::suggest(&run, o.steps);
    let finite = |v: &[f64]| v.iter().map(|&x| crate::runlog::finite(x)).collect();
    let report = lf::Report {
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
    let io = |e: std::io::Error| ConfigError(format!("--out {}: {e}", out.display()));
    let mut text = serde_json::to_string_pretty(&report).expect("serialises");
    text.push('\n');
    crate::runlog::write_atomic(&out.join("lr_find.json"), text.as_bytes()).map_err(io)?;
    crate::runlog::write_atomic(&out.join("lr_find.svg"), lf::svg_page(&run, &s).as_bytes())
        .map_err(io)?;
    let show = |v: Option<f64>| v.map_or("-".into(), crate::report::fmt_num);
    crate::runlog::say(&format!(
        "lr-find: {} steps{} from {} to {}; suggestions: steepest {}, valley {}, minimum/10 {}; lr_find.json and lr_find.svg in {}",
        run.lrs.len(),
        if run.stopped_early {
            " (stopped: the loss ran away)"
        } else {
            ""
        },
        o.start_lr,
        run.lrs.last().copied().unwrap_or(o.start_lr),
        show(s.steepest),
        show(s.valley),
        show(s.minimum),
        out.display()
    ));
    print_json(serde_json::to_value(s).expect("serialises"));
    Ok(())
}

/// `rudder rescale`.
pub fn rescale(o: RescaleOptions) -> Result<(), AppError> {
    if !(o.lr.is_finite() && o.lr >= 0.0)
        || o.batch_size == 0
        || o.to_batch_size == 0
        || o.epochs == 0
    {
        return Err(ConfigError(
            "--lr, --batch-size, --to-batch-size, --epochs: need a finite lr >= 0 and sizes >= 1"
                .into(),
        )
        .into());
    }
    if o.dataset_size == Some(0) {
        return Err(ConfigError("--dataset-size: must be at least 1, got 0".into()).into());
    }
    let r = crate::workflow::rescale::rescale(
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
        for line in crate::workflow::rescale::lines(&r) {
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(())
}

/// `rudder report`.
pub fn report(o: ReportOptions) -> Result<(), AppError> {
    let runs = o
        .runs
        .iter()
        .map(|d| crate::report::load_run(d).map_err(ConfigError))
        .collect::<Result<Vec<_>, _>>()?;
    let title = format!("rudder report: {} run(s)", runs.len());
    // Beside the first run, not wherever the command happens to run.
    let out = o.out.unwrap_or_else(|| {
        o.runs[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("compare.html")
    });
    crate::report::write_page(&out, &crate::report::compare(&title, &runs))
        .map_err(|e| ConfigError(format!("--out {}: {e}", out.display())))?;
    crate::runlog::say(&format!("wrote {}", out.display()));
    Ok(())
}
