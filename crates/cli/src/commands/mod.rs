//! The commands: `train`, the LR workflow of the founding notes (`sweep`, a trial per
//! LR multiplier; `lr-find`, the range test; `rescale`, a reference setup carried to
//! another batch size), `report`, `ctl` (a running run steered through its control
//! channel), `serve` (the dashboard), and the policy runtime's own (`policy ...`,
//! `plugin new`). Each turns its options into a library call, and its result into
//! files and lines.

pub(crate) mod ctl;
pub(crate) mod lr_find;
pub(crate) mod plugin;
pub(crate) mod policy;
pub(crate) mod report;
pub(crate) mod rescale;
pub(crate) mod serve;
pub(crate) mod sweep;
pub(crate) mod train;

/// The options resolved (flags over the config file over defaults), with the
/// config's `quiet` silencing what every command says, as `-q` does.
pub(crate) fn resolve(
    opts: rudder_core::TrainOptions,
) -> Result<rudder_core::TrainConfig, rudder_train::Error> {
    let cfg = rudder_train::resolve(opts)?;
    rudder_core::term::set_quiet(rudder_core::term::is_quiet() || cfg.quiet);
    Ok(cfg)
}
