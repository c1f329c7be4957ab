//! Runs a parsed command: each in `commands`, a workflow that trains refused under
//! `mpirun`.

use rudder_core::config::ConfigError;

use crate::cli::{Cli, Command, PluginCommand};
use crate::commands;
use crate::error::AppError;

/// Runs `cli`'s command.
pub(crate) fn run(cli: Cli) -> Result<(), AppError> {
    rudder_core::term::set_quiet(cli.quiet == Some(true));
    // `-q` before the command name reaches the training commands' own flag.
    let quiet = cli.quiet;
    match cli.command {
        Command::Train(mut args) => {
            args.quiet = args.quiet.or(quiet);
            commands::train::command(args.options()).map(|_| ())
        }
        Command::Sweep(mut o) => {
            single_process("sweep")?;
            o.train.quiet = o.train.quiet.or(quiet);
            commands::sweep::command(*o)
        }
        Command::LrFind(mut o) => {
            single_process("lr-find")?;
            o.train.quiet = o.train.quiet.or(quiet);
            commands::lr_find::command(*o)
        }
        Command::Rescale(o) => commands::rescale::command(o),
        Command::Report(o) => commands::report::command(o),
        Command::Ctl(o) => commands::ctl::command(o),
        Command::Serve(o) => commands::serve::command(o),
        Command::Policy(cmd) => commands::policy::command(cmd),
        Command::Plugin(PluginCommand::New { name, dir }) => {
            commands::policy::new_plugin(&dir, &name)
        }
        Command::Plugin(cmd) => commands::plugin::command(cmd),
        Command::SweepTask(o) => commands::sweep::task(o),
    }
}

/// `sweep` and `lr-find` run their trials in one process (`--jobs` threads); under
/// `mpirun` they are refused rather than run once per rank.
fn single_process(command: &str) -> Result<(), AppError> {
    let size = rudder_train::dist::world().size();
    if size == 1 {
        return Ok(());
    }
    Err(ConfigError::refused(
        command,
        format!(
            "runs in one process (its trials share it with --jobs); it was started as {size} MPI ranks: run it without mpirun, or start one `rudder train` per trial under mpirun"
        ),
    )
    .into())
}
