//! The `rudder` binary: parse, run, map errors to exit codes (0 ok, 1 run failure,
//! 2 bad usage, config, data or script).

mod app;
mod cli;
mod workflow;

use std::process::ExitCode;

// The library's modules, under the names the command-line modules use.
use rudder::{config, data, interrupt, optim, pipeline, report, runlog, train};
use rudder_policy as policy;

use app::AppError;
use cli::Parsed;

/// mimalloc, metered per thread so a policy call's memory has a budget.
#[global_allocator]
static GLOBAL: rudder_policy::meter::Metered<mimalloc::MiMalloc> =
    rudder_policy::meter::Metered(mimalloc::MiMalloc);

fn run() -> anyhow::Result<ExitCode> {
    let cli = match cli::parse(std::env::args_os()) {
        Parsed::Run(cli) => cli,
        Parsed::Exit { text, code } => {
            if code == 0 {
                rudder::runlog::out_text(&text);
            } else {
                rudder::runlog::say_text(&text);
            }
            return Ok(ExitCode::from(code));
        }
    };
    app::run(cli)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    GLOBAL.install();
    if let Err(e) = rudder::interrupt::install() {
        rudder::runlog::say(&format!("rudder: Ctrl-C handling unavailable: {e}"));
    }
    // Under mpirun (feature `mpi`): MPI from this thread, finalised when `_mpi` drops
    // at the end of main.
    #[cfg(feature = "mpi")]
    let _mpi = match rudder::dist::mpi::init() {
        Ok(u) => u,
        Err(e) => {
            rudder::runlog::say(&format!("error: MPI: {e}"));
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
            let line = rudder::runlog::one_line(&e.to_string());
            let code = e.downcast_ref::<AppError>().map_or(1, AppError::exit_code);
            let world = rudder::dist::world();
            let interrupted =
                matches!(e.downcast_ref::<AppError>(), Some(AppError::Interrupted(_)));
            // Rank 0 speaks for the job; another rank's own failure names the rank.
            match (interrupted, world.rank()) {
                (true, 0) => rudder::runlog::say(&line),
                (false, 0) => rudder::runlog::say(&format!("error: {line}")),
                (false, r) if code == 1 => rudder::runlog::say(&format!("error: rank {r}: {line}")),
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
