//! Finding checkpoints: every folder by name (`.old-NAME` standing in for a lost
//! `NAME`), the newest that validates whole (log sizes included), the newest
//! readable one, and the periodic ones beyond `--keep-last`.

use std::path::{Path, PathBuf};

use rudder_core::text::one_line;

use super::read::read_file;
use super::{CheckpointError, Loaded, STATE_FILE, State, fault, is_periodic, parse_state, read};

/// The folder that holds checkpoint `name`: `NAME`, or `.old-NAME` when a crash
/// came between the two renames of a replacement.
pub fn locate(root: &Path, name: &str) -> Option<PathBuf> {
    [name.to_string(), format!(".old-{name}")]
        .into_iter()
        .map(|n| root.join(n))
        .find(|d| d.join(STATE_FILE).is_file())
}

/// Every checkpoint under `root` by name (folders whose state.json exists), with
/// `.old-NAME` standing in for a missing `NAME`.
pub fn list(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter_map(|n| match n.strip_prefix(".old-") {
            Some(base) => Some(base.to_string()),
            None => (!n.starts_with('.')).then_some(n),
        })
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| locate(root, &n).map(|d| (n, d)))
        .collect()
}

/// Every checkpoint folder under `root` by name, readable or not (a `NAME` whose
/// state.json is gone counts, so a run whose checkpoints are all damaged is not taken
/// for one that has none); `.old-NAME` stands in for a missing `NAME`.
pub fn folders(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            match n.strip_prefix(".old-") {
                Some(base) if !root.join(base).join(STATE_FILE).is_file() => {
                    Some((base.to_string(), e.path()))
                }
                Some(_) => None,
                None => (!n.starts_with('.')).then(|| (n, e.path())),
            }
        })
        .collect();
    out.sort();
    out
}

/// Checks that a checkpoint's log sizes fit the run's logs in `run_dir`: each at most
/// the file's length and at the end of a line, so cutting there loses no line whole
/// and leaves none half.
pub fn check_logs(state: &State, state_path: &Path, run_dir: &Path) -> Result<(), CheckpointError> {
    line_ends(state, state_path, run_dir)?;
    epochs_fit(state, state_path, run_dir)
}

/// Each log size at most its file's length, and at a line's end.
fn line_ends(state: &State, state_path: &Path, run_dir: &Path) -> Result<(), CheckpointError> {
    use std::io::{Read, Seek, SeekFrom};
    for (name, size) in [
        ("metrics.jsonl", state.logs.metrics),
        ("events.jsonl", state.logs.events),
        ("steps.jsonl", state.logs.steps),
    ] {
        if size == 0 {
            continue;
        }
        let path = run_dir.join(name);
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if size > len {
            return Err(fault(
                state_path,
                format!("logs: {name} is {len} bytes, the checkpoint says {size}"),
            ));
        }
        let mut last = [0u8];
        rudder_core::input::open(&path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(size - 1))?;
                f.read_exact(&mut last)
            })
            .map_err(|e| fault(&path, e))?;
        if last[0] != b'\n' {
            return Err(fault(
                state_path,
                format!("logs: {size} bytes of {name} do not end a line"),
            ));
        }
    }
    Ok(())
}

/// `metrics.jsonl` up to the checkpoint: one line per finished epoch, the last at
/// the checkpoint's step when it is an epoch's end.
fn epochs_fit(state: &State, state_path: &Path, run_dir: &Path) -> Result<(), CheckpointError> {
    // metrics.jsonl up to the checkpoint holds one line per finished epoch, the last
    // at the checkpoint's step when it is an epoch's end.
    // `epoch` counts the finished epochs whether or not one is in progress.
    let finished = state.epoch;
    let path = run_dir.join("metrics.jsonl");
    let mut head = Vec::new();
    if state.logs.metrics > 0 {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                rudder_core::input::open(&path).map_err(|e| fault(&path, e))?,
                state.logs.metrics,
            ),
            &mut head,
        )
        .map_err(|e| fault(&path, e))?;
    }
    let lines: Vec<&[u8]> = head
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() != finished {
        return Err(fault(
            state_path,
            format!(
                "epoch {} but {} in the first {} bytes of metrics.jsonl",
                state.epoch,
                rudder_core::text::plural(lines.len() as i64, "finished epoch"),
                state.logs.metrics
            ),
        ));
    }
    if let Some(last) = lines.last() {
        let step = serde_json::from_slice::<serde_json::Value>(last)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        let fits = match step {
            Some(s) if state.partial.is_none() => s == state.step,
            Some(s) => s <= state.step,
            None => false,
        };
        if !fits {
            return Err(fault(
                state_path,
                format!(
                    "step {} does not follow metrics.jsonl's last line (step {step:?})",
                    state.step
                ),
            ));
        }
    }
    Ok(())
}

/// The newest checkpoint under `root` that validates whole: the most optimizer steps,
/// an epoch-end one before a mid-epoch one at the same step. Returns it with a note
/// for each newer one that did not validate, or an error naming every checkpoint
/// when none does; `None` when there is none at all.
pub fn newest_valid(
    root: &Path,
    run_dir: &Path,
) -> Result<Option<(Loaded, Vec<String>)>, CheckpointError> {
    let all = folders(root);
    let mut ranked = Vec::new();
    let mut faults = Vec::new();
    for (name, dir) in &all {
        let path = dir.join(STATE_FILE);
        match read_file(&path).and_then(|b| parse_state(&b, &path)) {
            // At the same step, `epoch-N` names the point more plainly than `best`.
            Ok(s) => ranked.push(((s.step, s.partial.is_none(), is_periodic(name)), dir)),
            Err(e) => faults.push(e.to_string()),
        }
    }
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, dir) in ranked {
        let loaded = read(dir)
            .and_then(|l| check_logs(&l.state, &dir.join(STATE_FILE), run_dir).map(|()| l));
        match loaded {
            Ok(l) => return Ok(Some((l, faults))),
            Err(e) => faults.push(e.to_string()),
        }
    }
    if all.is_empty() {
        return Ok(None);
    }
    Err(CheckpointError::NoneValid {
        root: one_line(&root.display().to_string()),
        faults,
    })
}

/// The newest readable checkpoint under `root` (see [`newest_valid`]; log sizes are
/// not checked).
pub fn latest(root: &Path) -> Result<Option<Loaded>, CheckpointError> {
    let mut newest: Option<((u64, bool, bool), PathBuf)> = None;
    for (name, dir) in list(root) {
        let path = dir.join(STATE_FILE);
        let s = parse_state(&read_file(&path)?, &path)?;
        let key = (s.step, s.partial.is_none(), is_periodic(&name));
        if newest.as_ref().is_none_or(|(k, _)| key > *k) {
            newest = Some((key, dir));
        }
    }
    newest.map(|(_, dir)| read(&dir)).transpose()
}

/// Periodic checkpoints (`epoch-N`, `step-N`) beyond the newest `keep`, to delete.
pub fn beyond_keep(root: &Path, keep: usize) -> Vec<PathBuf> {
    beyond(root, keep, is_periodic)
}

/// Tagged checkpoints (a policy's `save`: neither periodic nor `best`) beyond the
/// newest `keep`, to delete.
pub fn beyond_keep_tagged(root: &Path, keep: usize) -> Vec<PathBuf> {
    beyond(root, keep, |n| !is_periodic(n) && n != "best")
}

/// The checkpoints whose name `pick` takes, beyond the newest `keep` (by step, an
/// epoch's end after a mid-epoch one at the same step).
fn beyond(root: &Path, keep: usize, pick: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut periodic: Vec<(u64, bool, PathBuf)> = list(root)
        .into_iter()
        .filter(|(n, _)| pick(n))
        .filter_map(|(_, d)| {
            let s = parse_state(&super::read::read_file(&d.join(STATE_FILE)).ok()?, &d).ok()?;
            Some((s.step, s.partial.is_none(), d))
        })
        .collect();
    periodic.sort_by_key(|p| std::cmp::Reverse((p.0, p.1)));
    periodic.into_iter().skip(keep).map(|(_, _, d)| d).collect()
}
