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
    /// Work with policies without training.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with plugins (shared policy libraries).
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold plugins/NAME: a manifest, one policy, one test and a README.
    New {
        name: String,
        /// The folder to create it in
        #[arg(long, default_value = "plugins")]
        dir: std::path::PathBuf,
    },
}

/// Options shared by the commands that run hooks without training.
#[derive(Debug, Clone, clap::Args)]
pub struct SimOptions {
    /// Policy names or paths, run in the order given
    #[arg(required = true, value_name = "POLICY")]
    pub policies: Vec<String>,
    /// The run's base learning rate
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f64,
    /// The run's base batch size
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// [POLICY.]KEY=VALUE, VALUE as JSON, repeatable
    #[arg(long = "param", value_name = "[POLICY.]KEY=VALUE")]
    pub param: Vec<String>,
    /// sgd | adamw (what ctx.optimizer says)
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: crate::optim::Kind,
    /// Rule when a policy changes the batch size without setting lr [default: linear for sgd, sqrt for adamw]
    #[arg(long, value_enum)]
    pub lr_scaling: Option<crate::policy::Rescale>,
    /// Training examples (ctx.dataset_size) [default: steps per epoch x batch size]
    #[arg(long)]
    pub dataset_size: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile and validate policies; exit 2 with file:line:col on a fault.
    Check {
        #[arg(required = true, value_name = "NAME|PATH")]
        policies: Vec<String>,
        /// [POLICY.]KEY=VALUE, checked against the policies' params()
        #[arg(long = "param", value_name = "[POLICY.]KEY=VALUE")]
        param: Vec<String>,
    },
    /// Print the LR each optimizer step would use, as JSON lines, with no training.
    Schedule {
        #[command(flatten)]
        sim: SimOptions,
        /// Planned epochs
        #[arg(long)]
        epochs: usize,
        /// Optimizer steps per epoch
        #[arg(long, default_value_t = 1)]
        steps_per_epoch: usize,
        /// One line per epoch (its first step) instead of one per step
        #[arg(long)]
        per_epoch: bool,
    },
    /// Every policy on the search path: name, one-line doc, file.
    List,
    /// A policy's doc comment, hooks, and parameters with defaults and docs.
    Doc {
        #[arg(value_name = "NAME|PATH")]
        policy: String,
    },
    /// Write Rhai definitions (the functions scripts can call) for editor completion.
    Defs {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Run policy test files (scripts/tests, plugins/*/tests); ends with "N passed, N failed".
    Test {
        /// Test files, or policy names whose tests to run [default: all]
        #[arg(value_name = "NAME|PATH")]
        which: Vec<String>,
    },
    /// Feed recorded per-epoch metrics to the hooks; one JSON line per epoch.
    Replay {
        #[command(flatten)]
        sim: SimOptions,
        /// A metrics.jsonl (epoch and the metrics are enough)
        #[arg(long, value_name = "FILE")]
        metrics: std::path::PathBuf,
    },
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
