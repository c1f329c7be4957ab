//! Runs a parsed command: `train` and the workflow commands through `pipeline`, the
//! `policy` and `plugin` commands here. Errors carry their exit code.

use crate::cli::{Cli, Command, PluginCommand, PolicyCommand, SimOptions, print_json};
use crate::config::ConfigError;
use crate::optim;
use crate::policy::{Rescale, simulate};
use crate::script::{PolicySet, SearchPath};

pub use crate::pipeline::{
    AppError, build_learner, load_data, load_policies, resolve, train, train_on, train_with,
};

pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Train(opts) => train(*opts).map(|_| ()),
        Command::Sweep(o) => crate::workflow::commands::sweep(*o),
        Command::LrFind(o) => crate::workflow::commands::lr_find(*o),
        Command::Rescale(o) => crate::workflow::commands::rescale(o),
        Command::Report(o) => crate::workflow::commands::report(o),
        Command::Policy(cmd) => policy(cmd),
        Command::Plugin(PluginCommand::New { name, dir }) => {
            let made = crate::script::plugin::scaffold(&dir, &name).map_err(ConfigError)?;
            crate::runlog::say(&format!(
                "created {} (try: rudder policy test {name}/halve)",
                made.display()
            ));
            Ok(())
        }
    }
}

fn default_rule(kind: optim::Kind) -> Rescale {
    match kind {
        optim::Kind::Sgd => Rescale::Linear,
        optim::Kind::Adamw => Rescale::Sqrt,
    }
}

/// `rudder policy ...`.
pub fn policy(cmd: PolicyCommand) -> Result<(), AppError> {
    match cmd {
        PolicyCommand::Check { policies, param } => {
            let mut failed = None;
            for spec in &policies {
                match load_policies(std::slice::from_ref(spec), &[], Rescale::Linear) {
                    Ok(set) => {
                        let p = &set.policies()[0];
                        let none = |v: Vec<&str>| {
                            if v.is_empty() {
                                "(none)".to_string()
                            } else {
                                v.join(", ")
                            }
                        };
                        let params: Vec<&str> = p.params.keys().map(|k| k.as_str()).collect();
                        crate::runlog::out(&format!(
                            "ok {} ({}): hooks {}; params {}; version {}",
                            p.name,
                            p.file.display(),
                            none(p.hooks()),
                            none(params),
                            p.version
                        ));
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if failed.is_none() && !param.is_empty() {
                load_policies(&policies, &param, Rescale::Linear)?;
            }
            failed.map_or(Ok(()), |e| Err(e.into()))
        }
        PolicyCommand::List => {
            let entries = crate::script::library::list(&SearchPath::from_env());
            let width = entries
                .iter()
                .map(|e| e.name.chars().count())
                .max()
                .unwrap_or(0);
            for e in entries {
                // The description's first sentence, cut at a word to fit the column.
                let summary = crate::script::library::headline(&e.summary, 64);
                let mut line = format!("{:<width$}  {summary:<64}  {}", e.name, e.file);
                if !e.shadows.is_empty() {
                    line.push_str(&format!("  ({})", e.shadows.join("; ")));
                }
                crate::runlog::out(&line);
            }
            Ok(())
        }
        PolicyCommand::Doc { policy } => {
            let search = SearchPath::from_env();
            let src = crate::script::locate(&policy, &search)
                .map_err(|m| ConfigError(format!("policy doc {policy}: {m}")))?;
            let set = load_policies(std::slice::from_ref(&policy), &[], Rescale::Linear)?;
            crate::runlog::out_text(&crate::script::library::doc(&src, &set.policies()[0]));
            Ok(())
        }
        PolicyCommand::Defs { out } => {
            std::fs::write(&out, crate::script::library::definitions())
                .map_err(|e| ConfigError(format!("--out {}: {e}", out.display())))?;
            crate::runlog::say(&format!("wrote {}", out.display()));
            Ok(())
        }
        PolicyCommand::Test { which } => {
            let all = crate::script::testing::discover(std::path::Path::new("."));
            let mut files = Vec::new();
            for w in &which {
                if w.ends_with(".json") {
                    files.push(std::path::PathBuf::from(w));
                } else {
                    let before = files.len();
                    for f in &all {
                        let text = std::fs::read_to_string(f).unwrap_or_default();
                        if serde_json::from_str::<serde_json::Value>(&text)
                            .is_ok_and(|v| v["policy"] == w.as_str())
                        {
                            files.push(f.clone());
                        }
                    }
                    if files.len() == before {
                        return Err(ConfigError(format!("policy test {w}: no test file for it in scripts/tests or plugins/*/tests")).into());
                    }
                }
            }
            if which.is_empty() {
                files = all;
            }
            let search = SearchPath::from_env();
            let mut out = crate::script::testing::Outcome::default();
            for f in &files {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| ConfigError(format!("{}: {e}", f.display())))?;
                let file: crate::script::testing::TestFile =
                    serde_json::from_str(&text).map_err(|e| {
                        ConfigError(format!("{}:{}:{}: {e}", f.display(), e.line(), e.column()))
                    })?;
                crate::script::testing::run_file(
                    &file,
                    &f.display().to_string(),
                    &search,
                    &mut out,
                );
            }
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
        } => {
            if epochs == 0 || steps_per_epoch == 0 {
                return Err(ConfigError(
                    "--epochs and --steps-per-epoch: must be at least 1".into(),
                )
                .into());
            }
            let (mut set, setup) = sim_setup(&sim, epochs, steps_per_epoch)?;
            simulate::schedule(&mut set, setup, per_epoch, &mut print_json);
            Ok(())
        }
        PolicyCommand::Replay { sim, metrics } => {
            let records = crate::runlog::read_jsonl(&metrics)
                .map_err(|e| ConfigError(format!("--metrics {e}")))?;
            let epochs = records
                .first()
                .and_then(|r| r.get("epochs"))
                .and_then(|v| v.as_u64())
                .map_or(records.len(), |e| e as usize);
            let steps = records
                .first()
                .and_then(|r| r.get("step"))
                .and_then(|v| v.as_u64())
                .map_or(1, |s| s.max(1) as usize);
            let (mut set, setup) = sim_setup(&sim, epochs.max(1), steps)?;
            simulate::replay(&mut set, setup, &records, &mut print_json);
            Ok(())
        }
    }
}

fn sim_setup(
    sim: &SimOptions,
    epochs: usize,
    steps_per_epoch: usize,
) -> Result<(PolicySet, simulate::Setup), ConfigError> {
    if sim.batch_size == 0 || !sim.lr.is_finite() || sim.lr < 0.0 {
        return Err(ConfigError(
            "--lr and --batch-size: need a finite lr >= 0 and a batch size >= 1".into(),
        ));
    }
    let rule = sim.lr_scaling.unwrap_or(default_rule(sim.optimizer));
    let set = load_policies(&sim.policies, &sim.param, rule)?;
    let setup = simulate::Setup {
        settings: crate::policy::Settings {
            lr: sim.lr,
            batch_size: sim.batch_size,
            accumulation: 1,
            epochs,
            momentum: 0.0,
            weight_decay: 0.0,
        },
        steps_per_epoch,
        dataset_size: sim.dataset_size.unwrap_or(steps_per_epoch * sim.batch_size),
        optimizer: sim.optimizer.name(),
        rule,
    };
    Ok((set, setup))
}
