//! The command line: clap definitions, and turning clap's errors into the one-line
//! messages (exit code 2) the rest of rudder uses.

use clap::{Parser, Subcommand};

use crate::config::TrainOptions;

/// rudder: a native trainer steered by hot-reloading Rhai policies.
#[derive(Debug, Parser)]
#[command(name = "rudder", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write a run directory.
    Train(Box<TrainOptions>),
}

/// What parsing the command line gave: a command, or text to print and an exit code.
pub enum Parsed {
    Run(Cli),
    Exit { text: String, code: u8 },
}

/// Parses `args`; a usage error becomes one line naming the flag (plus clap's tip).
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Parsed::Run(cli),
        Err(e) => {
            use clap::error::ErrorKind;
            let rendered = e.render().to_string();
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Parsed::Exit {
                    text: rendered,
                    code: if e.exit_code() == 0 { 0 } else { 2 },
                },
                _ => {
                    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
                    let mut text = lines.next().unwrap_or("error: bad usage").to_string();
                    for tip in lines.filter(|l| l.starts_with("tip:")) {
                        text.push_str(&format!(" ({})", tip.trim_start_matches("tip:").trim()));
                    }
                    text.push('\n');
                    Parsed::Exit { text, code: 2 }
                }
            }
        }
    }
}
