//! From a configuration to what a run needs: the device, the data on it, the model
//! and its learner (the CPU engine where it applies, else candle's autograd), the
//! policies, and a thread pool of the run's size. `rudder train`, `sweep`,
//! `lr-find` and [`crate::fit`] all go through here.

use candle_core::Device;
use rudder_core::config::{ConfigError, TrainConfig, parse_device};
use rudder_core::{Kernels, Rescale, WatchMode};
use rudder_engine::{Flat, Net};
use rudder_nn::data::{Data, Source};
use rudder_nn::model::{Arch, Io};
use rudder_policy::{Controller, LoadError, LoadErrorKind, Messages, Param, Policies};

use crate::trainer::{CandleLearner, EngineLearner, Learner, Summary, TrainError};
use crate::{Error, train_on};

/// The device `--device` names.
pub fn device(cfg: &TrainConfig) -> Result<Device, ConfigError> {
    match parse_device(&cfg.device).map_err(|e| ConfigError::invalid("--device", e.to_string()))? {
        None => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        Some(n) => {
            // Under mpirun each rank takes the GPU of its index on its machine.
            let n = crate::dist::local_gpu(n);
            // candle's CUDA errors carry a backtrace after the message: keep the message.
            Device::new_cuda(n).map_err(|e| {
                let e = e.to_string();
                let msg = e.lines().next().unwrap_or_default();
                ConfigError::invalid(
                    format!("--device {}", cfg.device),
                    format!("no usable CUDA device {n}: {msg}"),
                )
            })
        }
        #[cfg(not(feature = "cuda"))]
        Some(_) => Err(ConfigError::invalid(
            format!("--device {}", cfg.device),
            "this rudder was built without CUDA (cargo build --release -p rudder-cli --features cuda)",
        )),
    }
}

/// Loads `specs` with `params` from the search path, watching their files in
/// `watch`; a fault names the flag (`--policy`, `--param`, `--watch`).
pub fn load_policies(
    specs: &[String],
    params: &[String],
    rule: Rescale,
    watch: WatchMode,
) -> Result<Policies, Error> {
    let params = parse_params(params)?;
    Policies::builder()
        .policies(specs.iter().cloned())
        .params(params)
        .rescale(rule)
        .watch(watch)
        .messages(Messages::to(rudder_core::term::say))
        .build()
        .map_err(Error::Policy)
}

/// Each `--param [POLICY.]KEY=VALUE`.
pub fn parse_params(params: &[String]) -> Result<Vec<Param>, ConfigError> {
    params
        .iter()
        .map(|p| {
            p.parse::<Param>()
                .map_err(|e| ConfigError::invalid(format!("--param {:?}", e.input()), e.reason()))
        })
        .collect()
}

/// A load error as the command line says it: naming `--policy`, `--param` or
/// `--watch`.
pub fn flagged(e: &LoadError) -> String {
    match (e.kind, &e.spec) {
        (LoadErrorKind::NotFound, Some(spec)) => format!("--policy {spec}: {}", e.message),
        (LoadErrorKind::Param, _) => format!("--param {}", e.message),
        (LoadErrorKind::Watch, _) => format!("--watch: {}", e.message),
        _ => e.to_string(),
    }
}

/// Trains as configured by `cfg`, steered by `controller`.
pub fn train_with(cfg: &TrainConfig, controller: &mut dyn Controller) -> Result<Summary, Error> {
    let device = device(cfg)?;
    #[cfg(feature = "nccl")]
    if let Device::Cuda(d) = &device
        && crate::dist::world().size() > 1
        && crate::dist::nccl::get().is_none()
    {
        crate::dist::nccl::connect(crate::dist::world(), d).map_err(|e| {
            ConfigError::invalid(format!("--device {}", cfg.device), format!("NCCL: {e}"))
        })?;
    }
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
        .stack_size(rudder_policy::limits::POLICY_STACK)
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Loads the data set `cfg` names onto `device`.
pub fn load_data(cfg: &TrainConfig, device: &Device) -> Result<Data, Error> {
    let regression = (cfg.task == rudder_core::Task::Regression).then_some(cfg.targets);
    Ok(rudder_nn::data::load_task(
        &Source::of(cfg),
        regression,
        cfg.val_fraction,
        cfg.seed,
        device,
    )?)
}

/// The model and learner for `cfg` on `data`: the CPU engine where it applies, else
/// candle's autograd. Returns the learner and the parameter count.
pub fn build_learner(cfg: &TrainConfig, data: &Data) -> Result<(Box<dyn Learner>, usize), Error> {
    let device = data.train.x.device().clone();
    let io = Io {
        features: data.features,
        image: data.image,
        classes: data.classes,
    };
    let arch = Arch::of(cfg)?;
    arch.check_size(io, cfg.batch_size)?;
    let model = rudder_nn::model::build(&arch, io, cfg.seed, &device)?;
    let param_count = model.param_count();
    let kernels = if device.is_cpu() && cfg.kernels == Kernels::Rudder {
        Net::from_model(&arch, io, &model, cfg.threads).ok()
    } else {
        None
    };
    let learner: Box<dyn Learner> = match kernels {
        Some(net) => {
            let engine = EngineLearner::new(
                model,
                net,
                Flat::new(cfg.optimizer, cfg.hyper()).with_threads(cfg.threads),
                cfg.loss,
            );
            match &data.targets {
                Some(t) => Box::new(engine.regression(cfg.huber_delta, &t.std)),
                None => Box::new(engine),
            }
        }
        None => {
            let opt = rudder_nn::optim::build(cfg.optimizer, model.params(), cfg.hyper())
                .map_err(TrainError::from)?;
            let graph = CandleLearner::new(model, opt, cfg.loss);
            match &data.targets {
                Some(t) => Box::new(
                    graph
                        .regression(cfg.huber_delta, &t.std)
                        .map_err(TrainError::from)?,
                ),
                None => Box::new(graph),
            }
        }
    };
    Ok((learner, param_count))
}
