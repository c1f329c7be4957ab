//! `rudder report`: several runs on one page.

use rudder_core::config::ConfigError;

use crate::cli::ReportOptions;
use crate::error::AppError;

/// The run folders `dir` stands for: itself, or for a sweep's folder (finished or
/// stopped part-way, with or without its `sweep.json`) its trials that have
/// metrics, from the smallest LR up (as the sweep's own table; by name at equal LRs).
fn runs_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    if dir.join("metrics.jsonl").is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut trials: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("metrics.jsonl").is_file() && p.join("config.json").is_file())
        .collect();
    let lr = |p: &std::path::Path| {
        std::fs::read_to_string(p.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| c["lr"].as_f64())
            .unwrap_or(f64::INFINITY)
    };
    trials.sort_by(|a, b| lr(a).total_cmp(&lr(b)).then_with(|| a.cmp(b)));
    if trials.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        trials
    }
}

/// `rudder report`.
pub(crate) fn command(o: ReportOptions) -> Result<(), AppError> {
    let runs = o
        .runs
        .iter()
        .flat_map(|d| runs_in(d))
        .map(|d| {
            rudder_run::report::load_run(&d).map_err(|e| ConfigError::file("rudder report", e))
        })
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
    rudder_core::term::info(&format!("wrote {}", out.display()));
    Ok(())
}
