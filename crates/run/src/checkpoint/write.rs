//! Writing checkpoints: a folder written aside (`.tmp-NAME`), each file fsynced,
//! renamed into place and the parent fsynced; a replaced folder moved to
//! `.old-NAME` first; deletion by renaming to `.trash-NAME` first; and the cleanup
//! of what a crash left.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::{FORMAT, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, Snapshot, sha256};

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
