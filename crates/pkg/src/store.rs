//! The install cache and atomic writes: one read-only folder per (plugin, commit),
//! written in a temporary folder and renamed into place under an exclusive lock on
//! the cache (`flock`), so that two installs cannot interleave and a kill at any
//! point leaves the folder absent or complete. A temporary folder a killed install
//! left behind is removed by the next one that holds the lock.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rudder_policy::checksum;
use rudder_policy::project;

use crate::PkgError;

/// A name in `dir` no other process uses: `.KIND-PID-NANOS`.
pub fn temp_name(dir: &Path, kind: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(".{kind}-{}-{nanos}", std::process::id()))
}

/// Creates `path` (which must not exist, and is not followed if a link) with `bytes`.
pub fn write_new(path: &Path, bytes: &[u8], executable: bool) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)?;
    f.write_all(bytes)
}

/// Writes `path` atomically (`rudder_core::atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PkgError> {
    rudder_core::atomic::write_atomic(path, bytes).map_err(|e| PkgError::io(path.display(), e))
}

/// The cache's exclusive lock, held until dropped.
pub struct CacheLock {
    _file: std::fs::File,
}

/// Takes the cache's lock (waiting for another install to finish), then removes what
/// killed installs left.
pub fn lock(cache: &Path) -> Result<CacheLock, PkgError> {
    std::fs::create_dir_all(cache).map_err(|e| PkgError::io(cache.display(), e))?;
    let path = cache.join(".lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| PkgError::io(path.display(), e))?;
    // SAFETY: flock on a file descriptor this function owns.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    if rc != 0 {
        return Err(PkgError::io(
            path.display(),
            std::io::Error::last_os_error(),
        ));
    }
    for e in std::fs::read_dir(cache.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
    {
        remove_tree(&e.path());
    }
    for e in std::fs::read_dir(cache.join("git"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with('.') {
            remove_tree(&e.path());
        }
    }
    Ok(CacheLock { _file: file })
}

/// Removes a folder this module wrote, read-only parts included.
pub fn remove_tree(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(m) = std::fs::symlink_metadata(&d)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn read_only(dir: &Path, folders: bool) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() {
            read_only(&e.path(), folders);
        } else if m.is_file() && !folders {
            let mode = if m.permissions().mode() & 0o111 != 0 {
                0o555
            } else {
                0o444
            };
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode));
        }
    }
    if folders {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555));
    }
}

/// What an install found in the plugin's files.
pub struct Installed {
    /// Its folder in the cache.
    pub home: PathBuf,
    /// Its checksum.
    pub checksum: String,
    /// Submodules it skipped.
    pub skipped: Vec<String>,
}

/// Installs `commit` as `name` in `cache` (the caller holds the lock), its files
/// written by `extract` (which returns the submodules it skipped):
/// nothing when the folder is there, else written out, listed and checked in a
/// temporary folder, made read-only and renamed into place. `check` sees the
/// temporary folder (the manifest) before it is kept.
pub fn install(
    cache: &Path,
    name: &str,
    commit: &str,
    extract: impl FnOnce(&Path) -> Result<Vec<String>, PkgError>,
    check: impl FnOnce(&Path) -> Result<(), PkgError>,
) -> Result<Installed, PkgError> {
    let home = project::installed_dir(cache, name, commit);
    if home.join("plugin.json").is_file() {
        let entries =
            checksum::listing(&home).map_err(|m| PkgError::input(format!("plugin {name}: {m}")))?;
        return Ok(Installed {
            home,
            checksum: checksum::checksum(&entries),
            skipped: Vec::new(),
        });
    }
    let tmp_dir = cache.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| PkgError::io(tmp_dir.display(), e))?;
    // Named like the plugin (its manifest is checked in it); the lock's holder
    // removes whatever else is in tmp/.
    let tmp = tmp_dir.join(format!("{name}-{}", std::process::id()));
    let result = (|| {
        let skipped = extract(&tmp)?;
        let entries =
            checksum::listing(&tmp).map_err(|m| PkgError::input(format!("plugin {name}: {m}")))?;
        check(&tmp)?;
        let parent = home.parent().expect("an installed folder has a parent");
        std::fs::create_dir_all(parent).map_err(|e| PkgError::io(parent.display(), e))?;
        let listing = serde_json::to_vec_pretty(&entries).expect("a listing serializes");
        write_atomic(&project::listing_file(&home), &listing)?;
        read_only(&tmp, false);
        if home.exists() {
            // A folder without a manifest: what a partial copy by hand left.
            remove_tree(&home);
        }
        std::fs::rename(&tmp, &home).map_err(|e| PkgError::io(home.display(), e))?;
        read_only(&home, true);
        Ok(Installed {
            home: home.clone(),
            checksum: checksum::checksum(&entries),
            skipped,
        })
    })();
    if result.is_err() {
        remove_tree(&tmp);
    }
    result
}
