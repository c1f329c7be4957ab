//! The command line: clap definitions, and turning clap's errors into the one-line
//! messages (exit code 2) the rest of rudder uses.

use clap::{Parser, Subcommand};

use rudder_core::OptimizerKind;

use crate::args::{TrainArgs, kind, rescale_parser};

/// rudder: a native trainer steered by hot-reloading Rhai policies.
#[derive(Debug, Parser)]
#[command(
    name = "rudder",
    version,
    about,
    propagate_version = true,
    after_help = "Examples:
  rudder train                                   the MLP on the embedded digits
  rudder train --data mnist --model cnn --epochs 10 --out runs/cnn
  rudder train --resume runs/cnn --epochs 15     continue a run, planning 15 epochs
  rudder train --policy lr/cosine --policy stop/early_stop --param patience=5
  rudder lr-find --data mnist --optimizer adamw  suggest a learning rate
  rudder sweep --data mnist --epochs 3           one trial per LR multiplier
  rudder sweep --grid batch_size=64,256 --multipliers 0.5,1,2   the LR carried to each batch
  rudder rescale --lr 16 --batch-size 1024 --to-batch-size 64
  rudder report runs/a runs/b --out compare.html
  rudder policy list                             every policy on the search path"
)]
pub(crate) struct Cli {
    /// Quiet: nothing on stderr but warnings and errors (results on stdout stay)
    #[arg(
        long,
        short,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub(crate) quiet: Option<bool>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Train a model and write a run directory.
    #[command(after_help = "Examples:
  rudder train                                          the MLP on the embedded digits, 20 epochs
  rudder train --data mnist --model cnn --epochs 10 --out runs/cnn
  rudder train --data my.csv --hidden 64,32 --lr 0.05   a CSV, label in the last column
  rudder train --policy lr/onecycle --param max_lr=0.4 --optimizer sgd --momentum 0.9
  rudder train --resume runs/cnn --epochs 15            continue, planning 15 epochs
  rudder train --config run.json --lr 0.2               a JSON file of these options; flags win")]
    Train(Box<TrainArgs>),
    /// One training run per trial: LR multipliers, a grid or random samples of options
    /// and policy parameters (the LR carried to each batch size); picks the best.
    Sweep(Box<SweepOptions>),
    /// LR range test: an exponential LR ramp, one step each; suggests an LR.
    LrFind(Box<LrFindOptions>),
    /// Carry an LR to another batch size (linear or sqrt rule).
    Rescale(RescaleOptions),
    /// One HTML page overlaying runs: loss, accuracy, LR, batch size, policy events.
    Report(ReportOptions),
    /// Steer a running run: stop it, save or roll back a checkpoint, set a value.
    #[command(after_help = "Examples:
  rudder ctl runs/a stop                         stop at the next step boundary
  rudder ctl runs/a stop \"plateaued\"            with the reason the run records
  rudder ctl runs/a set lr=0.01                  the LR from the next step on
  rudder ctl runs/a set batch_size=256 rescale=sqrt
  rudder ctl runs/a save warm                    a checkpoint under checkpoints/warm
  rudder ctl runs/a rollback best                the best checkpoint's weights back

Each writes one line to RUN/control.jsonl and waits until the run has recorded it
(a `decision` or `invalid_decision` from `control` in events.jsonl).
Exit 0: applied; 2: rejected (or not a running run); 1: not read within --timeout.")]
    Ctl(CtlOptions),
    /// A live dashboard of the runs and sweeps under folders, with controls and a
    /// policy editor, in the browser.
    #[command(after_help = "Examples:
  rudder serve                              runs/ at http://127.0.0.1:8686/?token=...
  rudder serve runs sweeps --port 9000      two folders, another port
  rudder serve --host 0.0.0.0               reachable from other machines (a warning)

Open the printed URL: its token is asked of every request (then kept in a cookie).
Controls and saved policy edits go through each run's control.jsonl and its watcher.")]
    Serve(ServeOptions),
    /// Work with policies without training.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with plugins (shared policy libraries).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// One trial of a sweep on Slurm, as its batch script runs it (not for people).
    #[command(hide = true)]
    SweepTask(SweepTaskOptions),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Scaffold plugins/NAME: a manifest, one policy, one test and a README.
    New {
        name: String,
        /// The folder to create it in
        #[arg(long, default_value = "plugins")]
        dir: std::path::PathBuf,
    },
    /// Add a plugin from a git URL or a folder to rudder.toml, install it, lock it
    Add {
        /// A git URL (https://, ssh://, git://, file://, user@host:path) or a folder
        source: String,
        /// A tag
        #[arg(long, group = "reference")]
        tag: Option<String>,
        /// A commit
        #[arg(long, group = "reference")]
        rev: Option<String>,
        /// A branch (its head; `update` moves it)
        #[arg(long, group = "reference")]
        branch: Option<String>,
        /// A semver requirement: the newest tag vX.Y.Z matching (`^1.0`)
        #[arg(long, group = "reference")]
        version: Option<String>,
        /// The name to use it under, where it differs from its plugin.json's
        #[arg(long)]
        name: Option<String>,
    },
    /// Install exactly what rudder.lock records (resolving first if rudder.toml changed)
    Install {
        /// Fail (exit 2) if rudder.toml and rudder.lock disagree, instead of re-resolving
        #[arg(long)]
        locked: bool,
        /// Fetch nothing: use the cache only
        #[arg(long)]
        offline: bool,
    },
    /// Re-resolve within each entry's constraint and rewrite the lock
    Update {
        /// The plugins to update (all by default)
        names: Vec<String>,
    },
    /// Remove a plugin from rudder.toml and rudder.lock
    Remove { name: String },
    /// Every plugin: name, version, source, commit, checksum and state
    List,
    /// Check every installed plugin's files against rudder.lock (exit 1 naming those that differ)
    Verify,
}

/// `rudder sweep`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SweepOptions {
    #[command(flatten)]
    pub(crate) train: TrainArgs,
    /// Multipliers of each trial's base LR, crossed with the grid or the samples
    /// [default: 1,2,4,0.5,0.25; with --grid or --samples: 1]
    #[arg(long, value_delimiter = ',', value_name = "M,M")]
    pub(crate) multipliers: Option<Vec<f64>>,
    /// An axis of the grid: a train option (lr, batch_size, momentum, weight_decay,
    /// accumulation, optimizer, hidden, channels, dropout, nesterov, seed, epochs) or a
    /// policy parameter [POLICY.]PARAM, with its values; repeat for more axes
    #[arg(long, value_name = "KEY=V1,V2")]
    pub(crate) grid: Vec<String>,
    /// Random search: N configurations drawn from --space (from --seed)
    #[arg(long, value_name = "N")]
    pub(crate) samples: Option<usize>,
    /// A distribution to draw KEY from: log(A,B), uniform(A,B), int(A,B),
    /// choice(V,...); repeat for more keys
    #[arg(long, value_name = "KEY=DIST")]
    pub(crate) space: Vec<String>,
    /// What picks the winner, at its best epoch: train_loss, train_acc, val_loss, val_acc
    #[arg(long, default_value = "val_loss")]
    pub(crate) metric: String,
    /// Trials run at once; --threads is split between them
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) jobs: usize,
    /// A sweep policy deciding over the trials as they report: sweep/asha,
    /// sweep/hyperband, sweep/median, sweep/pbt, a file, or none
    #[arg(long, default_value = "none", value_name = "NAME|PATH")]
    pub(crate) scheduler: String,
    /// A parameter of the scheduler, over its fn params(); repeat for more
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) scheduler_param: Vec<String>,
    /// Where the trials run: local (here, --jobs at a time) or slurm (a job array,
    /// this process following it) [default: local, or the --config file's launcher]
    #[arg(long, value_parser = ["local", "slurm"], value_name = "local|slurm")]
    pub(crate) launcher: Option<String>,
    /// Slurm: an option for sbatch (--partition=P, --time=2:00:00, --gres=gpu:1,
    /// --ntasks=2, --account=A), written into the batch script; repeat for more
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) slurm_arg: Vec<String>,
    /// Slurm: the warning signal before a time limit or preemption, SIG@SECONDS
    /// (sbatch's --signal=B:SIG@SECONDS); the trial checkpoints and is requeued
    #[arg(long, default_value = "USR1@120", value_name = "SIG@SECS")]
    pub(crate) slurm_signal: String,
    /// Slurm: times a trial's task that ended without finishing it is resubmitted
    /// (from its newest checkpoint) before the trial is failed
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) max_retries: usize,
    /// Slurm: print the batch script and submit nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Slurm: submit the array and return; `rudder sweep --resume DIR` follows it
    #[arg(long)]
    pub(crate) detach: bool,
}

/// `rudder sweep-task`: what each task of a sweep's Slurm array runs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SweepTaskOptions {
    /// The sweep's folder
    #[arg(value_name = "SWEEP")]
    pub(crate) dir: std::path::PathBuf,
    /// The task's index in the array: the trial's place in SWEEP/slurm/trials.json
    #[arg(long, value_name = "N")]
    pub(crate) task: usize,
    /// The sweep's marker (SWEEP/slurm/marker), proving the folder is the one the
    /// coordinator writes
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: String,
}

/// `rudder lr-find`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LrFindOptions {
    #[command(flatten)]
    pub(crate) train: TrainArgs,
    /// First LR of the ramp
    #[arg(long, default_value_t = 1e-7, value_name = "X")]
    pub(crate) start_lr: f64,
    /// Last LR of the ramp
    #[arg(long, default_value_t = 10.0, value_name = "X")]
    pub(crate) end_lr: f64,
    /// Steps (one LR each)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) steps: usize,
}

/// `rudder ctl`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CtlOptions {
    /// The run folder (as `--out` named it)
    #[arg(value_name = "RUN")]
    pub(crate) run: std::path::PathBuf,
    #[command(subcommand)]
    pub(crate) action: CtlAction,
    /// Seconds to wait for the run to record the line; 0 writes it and returns
    #[arg(long, global = true, default_value_t = 60.0, value_name = "SECS")]
    pub(crate) timeout: f64,
}

/// `rudder serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeOptions {
    /// Folders whose runs and sweeps to show (default runs/)
    #[arg(value_name = "DIR")]
    pub(crate) dirs: Vec<std::path::PathBuf>,
    /// The address to listen on; anything but 127.0.0.1 or ::1 is reachable from
    /// other machines
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub(crate) host: std::net::IpAddr,
    /// The port (0: any free one)
    #[arg(long, default_value_t = rudder_serve::DEFAULT_PORT, value_name = "N")]
    pub(crate) port: u16,
}

/// What `rudder ctl` tells the run.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum CtlAction {
    /// Stop at the next step boundary (the epoch in progress is validated and kept)
    Stop {
        /// Why, as the run records it (default "stopped through rudder ctl")
        reason: Option<String>,
    },
    /// Write a checkpoint at the next boundary, tagged TAG (default: by epoch or step)
    Save { tag: Option<String> },
    /// Restore the best or the last checkpoint's weights and optimizer state
    Rollback {
        #[arg(value_parser = ["best", "last"])]
        target: String,
    },
    /// Set decision keys: lr, batch_size, accumulation, epochs, momentum,
    /// weight_decay, rescale, log, metrics (as JSON), ...
    Set {
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
    /// Send one decision written as a JSON object
    Send {
        #[arg(value_name = "JSON")]
        json: String,
    },
}

/// `rudder rescale`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RescaleOptions {
    /// The reference LR
    #[arg(long, value_name = "X")]
    pub(crate) lr: f64,
    /// The reference batch size
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: usize,
    /// The batch size to carry it to
    #[arg(long, value_name = "N")]
    pub(crate) to_batch_size: usize,
    #[arg(long, value_parser = rescale_parser(), default_value = "linear")]
    pub(crate) rule: rudder_core::Rescale,
    /// Training examples: also print steps per epoch and updates, before and after
    #[arg(long, value_name = "N")]
    pub(crate) dataset_size: Option<usize>,
    /// Epochs, for the total updates
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) epochs: usize,
    /// One JSON object instead of lines
    #[arg(long)]
    pub(crate) json: bool,
}

/// `rudder report`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReportOptions {
    /// Run directories to overlay
    #[arg(required = true, value_name = "RUN_DIR")]
    pub(crate) runs: Vec<std::path::PathBuf>,
    /// The page to write [default: compare.html beside the first run]
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<std::path::PathBuf>,
}

/// Options shared by the commands that run hooks without training.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SimOptions {
    /// Policy names or paths, run in the order given
    #[arg(required = true, value_name = "POLICY")]
    pub(crate) policies: Vec<String>,
    /// The run's base learning rate
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub(crate) lr: f64,
    /// The run's base batch size
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// [POLICY.]KEY=VALUE, VALUE as JSON, repeatable
    #[arg(long = "param", value_name = "[POLICY.]KEY=VALUE")]
    pub(crate) param: Vec<String>,
    /// sgd | adamw (what ctx.optimizer says)
    #[arg(long, value_parser = optimizer(), default_value = "sgd")]
    pub(crate) optimizer: OptimizerKind,
    /// Rule when a policy changes the batch size without setting lr [default: linear for sgd, sqrt for adamw]
    #[arg(long, value_parser = rescale_parser())]
    pub(crate) lr_scaling: Option<rudder_core::Rescale>,
    /// Training examples (ctx.dataset_size) [default: steps per epoch x batch size]
    #[arg(long)]
    pub(crate) dataset_size: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
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
        /// Run the standard library's own tests, compiled into rudder
        #[arg(long)]
        std: bool,
        /// Exit 0 when there is nothing to test (by default that is exit 1)
        #[arg(long)]
        allow_empty: bool,
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
pub(crate) enum Parsed {
    Run(Cli),
    Exit { text: String, code: u8 },
}

/// Parses `args`; a usage error becomes one line naming the flag (plus clap's tip).
pub(crate) fn parse<I, T>(args: I) -> Parsed
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
                    for line in lines {
                        if let Some(tip) = line.strip_prefix("tip:") {
                            text.push_str(&format!(" ({})", tip.trim()));
                        } else if line.starts_with("[possible values:") {
                            text.push_str(&format!(" {line}"));
                        }
                    }
                    text.push('\n');
                    Parsed::Exit { text, code: 2 }
                }
            }
        }
    }
}

/// One JSON line on stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_json(v: serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{v}");
}

/// `--optimizer`'s parser for the commands that do not train.
fn optimizer() -> impl clap::builder::TypedValueParser<Value = OptimizerKind> {
    kind(
        OptimizerKind::ALL,
        OptimizerKind::name,
        OptimizerKind::about,
    )
}
