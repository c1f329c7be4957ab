//! An exploit's copy: another trial's newest epoch checkpoint put in place whole (a
//! folder renamed in) under a tag of the trial that takes it.

use std::path::{Path, PathBuf};

/// Run folder `run`'s newest `epoch-N` checkpoint: the epochs it had trained, and
/// its folder.
pub(crate) fn newest_epoch(run: &Path) -> Option<(usize, PathBuf)> {
    rudder_run::checkpoint::list(&run.join("checkpoints"))
        .into_iter()
        .filter_map(|(name, dir)| {
            Some((name.strip_prefix("epoch-")?.parse::<usize>().ok()? + 1, dir))
        })
        .max_by_key(|(n, _)| *n)
}

/// `from`'s newest `epoch-N` checkpoint copied into `to`'s checkpoints as `tag`:
/// the epochs it had trained and the SHA-256 of its weights.
pub(crate) fn copy_newest(from: &Path, to: &Path, tag: &str) -> Result<(usize, String), String> {
    let newest = newest_epoch(from)
        .ok_or_else(|| format!("{} has no epoch checkpoint yet", from.display()))?;
    let dir = to.join("checkpoints");
    let tmp = dir.join(format!(".{tag}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    let io = |e: std::io::Error| format!("copying {}: {e}", newest.1.display());
    std::fs::create_dir_all(&tmp).map_err(io)?;
    for f in std::fs::read_dir(&newest.1).map_err(io)?.flatten() {
        if f.file_type().map_err(io)?.is_file() {
            std::fs::copy(f.path(), tmp.join(f.file_name())).map_err(io)?;
        }
    }
    let weights = std::fs::read(tmp.join("model.safetensors")).map_err(io)?;
    std::fs::rename(&tmp, dir.join(tag)).map_err(io)?;
    Ok((newest.0, rudder_policy::checksum::sha256(&weights)))
}
