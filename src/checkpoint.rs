//! Checkpoints: `checkpoints/NAME/` holds `model.safetensors` (weights and batch-norm
//! running statistics, named as the candle model names them), `optimizer.safetensors`
//! (momentum buffers or AdamW moments) and `state.json` (everything else a resume
//! needs, with the SHA-256 of both tensor files). A folder is written under a
//! temporary name, each file fsynced, then renamed into place and the parent fsynced:
//! a reader sees a whole checkpoint or none. A resume takes the newest checkpoint
//! that validates whole (schema, checksums, log sizes that end lines of the logs)
//! before anything is cut or loaded; pruning moves a folder aside before deleting it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::policy::{Best, PolicyState, Settings};
use crate::report::Marker;
pub use crate::runlog::LogSizes;
use crate::runlog::one_line;

/// `state.json`'s `format`: a file without it is not one of ours.
pub const FORMAT: &str = "rudder-checkpoint/2";
/// The format before checksums; still read (without them).
pub const FORMAT_1: &str = "rudder-checkpoint/1";

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";

/// A checkpoint that cannot be read or does not fit the model: names the file and
/// what is wrong. Exit code 2 on resume; an event during a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

fn fault(path: &Path, msg: impl std::fmt::Display) -> CheckpointError {
    CheckpointError(one_line(&format!("{}: {msg}", path.display())))
}

/// The data order: the seed of the shuffle stream, how many epochs it has shuffled,
/// and how far into the current permutation the run is. Replaying `shuffles`
/// shuffles from the seed gives back the exact permutation and stream position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shuffle {
    pub seed: u64,
    pub shuffles: u64,
    pub cursor: usize,
}

/// The sums of an epoch in progress (a checkpoint between two steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub loss_sum: f64,
    pub correct: f64,
    pub seen: usize,
    pub train_time_s: f64,
}

/// The best value so far of the `--monitor` metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitored {
    pub metric: String,
    pub value: Option<f64>,
    pub epoch: Option<usize>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: String,
    /// The epoch to run next, or the one in progress when `partial` is set.
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    pub partial: Option<Partial>,
    pub settings: Settings,
    pub optimizer_steps: u64,
    pub rng: Shuffle,
    pub best: Best,
    pub monitored: Monitored,
    /// Each policy's name, source hash and `this`.
    pub policies: Vec<PolicyState>,
    pub logs: LogSizes,
    pub markers: Vec<Marker>,
    /// Scalars policies asked to record for the epoch in progress.
    pub policy_metrics: BTreeMap<String, f64>,
    /// SHA-256 (hex) of `model.safetensors` and `optimizer.safetensors`, by file name
    /// (format 2; a format-1 checkpoint has none).
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Loaded {
    pub dir: PathBuf,
    pub state: State,
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

/// Parses `state.json`.
pub fn parse_state(bytes: &[u8], path: &Path) -> Result<State, CheckpointError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        fault(
            path,
            format!("line {} column {}: {}", e.line(), e.column(), short(&e)),
        )
    })?;
    let format = v.get("format").and_then(|f| f.as_str());
    if format != Some(FORMAT) && format != Some(FORMAT_1) {
        return Err(fault(
            path,
            format!("not a rudder checkpoint (its format is not {FORMAT:?})"),
        ));
    }
    let state = serde_path_to_error::deserialize::<_, State>(v).map_err(|e| {
        let at = e.path().to_string();
        fault(
            path,
            format!("{at}: {}", one_line(&e.into_inner().to_string())),
        )
    })?;
    // state.json has no checksum of its own: what it says must at least be possible.
    let plausible = state.epoch <= crate::config::MAX_EPOCHS
        && state.settings.epochs <= crate::config::MAX_EPOCHS
        && state.step <= 1 << 53
        && state.optimizer_steps <= state.step.max(1) << 20
        && state.step >= state.epoch as u64
        && state.rng.shuffles <= state.epoch as u64 + 1;
    if !plausible {
        return Err(fault(
            path,
            format!(
                "epoch {} / step {} / epochs {} are not a run's (an edited file?)",
                state.epoch, state.step, state.settings.epochs
            ),
        ));
    }
    if state.format == FORMAT {
        for file in [MODEL_FILE, OPTIMIZER_FILE] {
            let ok = state
                .checksums
                .get(file)
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(fault(
                    path,
                    format!("checksums.{file}: missing or not SHA-256"),
                ));
            }
        }
    }
    Ok(state)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn short(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.split(" at line ").next().unwrap_or(&msg).to_string()
}

/// Parses a safetensors file of f32 tensors.
pub fn parse_tensors(
    bytes: &[u8],
    path: &Path,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| fault(path, format!("not a safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(fault(
                path,
                format!("tensor {name} is {:?}, rudder writes F32", view.dtype()),
            ));
        }
        let t = Tensor::from_raw_buffer(view.data(), DType::F32, view.shape(), &Device::Cpu)
            .map_err(|e| fault(path, format!("tensor {name}: {e}")))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// The largest checkpoint files read: a model of `model::MAX_PARAMS` f32 parameters
/// (1 GiB), its optimizer state (two buffers each), a `state.json`; plus headers.
const MAX_TENSORS: u64 = (crate::model::MAX_PARAMS as u64) * 4 * 2 + (16 << 20);
const MAX_STATE: u64 = 64 << 20;

/// Reads a checkpoint file: a regular file, no larger than its kind can be, read no
/// further (a file that grew, or a device put in its place, is refused unread).
fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let limit = if path.extension().is_some_and(|e| e == "json") {
        MAX_STATE
    } else {
        MAX_TENSORS
    };
    let fail = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => fault(path, "missing (an incomplete checkpoint?)"),
        _ => fault(path, e),
    };
    let meta = std::fs::metadata(path).map_err(fail)?;
    if !meta.is_file() {
        return Err(fault(path, "not a regular file"));
    }
    if meta.len() > limit {
        return Err(fault(
            path,
            format!(
                "{} bytes, more than a checkpoint file of rudder's can be",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(File::open(path).map_err(fail)?, limit + 1),
        &mut bytes,
    )
    .map_err(fail)?;
    if bytes.len() as u64 > limit {
        return Err(fault(path, "grew past the size a checkpoint file can be"));
    }
    Ok(bytes)
}

/// Reads the checkpoint in `dir`: its state, then each tensor file, checked against
/// the state's checksum before it is parsed.
pub fn read(dir: &Path) -> Result<Loaded, CheckpointError> {
    let state_path = dir.join(STATE_FILE);
    let state = parse_state(&read_file(&state_path)?, &state_path)?;
    let checked = |file: &str| -> Result<HashMap<String, Tensor>, CheckpointError> {
        let path = dir.join(file);
        let bytes = read_file(&path)?;
        if let Some(want) = state.checksums.get(file)
            && sha256(&bytes) != *want
        {
            return Err(fault(
                &path,
                "its SHA-256 is not the one state.json records (the file was changed or damaged)",
            ));
        }
        parse_tensors(&bytes, &path)
    };
    let model = checked(MODEL_FILE)?;
    let optimizer = checked(OPTIMIZER_FILE)?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        state,
        model,
        optimizer,
    })
}

/// Copies a checkpoint's weights into `model`: every tensor of the model must be
/// there with its shape, and nothing else.
pub fn load_model(
    model: &Model,
    tensors: &HashMap<String, Tensor>,
    dir: &Path,
) -> Result<(), CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let vars = check_model(model, tensors, dir)?;
    for (name, var) in &vars {
        let t = tensors[name]
            .to_device(var.device())
            .map_err(|e| fault(&path, e))?;
        var.set(&t).map_err(|e| fault(&path, e))?;
    }
    Ok(())
}

/// Checks that a checkpoint's weights fit `model` (see [`load_model`]); returns the
/// model's tensors by name.
pub fn check_model(
    model: &Model,
    tensors: &HashMap<String, Tensor>,
    dir: &Path,
) -> Result<Vec<(String, candle_core::Var)>, CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let vars: Vec<_> = model.params().into_iter().chain(model.buffers()).collect();
    for (name, var) in &vars {
        let Some(t) = tensors.get(name) else {
            return Err(fault(
                &path,
                format!("tensor {name} is missing (was the checkpoint written for another model?)"),
            ));
        };
        if t.dims() != var.dims() {
            return Err(fault(
                &path,
                format!(
                    "tensor {name} has shape {:?} where the model has {:?} (a resume with a different model?)",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !vars.iter().any(|(n, _)| n == *k)) {
        return Err(fault(
            &path,
            format!("tensor {extra} is not in this model (a resume with a different model?)"),
        ));
    }
    Ok(vars)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn tensors_bytes(tensors: &[(String, Tensor)]) -> std::io::Result<Vec<u8>> {
    let cpu = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(std::io::Error::other)?;
    let meta = HashMap::from([("format".to_string(), FORMAT.to_string())]);
    safetensors::serialize(cpu, Some(meta)).map_err(std::io::Error::other)
}

/// What a checkpoint holds, ready to write.
pub struct Snapshot<'a> {
    pub state: &'a State,
    pub model: &'a [(String, Tensor)],
    pub optimizer: &'a [(String, Tensor)],
}

/// Writes `checkpoints/NAME/` atomically; returns its size in bytes. An existing
/// folder of that name is replaced (moved to `.old-NAME` first, removed after).
pub fn write(root: &Path, name: &str, snap: &Snapshot) -> std::io::Result<u64> {
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp)?;
    let model = tensors_bytes(snap.model)?;
    write_synced(&tmp.join(MODEL_FILE), &model)?;
    crate::fault::checkpoint(name);
    let opt = tensors_bytes(snap.optimizer)?;
    write_synced(&tmp.join(OPTIMIZER_FILE), &opt)?;
    let mut sealed = snap.state.clone();
    sealed.format = FORMAT.into();
    sealed.checksums = BTreeMap::from([
        (MODEL_FILE.to_string(), sha256(&model)),
        (OPTIMIZER_FILE.to_string(), sha256(&opt)),
    ]);
    let mut state = serde_json::to_vec_pretty(&sealed).map_err(std::io::Error::other)?;
    state.push(b'\n');
    write_synced(&tmp.join(STATE_FILE), &state)?;
    sync_dir(&tmp)?;
    let target = root.join(name);
    let old = root.join(format!(".old-{name}"));
    if target.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&target, &old)?;
    }
    std::fs::rename(&tmp, &target)?;
    sync_dir(root)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok((model.len() + opt.len() + state.len()) as u64)
}

/// The folder that holds checkpoint `name`: `NAME`, or `.old-NAME` when a crash
/// came between the two renames of a replacement.
pub fn locate(root: &Path, name: &str) -> Option<PathBuf> {
    [name.to_string(), format!(".old-{name}")]
        .into_iter()
        .map(|n| root.join(n))
        .find(|d| d.join(STATE_FILE).is_file())
}

/// Removes what a crash left behind: `.tmp-*` and `.trash-*` folders, and
/// `.old-NAME` where `NAME` is whole.
pub fn clean(root: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let stale = name.starts_with(".tmp-")
            || name.starts_with(".trash-")
            || name
                .strip_prefix(".old-")
                .is_some_and(|n| root.join(n).join(STATE_FILE).is_file());
        if stale {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
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

/// Deletes a checkpoint folder crash-safely: renamed to `.trash-NAME` first (which
/// no reader takes and `clean` finishes), then removed.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let trash = root.join(format!(".trash-{}", name.to_string_lossy()));
    if trash.exists() {
        std::fs::remove_dir_all(&trash)?;
    }
    std::fs::rename(dir, &trash)?;
    sync_dir(root)?;
    crate::fault::checkpoint(&format!("prune-{}", name.to_string_lossy()));
    std::fs::remove_dir_all(&trash)
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
        std::fs::File::open(&path)
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
    // metrics.jsonl up to the checkpoint holds one line per finished epoch, the last
    // at the checkpoint's step when it is an epoch's end.
    // `epoch` counts the finished epochs whether or not one is in progress.
    let finished = state.epoch;
    let path = run_dir.join("metrics.jsonl");
    let mut head = Vec::new();
    if state.logs.metrics > 0 {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                File::open(&path).map_err(|e| fault(&path, e))?,
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
                "epoch {} but {} finished epoch(s) in the first {} bytes of metrics.jsonl",
                state.epoch,
                lines.len(),
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
            Err(e) => faults.push(e.0),
        }
    }
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, dir) in ranked {
        let loaded = read(dir)
            .and_then(|l| check_logs(&l.state, &dir.join(STATE_FILE), run_dir).map(|()| l));
        match loaded {
            Ok(l) => return Ok(Some((l, faults))),
            Err(e) => faults.push(e.0),
        }
    }
    if all.is_empty() {
        return Ok(None);
    }
    Err(CheckpointError(one_line(&format!(
        "no checkpoint in {} can be resumed: {}",
        root.display(),
        faults.join("; ")
    ))))
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
    let mut periodic: Vec<(u64, bool, PathBuf)> = list(root)
        .into_iter()
        .filter(|(n, _)| is_periodic(n))
        .filter_map(|(_, d)| {
            let s = parse_state(&std::fs::read(d.join(STATE_FILE)).ok()?, &d).ok()?;
            Some((s.step, s.partial.is_none(), d))
        })
        .collect();
    periodic.sort_by_key(|p| std::cmp::Reverse((p.0, p.1)));
    periodic.into_iter().skip(keep).map(|(_, _, d)| d).collect()
}

/// The epoch a checkpoint belongs to: the one in progress (`in_progress`), else the
/// last finished, for `epoch` as `State` counts it (the next to run).
pub fn boundary_epoch(epoch: usize, in_progress: bool) -> usize {
    if in_progress {
        epoch
    } else {
        epoch.saturating_sub(1)
    }
}

/// `epoch-N` or `step-N`: the names the trainer gives and prunes.
pub fn is_periodic(name: &str) -> bool {
    ["epoch-", "step-"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            format: FORMAT.into(),
            epoch: 2,
            step: 40,
            partial: None,
            settings: {
                let mut s = Settings::new(0.1, 32);
                s.epochs = 5;
                s.momentum = 0.9;
                s
            },
            optimizer_steps: 40,
            rng: Shuffle {
                seed: 7,
                shuffles: 2,
                cursor: 0,
            },
            best: Best::default(),
            monitored: Monitored::default(),
            policies: Vec::new(),
            logs: LogSizes::default(),
            markers: Vec::new(),
            policy_metrics: BTreeMap::new(),
            checksums: BTreeMap::new(),
        }
    }

    #[test]
    fn a_written_checkpoint_reads_back_and_replaces_atomically() {
        let root = tempfile::tempdir().unwrap();
        let w = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let model = vec![("fc1.weight".to_string(), w.clone())];
        let s = state();
        let snap = Snapshot {
            state: &s,
            model: &model,
            optimizer: &[],
        };
        let bytes = write(root.path(), "epoch-1", &snap).unwrap();
        assert!(bytes > 24);
        // Again: the folder is replaced, nothing is left aside.
        write(root.path(), "epoch-1", &snap).unwrap();
        let names: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["epoch-1"]);
        let back = latest(root.path()).unwrap().unwrap();
        assert_eq!(back.state.checksums.len(), 2);
        assert_eq!(
            State {
                checksums: BTreeMap::new(),
                ..back.state.clone()
            },
            s
        );
        assert_eq!(
            back.model["fc1.weight"].to_vec2::<f32>().unwrap(),
            w.to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn a_crash_between_the_renames_leaves_the_old_folder_readable() {
        let root = tempfile::tempdir().unwrap();
        let s = state();
        let snap = Snapshot {
            state: &s,
            model: &[],
            optimizer: &[],
        };
        write(root.path(), "best", &snap).unwrap();
        std::fs::rename(root.path().join("best"), root.path().join(".old-best")).unwrap();
        std::fs::create_dir(root.path().join(".tmp-best")).unwrap();
        assert_eq!(
            locate(root.path(), "best"),
            Some(root.path().join(".old-best"))
        );
        clean(root.path()).unwrap();
        assert!(!root.path().join(".tmp-best").exists());
        assert!(latest(root.path()).unwrap().is_some());
    }

    #[test]
    fn foreign_and_truncated_files_are_errors_that_name_the_file() {
        let p = Path::new("ck/state.json");
        let e = parse_state(br#"{"epoch": 1}"#, p).unwrap_err();
        assert!(
            e.0.starts_with("ck/state.json: not a rudder checkpoint"),
            "{e}"
        );
        let e = parse_state(b"{\"format\": \"rudder-checkpoint/1\", \"epo", p).unwrap_err();
        assert!(e.0.contains("line 1 column"), "{e}");
        let e = parse_tensors(&[1, 0, 0], Path::new("m.safetensors")).unwrap_err();
        assert!(
            e.0.starts_with("m.safetensors: not a safetensors file"),
            "{e}"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_periodic_checkpoints_only() {
        let root = tempfile::tempdir().unwrap();
        for (name, step) in [
            ("epoch-0", 10),
            ("epoch-1", 20),
            ("epoch-2", 30),
            ("best", 10),
        ] {
            let s = State { step, ..state() };
            let snap = Snapshot {
                state: &s,
                model: &[],
                optimizer: &[],
            };
            write(root.path(), name, &snap).unwrap();
        }
        assert_eq!(beyond_keep(root.path(), 2), [root.path().join("epoch-0")]);
        assert!(is_periodic("step-12") && !is_periodic("epoch-") && !is_periodic("best"));
    }
}
