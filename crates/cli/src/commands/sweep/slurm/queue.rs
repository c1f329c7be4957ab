//! Slurm's client commands, as the coordinator uses them: `sbatch` to submit the
//! array (or one task of it again), `squeue` for the state of each task (ended ones
//! too, while the controller remembers them: `MinJobAge`), `sacct` for those it has
//! forgotten, `scancel`. Each is a process; what it prints is parsed here.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// A task as Slurm says it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, ...
    pub(crate) state: String,
    /// Its exit code once ended (a signal's number + 128).
    pub(crate) exit: Option<i32>,
    pub(crate) node: Option<String>,
}

/// Whether `name` is a program on `PATH`.
pub(crate) fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(name);
            std::fs::metadata(&f).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Submits `script` (with `--array=SPEC` over its own when given): the job's id.
pub(crate) fn submit(script: &Path, array: Option<&str>) -> Result<String, String> {
    let mut c = Command::new("sbatch");
    c.arg("--parsable");
    if let Some(a) = array {
        c.arg(format!("--array={a}"));
    }
    c.arg(script);
    let out = c.output().map_err(|e| format!("cannot run sbatch: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no job id");
        return Err(format!(
            "sbatch refused it: {}",
            rudder_core::text::clip(why.trim())
        ));
    }
    Ok(id)
}

/// The state of every task of job `id` (`ID_N` each), from `squeue`, else from
/// `sacct`; empty when neither knows the job (forgotten: the caller decides). An
/// error when Slurm could not be asked (its controller down, say): ask again later.
pub(crate) fn states(id: &str) -> Result<HashMap<String, TaskState>, String> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-t", "all", "-j", id])
        .args(["-O", "JobArrayID:|,State:|,exit_code:|,NodeList:|"])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    if out.status.success() {
        let m = parse_squeue(&String::from_utf8_lossy(&out.stdout));
        if !m.is_empty() {
            return Ok(m);
        }
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("Invalid job id") {
            return Err(format!("squeue: {}", rudder_core::text::clip(err.trim())));
        }
    }
    let sacct = Command::new("sacct")
        .args(["-X", "-n", "-P", "-j", id])
        .args(["-o", "JobID,State,ExitCode,NodeList"])
        .output();
    Ok(match sacct {
        Ok(out) if out.status.success() => parse_sacct(&String::from_utf8_lossy(&out.stdout)),
        _ => HashMap::new(),
    })
}

/// `squeue -O JobArrayID:|,State:|,exit_code:|,NodeList:|` lines (the exit code is a
/// wait status: 256 is exit 1).
fn parse_squeue(text: &str) -> HashMap<String, TaskState> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 4 || f[0].is_empty() || f[0].contains('[') {
            continue;
        }
        let exit = f[2].parse::<i32>().ok().map(|w| match w & 0x7f {
            0 => (w >> 8) & 0xff,
            sig => 128 + sig,
        });
        m.insert(
            f[0].to_string(),
            TaskState {
                state: f[1].to_string(),
                exit,
                node: (!f[3].is_empty() && f[3] != "(null)").then(|| f[3].to_string()),
            },
        );
    }
    m
}

/// `sacct -X -n -P -o JobID,State,ExitCode,NodeList` lines (`1:0`: exit 1, signal 0).
fn parse_sacct(text: &str) -> HashMap<String, TaskState> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 4 || f[0].contains('[') {
            continue;
        }
        let mut code = f[2].split(':').map(|x| x.parse::<i32>().ok());
        let exit = match (code.next().flatten(), code.next().flatten()) {
            (Some(_), Some(sig)) if sig > 0 => Some(128 + sig),
            (Some(e), _) => Some(e),
            _ => None,
        };
        m.insert(
            f[0].to_string(),
            TaskState {
                state: f[1].to_string(),
                exit,
                node: (!f[3].is_empty() && f[3] != "None assigned").then(|| f[3].to_string()),
            },
        );
    }
    m
}

/// Cancels tasks (`ID_N` or whole jobs); failures are ignored (they may have ended).
pub(crate) fn cancel(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("scancel").args(ids).output();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_states_and_exit_codes() {
        let m = parse_squeue(
            "12_0|COMPLETED|0|vm|\n12_3|FAILED|768|vm|\n12_4|PENDING|0||\n12_5|CANCELLED|15|vm|\n",
        );
        assert_eq!(m["12_0"].exit, Some(0));
        assert_eq!(m["12_3"].exit, Some(3));
        assert_eq!(m["12_3"].node.as_deref(), Some("vm"));
        assert_eq!(m["12_4"].state, "PENDING");
        assert_eq!(m["12_4"].node, None);
        assert_eq!(m["12_5"].exit, Some(143));
    }

    #[test]
    fn sacct_lines_give_states_and_exit_codes() {
        let m = parse_sacct("7_1|CANCELLED by 0|0:15|n3\n7_2|NODE_FAIL|1:0|n4\n");
        assert_eq!(m["7_1"].exit, Some(143));
        assert_eq!(m["7_1"].state, "CANCELLED by 0");
        assert_eq!(m["7_2"].exit, Some(1));
        assert_eq!(m["7_2"].node.as_deref(), Some("n4"));
    }
}
