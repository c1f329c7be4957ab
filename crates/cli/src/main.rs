//! The `rudder` binary: parse, run, map errors to exit codes (0 ok, 1 run failure,
//! 2 bad usage, config, data or script, 130 interrupted). The signal handlers, the
//! allocator and MPI's start and end are the process's, so they are here.

mod app;
mod args;
mod cli;
mod commands;
mod error;

use std::process::ExitCode;

use rudder_core::term::{out_text, say, say_text};
use rudder_core::text::one_line;

use cli::Parsed;
use error::AppError;

/// mimalloc, metered per thread so a policy call's memory has a budget.
#[global_allocator]
static GLOBAL: rudder_policy::meter::Metered<mimalloc::MiMalloc> =
    rudder_policy::meter::Metered(mimalloc::MiMalloc);

fn run() -> anyhow::Result<ExitCode> {
    let cli = match cli::parse(std::env::args_os()) {
        Parsed::Run(cli) => cli,
        Parsed::Exit { text, code } => {
            if code == 0 {
                out_text(&text);
            } else {
                say_text(&text);
            }
            return Ok(ExitCode::from(code));
        }
    };
    app::run(cli)?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, SIGTERM, SIGHUP and SIGUSR1: the first sets the flag the trainer reads between
/// optimizer steps (it finishes the step, writes `step-N`, records a `run_end` with
/// reason `interrupted`, and the binary exits 130); a second exits at once with 130.
/// The conditional exit is registered first, so it acts on the second signal only
/// (signal-hook runs a signal's actions in order). SIGHUP: the terminal closed; the
/// run stops as for Ctrl-C rather than die. SIGUSR1: Slurm's warning before a time
/// limit or a preemption (`--signal`), the same stop.
fn install_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let flag = rudder_core::interrupt::flag();
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGUSR1] {
        signal_hook::flag::register_conditional_shutdown(sig, i32::from(error::INTERRUPTED), flag)?;
        signal_hook::flag::register(sig, flag)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    GLOBAL.install();
    if let Err(e) = install_signals() {
        say(&format!("rudder: Ctrl-C handling unavailable: {e}"));
    }
    // Under mpirun (feature `mpi`): MPI from this thread, finalised when `_mpi` drops
    // at the end of main.
    #[cfg(feature = "mpi")]
    let _mpi = match rudder_train::dist::mpi::init() {
        Ok(u) => u,
        Err(e) => {
            say(&format!("error: MPI: {e}"));
            return ExitCode::from(1);
        }
    };
    let outcome = std::thread::Builder::new()
        .name("rudder".into())
        .stack_size(rudder_policy::limits::POLICY_STACK)
        .spawn(run)
        .map_err(anyhow::Error::from)
        .and_then(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("the run panicked (a bug: please report it)"))
        });
    match outcome.and_then(|r| r) {
        Ok(code) => code,
        Err(e) => {
            let line = one_line(&e.to_string());
            let code = e.downcast_ref::<AppError>().map_or(1, AppError::exit_code);
            let world = rudder_train::dist::world();
            let interrupted =
                matches!(e.downcast_ref::<AppError>(), Some(AppError::Interrupted(_)));
            // Rank 0 speaks for the job; another rank's own failure names the rank.
            match (interrupted, world.rank()) {
                (true, 0) => say(&line),
                (false, 0) => say(&format!("error: {line}")),
                (false, r) if code == 1 => say(&format!("error: rank {r}: {line}")),
                _ => {}
            }
            // A failure on one rank ends every rank (the others would wait for it);
            // an interrupt is agreed by all, and they end together.
            if world.size() > 1 && !interrupted {
                world.abort(i32::from(code));
            }
            ExitCode::from(code)
        }
    }
}
