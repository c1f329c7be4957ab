//! `rudder report`: several runs on one page.

use rudder_core::config::ConfigError;

use crate::cli::ReportOptions;
use crate::error::AppError;

/// `rudder report`.
pub(crate) fn command(o: ReportOptions) -> Result<(), AppError> {
    let runs = o
        .runs
        .iter()
        .map(|d| rudder_run::report::load_run(d).map_err(|e| ConfigError::file("rudder report", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let title = format!("rudder report: {} run(s)", runs.len());
    // Beside the first run, not wherever the command happens to run.
    let out = o.out.unwrap_or_else(|| {
        o.runs[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("compare.html")
    });
    rudder_run::report::write_page(&out, &rudder_run::report::compare(&title, &runs))
        .map_err(|e| ConfigError::file(format!("--out {}", out.display()), e))?;
    rudder_core::term::say(&format!("wrote {}", out.display()));
    Ok(())
}
