//! Runs a parsed command: `train` and the workflow commands through `pipeline`, the
//! `policy` and `plugin` commands here. Errors carry their exit code.

use crate::cli::{Cli, Command, PluginCommand, PolicyCommand, SimOptions, print_json};
use crate::config::ConfigError;
use crate::optim;
use crate::policy::{
    LoadErrorKind, Param, Policies, Rescale, SearchPath, Settings, WatchMode, library, simulate,
    testing,
};

pub use crate::pipeline::{AppError, flagged, load_policies, train};

pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Train(opts) => train(*opts).map(|_| ()),
        Command::Sweep(o) => {
            single_process("sweep")?;
            crate::workflow::commands::sweep(*o)
        }
        Command::LrFind(o) => {
            single_process("lr-find")?;
            crate::workflow::commands::lr_find(*o)
        }
        Command::Rescale(o) => crate::workflow::commands::rescale(o),
        Command::Report(o) => crate::workflow::commands::report(o),
        Command::Policy(cmd) => policy(cmd),
        Command::Plugin(PluginCommand::New { name, dir }) => {
            let made = crate::policy::plugin::scaffold(&dir, &name).map_err(ConfigError)?;
            crate::runlog::say(&format!(
                "created {} (try: rudder policy test {name}/halve)",
                made.display()
            ));
            Ok(())
        }
    }
}

/// `sweep` and `lr-find` run their trials in one process (`--jobs` threads); under
/// `mpirun` they are refused rather than run once per rank.
fn single_process(command: &str) -> Result<(), AppError> {
    let size = rudder::dist::world().size();
    if size == 1 {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{command}: runs in one process (its trials share it with --jobs); it was started as {size} MPI ranks: run it without mpirun, or start one `rudder train` per trial under mpirun"
    ))
    .into())
}

fn default_rule(kind: optim::Kind) -> Rescale {
    match kind {
        optim::Kind::Sgd => Rescale::Linear,
        optim::Kind::Adamw => Rescale::Sqrt,
    }
}

/// `rudder policy ...`: the runtime's own commands (`rudder_policy::library` and
/// `testing`), printed.
pub fn policy(cmd: PolicyCommand) -> Result<(), AppError> {
    let search = SearchPath::from_env();
    match cmd {
        PolicyCommand::Check { policies, param } => {
            let params = param
                .iter()
                .map(|p| {
                    p.parse::<Param>()
                        .map_err(|m| ConfigError(format!("--param {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (lines, failed) = library::check(&policies, &params, &search);
            for l in lines {
                crate::runlog::out(&l);
            }
            failed.map_or(Ok(()), |e| Err(ConfigError(flagged(&e)).into()))
        }
        PolicyCommand::List => {
            for line in library::list_lines(&search) {
                crate::runlog::out(&line);
            }
            Ok(())
        }
        PolicyCommand::Doc { policy } => {
            let text = library::doc(&policy, &search).map_err(|e| match e.kind {
                LoadErrorKind::NotFound => ConfigError(format!("policy doc {}", e)),
                _ => ConfigError(e.to_string()),
            })?;
            crate::runlog::out_text(&text);
            Ok(())
        }
        PolicyCommand::Defs { out } => {
            std::fs::write(&out, library::definitions())
                .map_err(|e| ConfigError(format!("--out {}: {e}", out.display())))?;
            crate::runlog::say(&format!("wrote {}", out.display()));
            Ok(())
        }
        PolicyCommand::Test { which } => {
            let out =
                testing::run(std::path::Path::new("."), &which, &search).map_err(ConfigError)?;
            for failure in &out.failures {
                crate::runlog::out(failure);
            }
            crate::runlog::out(&format!("{} passed, {} failed", out.passed, out.failed));
            if out.failed > 0 {
                Err(AppError::TestsFailed(out.failed))
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
            ConfigError("--epochs and --steps-per-epoch: must be at least 1".into()).into(),
        );
    }
    let (mut set, setup) = sim_setup(sim, epochs, steps_per_epoch)?;
    simulate::schedule(&mut set, setup, per_epoch, &mut print_json);
    Ok(())
}

/// `rudder policy replay`: the hooks fed a run's recorded metrics.
fn replay(sim: &SimOptions, metrics: &std::path::Path) -> Result<(), AppError> {
    let records =
        crate::runlog::read_jsonl(metrics).map_err(|e| ConfigError(format!("--metrics {e}")))?;
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
) -> Result<(Policies, simulate::Setup), ConfigError> {
    if sim.batch_size == 0 || !sim.lr.is_finite() || sim.lr < 0.0 {
        return Err(ConfigError(
            "--lr and --batch-size: need a finite lr >= 0 and a batch size >= 1".into(),
        ));
    }
    let rule = sim.lr_scaling.unwrap_or(default_rule(sim.optimizer));
    let set = load_policies(&sim.policies, &sim.param, rule, WatchMode::Off)?;
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
