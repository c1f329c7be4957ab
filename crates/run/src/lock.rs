//! One process writes a run folder: the exclusive lock a run holds to its end, and
//! the claim of an absent or empty folder for a new run.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rudder_core::text::clip;

use crate::files::write_atomic;

/// A run folder this process cannot have. `at` names the option that chose it and
/// the folder (`--out runs/a`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the folder's lock.
    #[error("{at}: {who} is using this run folder; wait for it to end")]
    Busy {
        /// The option and the folder.
        at: String,
        /// `another rudder (pid N)`, or `another process`.
        who: String,
    },
    /// A new run's folder holds files already.
    #[error(
        "{at}: not empty (holds {held}); a new run needs an absent or empty folder (to continue a run: --resume {dir})"
    )]
    NotEmpty {
        /// The option and the folder.
        at: String,
        /// The first names it holds.
        held: String,
        /// The folder.
        dir: String,
    },
    /// The folder cannot be created or opened.
    #[error("{at}: {source}")]
    Io {
        /// The option and the folder.
        at: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The exclusive lock of a run folder, held while a process writes the run: `flock`
/// on the folder itself (deleting a file cannot undo it), with the holder's PID in
/// `DIR/.lock` for the message a second process gets.
pub struct Lock {
    _dir: File,
}

/// The name of the file that names a run folder's holder.
pub const LOCK_FILE: &str = ".lock";

/// The PID written in `dir/.lock`, read without following a link, blocking on a FIFO
/// or reading more than a PID.
fn holder(dir: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 24), &mut text).ok()?;
    let pid = text.trim();
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.to_string())
}

impl Lock {
    /// Takes `dir`'s lock, or says which process holds it (`flag` names the option
    /// that chose the folder).
    pub fn take(dir: &Path, flag: &str) -> Result<Lock, LockError> {
        let fault = |e: std::io::Error| LockError::Io {
            at: format!("{flag} {}", dir.display()),
            source: e,
        };
        let folder = File::open(dir).map_err(fault)?;
        match folder.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = holder(dir).map_or("another process".to_string(), |pid| {
                    format!("another rudder (pid {pid})")
                });
                return Err(LockError::Busy {
                    at: format!("{flag} {}", dir.display()),
                    who,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fault(e)),
        }
        // The PID, by a new file renamed into place: whatever `.lock` was (a link, a
        // hard link to someone's file) is replaced, never written through. Best
        // effort: the lock itself is the folder's.
        let _ = write_atomic(
            &dir.join(LOCK_FILE),
            format!("{}\n", std::process::id()).as_bytes(),
        );
        Ok(Lock { _dir: folder })
    }
}

/// Whether a process holds `dir`'s lock (a run is being written there): the lock
/// tried and at once let go, so nothing is written. `None` when `dir` cannot be
/// opened. (A trainer starting in the instant it is tried finds it busy, as it would
/// any second process.)
pub fn held(dir: &Path) -> Option<bool> {
    let folder = File::open(dir).ok()?;
    match folder.try_lock() {
        Ok(()) => Some(false),
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Claims `dir` for a new run: it must be absent or empty (besides a lock file);
/// creates it and takes its lock.
pub fn claim(dir: &Path, flag: &str) -> Result<Lock, LockError> {
    let others = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK_FILE)
            .collect()
    };
    let refuse = |mut names: Vec<String>| {
        names.sort();
        let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 3 { ", ..." } else { "" };
        LockError::NotEmpty {
            at: format!("{flag} {}", dir.display()),
            held: format!("{}{more}", clip(&shown)),
            dir: dir.display().to_string(),
        }
    };
    let held = others(dir);
    if !held.is_empty() {
        return Err(refuse(held));
    }
    std::fs::create_dir_all(dir).map_err(|e| LockError::Io {
        at: format!("{flag} {}", dir.display()),
        source: e,
    })?;
    let lock = Lock::take(dir, flag)?;
    // Another process may have filled it between the look and the lock.
    let held = others(dir);
    if !held.is_empty() {
        return Err(refuse(held));
    }
    Ok(lock)
}
