//! `rudder policy ...` and `rudder plugin new`: the policy runtime's own commands
//! (`rudder_policy::library`, `testing`, `simulate`, `plugin`), printed.

use rudder_core::config::ConfigError;
use rudder_core::term::{info, out, out_text};
use rudder_core::{Rescale, WatchMode};
use rudder_policy::{LoadErrorKind, Policies, SearchPath, Settings, library, simulate, testing};

use crate::cli::{PolicyCommand, SimOptions, print_json};
use crate::error::AppError;

/// `rudder policy ...`: the runtime's own commands (`rudder_policy::library` and
/// `testing`), printed.
pub(crate) fn command(cmd: PolicyCommand) -> Result<(), AppError> {
    let search = SearchPath::from_env()?;
    match cmd {
        PolicyCommand::Check { policies, param } => {
            let params = rudder_train::parse_params(&param)?;
            let (lines, failed) = library::check(&policies, &params, &search);
            for l in lines {
                out(&l);
            }
            failed.map_or(Ok(()), |e| Err(e.into()))
        }
        PolicyCommand::List => {
            for line in library::list_lines(&search) {
                out(&line);
            }
            Ok(())
        }
        PolicyCommand::Doc { policy } => {
            let text = library::doc(&policy, &search).map_err(|e| match e.kind {
                LoadErrorKind::NotFound => AppError::Policy {
                    at: "policy doc",
                    source: e,
                },
                _ => e.into(),
            })?;
            out_text(&text);
            Ok(())
        }
        PolicyCommand::Defs { out } => {
            std::fs::write(&out, library::definitions())
                .map_err(|e| ConfigError::file(format!("--out {}", out.display()), e))?;
            info(&format!("wrote {}", out.display()));
            Ok(())
        }
        PolicyCommand::Test {
            which,
            std,
            allow_empty,
        } => {
            let done = if std {
                testing::run_std(&which)?
            } else {
                testing::run(std::path::Path::new("."), &which, &search)?
            };
            if done.passed + done.failed == 0 {
                if allow_empty {
                    info("no policy tests to run");
                    return Ok(());
                }
                return Err(AppError::NoTests);
            }
            for failure in &done.failures {
                out(failure);
            }
            out(&format!("{} passed, {} failed", done.passed, done.failed));
            if done.failed > 0 {
                Err(AppError::TestsFailed(done.failed))
            } else {
                Ok(())
            }
        }
        PolicyCommand::Schedule {
            sim,
            epochs,
            steps_per_epoch,
            per_epoch,
        } => schedule(&sim, epochs, steps_per_epoch, per_epoch),
        PolicyCommand::Replay { sim, metrics } => replay(&sim, &metrics),
    }
}

/// `rudder policy schedule`: the LR and batch size of every step (or epoch).
fn schedule(
    sim: &SimOptions,
    epochs: usize,
    steps_per_epoch: usize,
    per_epoch: bool,
) -> Result<(), AppError> {
    if epochs == 0 || steps_per_epoch == 0 {
        return Err(
            ConfigError::invalid("--epochs and --steps-per-epoch", "must be at least 1").into(),
        );
    }
    let (mut set, setup) = sim_setup(sim, epochs, steps_per_epoch)?;
    simulate::schedule(&mut set, setup, per_epoch, &mut print_json);
    Ok(())
}

/// `rudder policy replay`: the hooks fed a run's recorded metrics.
fn replay(sim: &SimOptions, metrics: &std::path::Path) -> Result<(), AppError> {
    let records = rudder_run::files::read_jsonl(metrics).map_err(|source| AppError::Read {
        flag: "--metrics",
        source,
    })?;
    let first = |key: &str| {
        records
            .first()
            .and_then(|r| r.get(key))
            .and_then(|v| v.as_u64())
    };
    let epochs = first("epochs").map_or(records.len(), |e| e as usize);
    let steps = first("step").map_or(1, |s| s.max(1) as usize);
    let (mut set, setup) = sim_setup(sim, epochs.max(1), steps)?;
    simulate::replay(&mut set, setup, &records, &mut print_json);
    Ok(())
}

fn sim_setup(
    sim: &SimOptions,
    epochs: usize,
    steps_per_epoch: usize,
) -> Result<(Policies, simulate::Setup), AppError> {
    if sim.batch_size == 0 || !sim.lr.is_finite() || sim.lr < 0.0 {
        return Err(ConfigError::invalid(
            "--lr and --batch-size",
            "need a finite lr >= 0 and a batch size >= 1",
        )
        .into());
    }
    let rule = sim
        .lr_scaling
        .unwrap_or(Rescale::default_for(sim.optimizer));
    let set = rudder_train::load_policies(&sim.policies, &sim.param, rule, WatchMode::Off)?;
    let mut settings = Settings::new(sim.lr, sim.batch_size);
    settings.epochs = epochs;
    let mut setup = simulate::Setup::new(settings, steps_per_epoch);
    if let Some(n) = sim.dataset_size {
        setup.dataset_size = n;
    }
    setup.optimizer = sim.optimizer.name().to_string();
    setup.rule = rule;
    Ok((set, setup))
}

/// `rudder plugin new NAME`: a plugin folder to start from.
pub(crate) fn new_plugin(dir: &std::path::Path, name: &str) -> Result<(), AppError> {
    let made = rudder_policy::plugin::scaffold(dir, name)?;
    info(&format!(
        "created {} (try: rudder policy test {name}/halve)",
        made.display()
    ));
    Ok(())
}
