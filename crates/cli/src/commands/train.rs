//! `rudder train`: the policies loaded (and watched on rank 0), the run, and for a
//! run stopped by a signal the error that says how to resume it.

use rudder_core::{TrainOptions, WatchMode};
use rudder_train::{Summary, load_policies, train_with};

use crate::error::AppError;

/// `rudder train`.
pub(crate) fn command(opts: TrainOptions) -> Result<Summary, AppError> {
    if let Some(path) = &opts.config
        && TrainOptions::from_file(path)?.launcher.is_some()
    {
        return Err(rudder_core::config::ConfigError::invalid(
            format!("{}: launcher", path.display()),
            "is rudder sweep's key (where its trials run); rudder train trains here",
        )
        .into());
    }
    let cfg = super::resolve(opts)?;
    // Every rank loads the policies (a fault is the same exit 2 everywhere); rank 0
    // alone calls and watches them.
    let root = rudder_train::dist::world().rank() == 0;
    let watch = if root { cfg.watch } else { WatchMode::Off };
    let mut policies = load_policies(&cfg.policy, &cfg.param, cfg.lr_scaling, watch)?;
    if let Some(mode) = policies.watching()
        && !cfg.quiet
    {
        rudder_core::term::say(&format!(
            "rudder: watching {} policy file(s) for changes ({mode})",
            policies.watched_files().len()
        ));
    }
    let summary = train_with(&cfg, &mut policies)?;
    if !summary.interrupted {
        return Ok(summary);
    }
    let at = format!(
        "interrupted at epoch {} step {}",
        summary.epochs_run + 1,
        summary.steps
    );
    let here = cfg
        .out
        .join("checkpoints")
        .join(format!("step-{}", summary.steps));
    let how = match &summary.last_checkpoint {
        Some(last) if *last == here => {
            format!("continue with: rudder train --resume {}", cfg.out.display())
        }
        Some(last) => format!(
            "its checkpoint could not be written (see events.jsonl); continue from {} with: rudder train --resume {}",
            last.strip_prefix(&cfg.out).unwrap_or(last).display(),
            cfg.out.display()
        ),
        None => "no checkpoint could be written: the run cannot be continued".into(),
    };
    Err(AppError::Interrupted(format!("{at}; {how}")))
}
