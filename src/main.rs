//! The `rudder` binary: parse, run, map errors to exit codes (0 ok, 1 run failure,
//! 2 bad usage, config, data or script).

use std::process::ExitCode;

use rudder::app::{self, AppError};
use rudder::cli::{self, Parsed};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run() -> anyhow::Result<ExitCode> {
    let cli = match cli::parse(std::env::args_os()) {
        Parsed::Run(cli) => cli,
        Parsed::Exit { text, code } => {
            if code == 0 {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            return Ok(ExitCode::from(code));
        }
    };
    app::run(cli)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", rudder::runlog::one_line(&e.to_string()));
            let code = e.downcast_ref::<AppError>().map_or(1, AppError::exit_code);
            ExitCode::from(code)
        }
    }
}
