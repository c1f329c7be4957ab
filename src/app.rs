//! Runs a parsed command: resolves the configuration, loads data, builds the model and
//! optimizer, and hands them to the trainer. Errors carry their exit code.

use candle_core::Device;

use crate::cli::{Cli, Command, PluginCommand, PolicyCommand, SimOptions};
use crate::config::{ConfigError, Kernels, TrainConfig, TrainOptions, parse_device};
use crate::data::DataError;
use crate::engine::Net;
use crate::policy::{Controller, Rescale, simulate};
use crate::runlog::RunLog;
use crate::script::{LoadError, Param, PolicySet, SearchPath};
use crate::train::{Engine, Graph, Learner, Summary, TrainError, Trainer};
use crate::{data, model, optim};

/// Any failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{0} policy test case(s) failed")]
    TestsFailed(usize),
}

impl AppError {
    /// 2 for bad usage, configuration or data; 1 for a failure during the run.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Data(_) => 2,
            AppError::Train(_) | AppError::TestsFailed(_) => 1,
        }
    }
}

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
            eprintln!(
                "created {} (try: rudder policy test {name}/halve)",
                made.display()
            );
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

/// One JSON line on stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_json(v: serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{v}");
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
                        let hooks = p.hooks();
                        let params: Vec<&str> = p.params.keys().map(|k| k.as_str()).collect();
                        println!(
                            "ok {} ({}): hooks {}; params {}; version {}",
                            p.name,
                            p.file.display(),
                            hooks.join(", "),
                            params.join(", "),
                            p.version
                        );
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
            for e in crate::script::library::list(&SearchPath::from_env()) {
                println!("{:<28} {:<70} {}", e.name, e.summary, e.file);
            }
            Ok(())
        }
        PolicyCommand::Doc { policy } => {
            let search = SearchPath::from_env();
            let src = crate::script::locate(&policy, &search)
                .map_err(|m| ConfigError(format!("policy doc {policy}: {m}")))?;
            let set = load_policies(std::slice::from_ref(&policy), &[], Rescale::Linear)?;
            print!("{}", crate::script::library::doc(&src, &set.policies()[0]));
            Ok(())
        }
        PolicyCommand::Defs { out } => {
            std::fs::write(&out, crate::script::library::definitions())
                .map_err(|e| ConfigError(format!("--out {}: {e}", out.display())))?;
            eprintln!("wrote {}", out.display());
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
                println!("{failure}");
            }
            println!("{} passed, {} failed", out.passed, out.failed);
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
            let text = std::fs::read_to_string(&metrics)
                .map_err(|e| ConfigError(format!("--metrics {}: {e}", metrics.display())))?;
            let mut records = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    ConfigError(format!(
                        "{}:{}:{}: {e}",
                        metrics.display(),
                        i + 1,
                        e.column()
                    ))
                })?;
                records.push(v);
            }
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

/// Merges the `--config` file under the command line and validates both.
pub fn resolve(cli: TrainOptions) -> Result<TrainConfig, ConfigError> {
    cli.check(&|k| format!("--{}", k.replace('_', "-")))?;
    if let Some(dir) = cli.resume.clone() {
        if cli.config.is_some() {
            return Err(ConfigError(
                "--config: a resumed run takes its options from its own config.json; give changes as flags".into(),
            ));
        }
        if cli.out.as_ref().is_some_and(|o| *o != dir) {
            return Err(ConfigError(format!(
                "--out: a resumed run stays in its folder {}",
                dir.display()
            )));
        }
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(ConfigError(format!(
                "--resume {}: no config.json there (not a run directory)",
                dir.display()
            )));
        }
        let file = TrainOptions::from_file(&path)?;
        file.check(&|k| format!("{}: {k}", path.display()))?;
        let mut merged = cli.or(file);
        merged.out = Some(dir);
        return merged.resolve();
    }
    let merged = match &cli.config {
        Some(path) => {
            let file = TrainOptions::from_file(path)?;
            file.check(&|k| format!("{}: {k}", path.display()))?;
            cli.or(file)
        }
        None => cli,
    };
    merged.resolve()
}

pub(crate) fn device(cfg: &TrainConfig) -> Result<Device, ConfigError> {
    match parse_device(&cfg.device).map_err(|m| ConfigError(format!("--device: {m}")))? {
        None => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        Some(n) => {
            Device::new_cuda(n).map_err(|e| ConfigError(format!("--device {}: {e}", cfg.device)))
        }
        #[cfg(not(feature = "cuda"))]
        Some(_) => Err(ConfigError(format!(
            "--device {}: this rudder was built without CUDA (cargo build --release --features cuda)",
            cfg.device
        ))),
    }
}

/// `rudder train`.
pub fn train(opts: TrainOptions) -> Result<Summary, AppError> {
    let cfg = resolve(opts)?;
    let mut policies = load_policies(&cfg.policy, &cfg.param, cfg.lr_scaling)?;
    train_with(&cfg, &mut policies)
}

/// Loads `specs` with `params` from the search path; faults are exit code 2.
pub fn load_policies(
    specs: &[String],
    params: &[String],
    rule: Rescale,
) -> Result<PolicySet, ConfigError> {
    let params = params
        .iter()
        .map(|p| {
            p.parse::<Param>()
                .map_err(|m| ConfigError(format!("--param {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PolicySet::load(specs, &params, &SearchPath::from_env(), rule).map_err(|e| match e {
        LoadError::Script(e) => ConfigError(e.to_string()),
        other => ConfigError(other.to_string()),
    })
}

/// Trains as configured by `cfg`, steered by `controller`.
pub fn train_with(cfg: &TrainConfig, controller: &mut dyn Controller) -> Result<Summary, AppError> {
    let cfg = cfg.clone();
    // candle sizes its gemm thread pool from this variable on every call, and rayon's
    // pool reads it once; set before any tensor work (no other thread runs yet).
    unsafe { std::env::set_var("RAYON_NUM_THREADS", cfg.threads.to_string()) };
    let device = device(&cfg)?;
    let data = load_data(&cfg, &device)?;
    train_on(&cfg, &data, controller)
}

/// Loads the data set `cfg` names onto `device`.
pub fn load_data(cfg: &TrainConfig, device: &Device) -> Result<data::Data, AppError> {
    Ok(data::load(
        &cfg.source(),
        cfg.val_fraction,
        cfg.seed,
        device,
    )?)
}

/// The model and learner for `cfg` on `data`: the CPU engine where it applies, else
/// candle's autograd. Returns the learner and the parameter count.
pub fn build_learner(
    cfg: &TrainConfig,
    data: &data::Data,
) -> Result<(Box<dyn Learner>, usize), AppError> {
    let device = data.train.x.device().clone();
    let io = model::Io {
        features: data.features,
        image: data.image,
        classes: data.classes,
    };
    let model = model::build(&cfg.arch(), io, cfg.seed, &device).map_err(ConfigError)?;
    let param_count = model.param_count();
    let kernels = if device.is_cpu() && cfg.kernels == Kernels::Rudder {
        Net::from_model(&cfg.arch(), io, &model, cfg.threads).ok()
    } else {
        None
    };
    let learner: Box<dyn Learner> = match kernels {
        Some(net) => Box::new(Engine::new(
            model,
            net,
            optim::Flat::new(cfg.optimizer, cfg.hyper()),
            cfg.loss,
        )),
        None => {
            let opt = optim::build(cfg.optimizer, model.params(), cfg.hyper())
                .map_err(TrainError::from)?;
            Box::new(Graph::new(model, opt, cfg.loss))
        }
    };
    Ok((learner, param_count))
}

/// Trains as configured by `cfg` on already loaded `data` (a sweep's trials share
/// theirs). `RAYON_NUM_THREADS` is the caller's to set.
pub fn train_on(
    cfg: &TrainConfig,
    data: &data::Data,
    controller: &mut dyn Controller,
) -> Result<Summary, AppError> {
    let cfg = cfg.clone();
    let (learner, param_count) = build_learner(&cfg, data)?;
    let out_fault = |e: std::io::Error| ConfigError(format!("--out {}: {e}", cfg.out.display()));
    let root = cfg.out.join("checkpoints");
    let (log, resume) = if cfg.resume.is_some() {
        crate::checkpoint::clean(&root).map_err(out_fault)?;
        let loaded = crate::checkpoint::latest(&root).map_err(|e| ConfigError(e.to_string()))?;
        if let Some(l) = &loaded {
            crate::checkpoint::check_model(learner.model(), &l.model, &l.dir)
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let sizes = loaded.as_ref().map(|l| l.state.logs).unwrap_or_default();
        let log = RunLog::reopen(&cfg.out, &cfg, cfg.log_steps, sizes).map_err(out_fault)?;
        (log, Some(loaded))
    } else {
        if std::fs::metadata(cfg.out.join("metrics.jsonl")).is_ok_and(|m| m.len() > 0) {
            return Err(ConfigError(format!(
                "--out {}: already holds a run (its metrics.jsonl is not empty); choose another folder, or --resume it",
                cfg.out.display()
            ))
            .into());
        }
        (
            RunLog::create(&cfg.out, &cfg, cfg.log_steps).map_err(out_fault)?,
            None,
        )
    };
    if !cfg.quiet {
        eprintln!(
            "rudder: {} on {} ({} train / {} val, {} classes), {} parameters, run dir {}",
            match cfg.model {
                crate::config::ModelKind::Mlp => "mlp",
                crate::config::ModelKind::Cnn => "cnn",
            },
            cfg.source().name(),
            data.train.len(),
            data.val.len(),
            data.classes,
            param_count,
            cfg.out.display()
        );
    }
    let watched = controller.watched();
    let watcher = crate::watch::Watcher::start(&watched, cfg.watch)
        .map_err(|e| ConfigError(format!("--watch: {e}")))?;
    if let Some(w) = &watcher
        && !cfg.quiet
    {
        eprintln!(
            "rudder: watching {} policy file(s) for changes ({})",
            watched.len(),
            w.mode
        );
    }
    let mut trainer = Trainer::new(&cfg, data, learner, param_count, log).with_watcher(watcher);
    match resume {
        Some(Some(loaded)) => trainer
            .resume_from(loaded, controller)
            .map_err(|e| ConfigError(e.to_string()))?,
        Some(None) => trainer.restart(),
        None => {}
    }
    let summary = trainer.run(controller)?;
    if !cfg.quiet
        && let Some(last) = &summary.last
    {
        eprintln!(
            "done: {} epochs, {} steps, val_acc {:.4}, val_loss {:.4}; report: {}",
            summary.epochs_run,
            summary.steps,
            last.val_acc,
            last.val_loss,
            cfg.out.join("report.html").display()
        );
    }
    Ok(summary)
}
