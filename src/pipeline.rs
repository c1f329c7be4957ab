//! From a configuration to a finished run: resolve the options (command line over
//! `--config`, or a run's own `config.json` on `--resume`), load the data, build the
//! model and learner, load the policies, and hand them to the trainer. `rudder train`,
//! `sweep` and `lr-find` all go through here.

use candle_core::Device;

use crate::config::{ConfigError, Kernels, TrainConfig, TrainOptions, parse_device};
use crate::data::DataError;
use crate::engine::Net;
use crate::policy::{Controller, Rescale};
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
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{0} policy test case(s) failed")]
    TestsFailed(usize),
}

impl AppError {
    /// 2 for bad usage, configuration, data or checkpoint; 1 for a failure during
    /// the run.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Data(_) | AppError::Checkpoint(_) => 2,
            AppError::Train(_) | AppError::TestsFailed(_) => 1,
        }
    }
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
            // candle's CUDA errors carry a backtrace after the message: keep the message.
            Device::new_cuda(n).map_err(|e| {
                let e = e.to_string();
                let msg = e.lines().next().unwrap_or_default();
                ConfigError(format!(
                    "--device {}: no usable CUDA device {n}: {msg}",
                    cfg.device
                ))
            })
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
    let device = device(cfg)?;
    let data = load_data(cfg, &device)?;
    with_threads(cfg.threads, || train_on(cfg, &data, controller))
}

/// Runs `f` with `threads` CPU threads for the tensor kernels: in a rayon pool of its
/// own, so the engine's products and candle's parallel loops run there (the process
/// environment is never changed; a sweep's trials each get their own pool). Where a
/// pool cannot be started, `f` runs on the global one.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("rudder-kernel-{i}"))
        // `f` runs on a worker, and calls the policies: it needs their stack.
        .stack_size(crate::script::POLICY_STACK)
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
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
    cfg.arch()
        .check_size(io, cfg.batch_size)
        .map_err(ConfigError)?;
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
/// theirs), in the caller's thread pool (see [`with_threads`]).
pub fn train_on(
    cfg: &TrainConfig,
    data: &data::Data,
    controller: &mut dyn Controller,
) -> Result<Summary, AppError> {
    let (learner, param_count) = build_learner(cfg, data)?;
    let out_fault = |e: std::io::Error| ConfigError(format!("--out {}: {e}", cfg.out.display()));
    let root = cfg.out.join("checkpoints");
    let (log, resume) = if cfg.resume.is_some() {
        crate::checkpoint::clean(&root).map_err(out_fault)?;
        let loaded = crate::checkpoint::latest(&root)?;
        if let Some(l) = &loaded {
            crate::checkpoint::check_model(learner.model(), &l.model, &l.dir)?;
        }
        let sizes = loaded.as_ref().map(|l| l.state.logs).unwrap_or_default();
        let log = RunLog::reopen(&cfg.out, cfg, cfg.log_steps, sizes).map_err(out_fault)?;
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
            RunLog::create(&cfg.out, cfg, cfg.log_steps).map_err(out_fault)?,
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
    let mut trainer = Trainer::new(cfg, data, learner, param_count, log).with_watcher(watcher);
    match resume {
        Some(Some(loaded)) => trainer.resume_from(loaded, controller)?,
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
