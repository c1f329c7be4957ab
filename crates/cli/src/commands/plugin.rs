//! `rudder plugin add | install | update | remove | list | verify`: `rudder_pkg`'s
//! commands, printed (the Python package prints the same lines).

use rudder_core::term::out;
use rudder_pkg::{Command, PkgError, Reference};

use crate::cli::PluginCommand;
use crate::error::AppError;

/// Runs a `rudder plugin` command other than `new`.
pub(crate) fn command(cmd: PluginCommand) -> Result<(), AppError> {
    let cmd = match cmd {
        PluginCommand::New { .. } => unreachable!("plugin new is the policy runtime's"),
        PluginCommand::Add {
            source,
            tag,
            rev,
            branch,
            version,
            name,
        } => Command::Add {
            source,
            reference: Reference {
                tag,
                rev,
                branch,
                version,
            },
            name,
        },
        PluginCommand::Install { locked, offline } => Command::Install { locked, offline },
        PluginCommand::Update { names } => Command::Update { names },
        PluginCommand::Remove { name } => Command::Remove { name },
        PluginCommand::List => Command::List,
        PluginCommand::Verify => Command::Verify,
    };
    let output = rudder_pkg::run(&cmd)?;
    for line in &output.lines {
        out(line);
    }
    if let Some(message) = output.failure() {
        return Err(PkgError {
            exit: output.exit,
            message: message.into(),
        }
        .into());
    }
    Ok(())
}
