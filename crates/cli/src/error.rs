//! Every failure of a command, and the exit code it ends with: 2 for what the
//! command was given (usage, options, files, data, a model, a checkpoint, a policy),
//! 1 for a failure during a run or failed policy tests, 130 for an interrupt.

use rudder_core::config::ConfigError;
use rudder_run::files::JsonlError;
use rudder_run::report::LoadRunError;

/// The exit code of an interrupted run (128 + SIGINT, as shells report it).
pub(crate) const INTERRUPTED: u8 = 130;
/// The exit code of a sweep's Slurm task that checkpointed on a signal and asks to
/// go on from there (sysexits' `EX_TEMPFAIL`): its batch script requeues it.
pub(crate) const REQUEUE: u8 = 75;
/// The exit code of a sweep's Slurm task that cannot see the sweep's folder as the
/// coordinator wrote it (not on a file system the nodes share).
pub(crate) const NOT_SHARED: u8 = 3;

/// Any failure of a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// A bad option of a command.
    #[error(transparent)]
    Usage(#[from] ConfigError),
    /// A training run (or its setup) failed.
    #[error(transparent)]
    Run(#[from] rudder_train::Error),
    /// `rudder report` was given a folder it cannot draw.
    #[error(transparent)]
    Report(#[from] LoadRunError),
    /// A JSONL file an option names cannot be read.
    #[error("{flag} {source}")]
    Read {
        /// The option (`--metrics`).
        flag: &'static str,
        /// Why.
        source: JsonlError,
    },
    /// `rudder serve` could not start or had to end.
    #[error(transparent)]
    Serve(#[from] rudder_serve::ServeError),
    /// A policy a command names cannot be found (`policy doc NAME`).
    #[error("{at} {source}")]
    Policy {
        /// The command.
        at: &'static str,
        /// Why.
        source: rudder_policy::LoadError,
    },
    /// The project's `rudder.toml` or `rudder.lock` is unreadable, or a locked
    /// plugin is missing or modified.
    #[error(transparent)]
    Project(#[from] rudder_policy::project::ProjectError),
    /// `rudder plugin add | install | update | remove | list | verify` failed (its
    /// own exit code: 2 for what it was given, 1 for a failed check).
    #[error(transparent)]
    Pkg(#[from] rudder_pkg::PkgError),
    /// A plugin that `plugin new` cannot make.
    #[error(transparent)]
    Plugin(#[from] rudder_policy::plugin::PluginError),
    /// `rudder policy test` could not run its cases.
    #[error(transparent)]
    Tests(#[from] rudder_policy::testing::TestError),
    /// `rudder policy test` found nothing to test (and was not told `--allow-empty`).
    #[error(
        "policy test: no test files here (scripts/tests/*.json, plugins/*/tests/*.json); `rudder policy test --std` runs the standard library's own, --allow-empty makes this exit 0"
    )]
    NoTests,
    /// `rudder policy test` ran and some cases failed.
    #[error("{0} policy test case(s) failed")]
    TestsFailed(usize),
    /// `rudder ctl` wrote its line and the run did not record it in time, or ended.
    #[error("{0}")]
    Ctl(String),
    /// SIGINT or SIGTERM: the message says where and how to go on.
    #[error("{0}")]
    Interrupted(String),
    /// A sweep's task ended early with this exit code (`REQUEUE`, `NOT_SHARED`).
    #[error("{1}")]
    Task(u8, String),
}

impl AppError {
    /// 2 for bad usage, configuration, data, model, checkpoint or policy; 1 for a
    /// failure during the run; 130 for an interrupt.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_)
            | AppError::Report(_)
            | AppError::Read { .. }
            | AppError::Policy { .. }
            | AppError::Plugin(_)
            | AppError::Project(_)
            | AppError::Tests(_) => 2,
            AppError::Run(e) if e.is_input() => 2,
            AppError::Serve(e) if e.is_input() => 2,
            AppError::Serve(_) => 1,
            AppError::Run(_) | AppError::TestsFailed(_) | AppError::NoTests | AppError::Ctl(_) => 1,
            AppError::Pkg(e) => e.exit,
            AppError::Interrupted(_) => INTERRUPTED,
            AppError::Task(code, _) => *code,
        }
    }
}

impl From<rudder_run::lock::LockError> for AppError {
    fn from(e: rudder_run::lock::LockError) -> AppError {
        AppError::Run(e.into())
    }
}

impl From<rudder_policy::LoadError> for AppError {
    fn from(e: rudder_policy::LoadError) -> AppError {
        AppError::Run(e.into())
    }
}
