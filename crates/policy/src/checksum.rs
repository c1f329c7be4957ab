//! A plugin's checksum, the same on every machine: its canonical file listing (every
//! regular file's path relative to the plugin, `/`-separated, with the SHA-256 of its
//! bytes; every symlink's path with its target, which must stay inside the plugin),
//! sorted by path bytes, hashed with SHA-256. File modes, timestamps and empty
//! folders are not part of it; a top-level `.git` folder (a path plugin that is a
//! checkout) is skipped; any other kind of file (a FIFO, a socket, a device) is
//! refused. The walk is bounded: [`MAX_FILES`] entries, [`MAX_BYTES`] bytes.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most files (and links) a plugin may have.
pub const MAX_FILES: usize = 10_000;
/// The most bytes a plugin's files may have together.
pub const MAX_BYTES: u64 = 64 << 20;

/// One entry of a plugin's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the plugin, `/`-separated.
    pub path: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: Kind,
}

/// A regular file with its bytes' hash, or a symlink with its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `sha256:` and 64 hex digits.
    File(String),
    /// The link's target as written (relative, inside the plugin).
    Link(String),
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The hex digest of `bytes` (what the checkpoints' `checksums` record).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a name cannot be part of a plugin: empty, `.`/`..`, a separator, or a
/// control character.
pub fn bad_component(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Some("is not a file name");
    }
    if name.contains('/') || name.contains('\\') {
        return Some("has a path separator");
    }
    if name.chars().any(char::is_control) {
        return Some("has a control character");
    }
    None
}

/// Whether a symlink at `path` (relative, `/`-separated) with `target` stays inside
/// the plugin: a relative target whose `..`s never climb above the plugin's root.
pub fn link_stays_inside(path: &str, target: &str) -> bool {
    let t = Path::new(target);
    if t.is_absolute() || target.chars().any(char::is_control) {
        return false;
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop();
    for c in t.components() {
        match c {
            Component::Normal(n) => depth.push(n.to_str().unwrap_or("")),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

struct Walk {
    root: PathBuf,
    /// `root` with every link resolved.
    real_root: PathBuf,
    entries: Vec<Entry>,
    bytes: u64,
}

impl Walk {
    fn dir(&mut self, rel: &str) -> Result<(), String> {
        let here = if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        };
        let read = std::fs::read_dir(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        for item in read {
            let item = item.map_err(|e| format!("{}: {e}", here.display()))?;
            let name = item.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{}: a file name that is not UTF-8", here.display()))?;
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if path == ".git" {
                continue;
            }
            if let Some(why) = bad_component(name) {
                return Err(format!("{path:?} {why}"));
            }
            if self.entries.len() >= MAX_FILES {
                return Err(format!("more than {MAX_FILES} files"));
            }
            let meta =
                std::fs::symlink_metadata(item.path()).map_err(|e| format!("{path}: {e}"))?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(item.path()).map_err(|e| format!("{path}: {e}"))?;
                let target = target.to_string_lossy().into_owned();
                if !link_stays_inside(&path, &target) {
                    return Err(format!(
                        "{path} is a symlink to {target:?}, outside the plugin"
                    ));
                }
                // Written inside, it may still lead out through another link
                // (`a -> .`, `c -> a/../x`): where it really leads must be inside too.
                match std::fs::canonicalize(item.path()) {
                    Ok(real) if real.starts_with(&self.real_root) => {}
                    Ok(_) => {
                        return Err(format!(
                            "{path} is a symlink to {target:?}, which leads outside the plugin"
                        ));
                    }
                    Err(_) => {
                        return Err(format!("{path} is a broken symlink (to {target:?})"));
                    }
                }
                self.entries.push(Entry {
                    path,
                    kind: Kind::Link(target),
                });
            } else if ft.is_dir() {
                self.dir(&path)?;
            } else if ft.is_file() {
                self.bytes += meta.len();
                if self.bytes > MAX_BYTES {
                    return Err(format!("more than {} MiB of files", MAX_BYTES >> 20));
                }
                let bytes = rudder_core::input::read(&item.path(), MAX_BYTES)
                    .map_err(|e| format!("{path}: {e}"))?;
                self.entries.push(Entry {
                    path,
                    kind: Kind::File(sha256(&bytes)),
                });
            } else {
                return Err(format!(
                    "{path} is not a regular file, a folder or a symlink"
                ));
            }
        }
        Ok(())
    }
}

/// Why a plugin's files cannot be listed: a link out, an odd file, past the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListingError(pub String);

/// The canonical listing of the plugin at `root`, sorted by path.
pub fn listing(root: &Path) -> Result<Vec<Entry>, ListingError> {
    let real_root = std::fs::canonicalize(root)
        .map_err(|e| ListingError(format!("{}: {e}", root.display())))?;
    let mut w = Walk {
        root: root.to_path_buf(),
        real_root,
        entries: Vec::new(),
        bytes: 0,
    };
    w.dir("").map_err(ListingError)?;
    w.entries
        .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(w.entries)
}

/// The checksum of a listing: SHA-256 over `file\0PATH\0HASH\n` and
/// `link\0PATH\0TARGET\n` lines in path order.
pub fn checksum(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut text = Vec::new();
    for e in sorted {
        let (kind, value) = match &e.kind {
            Kind::File(h) => ("file", h),
            Kind::Link(t) => ("link", t),
        };
        for part in [
            kind.as_bytes(),
            b"\0",
            e.path.as_bytes(),
            b"\0",
            value.as_bytes(),
            b"\n",
        ] {
            text.extend_from_slice(part);
        }
    }
    sha256(&text)
}

/// The listing saved beside an installed plugin, if it reads.
pub fn read_listing(path: &Path) -> Option<Vec<Entry>> {
    let bytes = rudder_core::input::read(path, 8 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The files that differ between two listings: (path, now, before).
pub fn differences(
    before: &[Entry],
    now: &[Entry],
) -> Vec<(String, Option<String>, Option<String>)> {
    let show = |k: &Kind| match k {
        Kind::File(h) => h.clone(),
        Kind::Link(t) => format!("a link to {t}"),
    };
    let old: std::collections::BTreeMap<&str, &Kind> =
        before.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
    let new: std::collections::BTreeMap<&str, &Kind> =
        now.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
    let mut out = Vec::new();
    for path in old
        .keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (new.get(path), old.get(path));
        if a != b {
            out.push((path.to_string(), a.map(|k| show(k)), b.map(|k| show(k))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_of_paths_and_bytes_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("sub/empty")).unwrap();
            std::fs::write(d.join("plugin.json"), "{}").unwrap();
            std::fs::write(d.join("sub/x.rhai"), "1").unwrap();
        }
        std::fs::remove_dir(b.path().join("sub/empty")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            b.path().join("sub/x.rhai"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let (la, lb) = (listing(a.path()).unwrap(), listing(b.path()).unwrap());
        assert_eq!(checksum(&la), checksum(&lb));
        std::fs::write(b.path().join("sub/x.rhai"), "2").unwrap();
        let lb = listing(b.path()).unwrap();
        assert_ne!(checksum(&la), checksum(&lb));
        let d = differences(&la, &lb);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, "sub/x.rhai");
        // A fixed listing has a fixed checksum (the same on every machine).
        let fixed = [Entry {
            path: "a".into(),
            kind: Kind::File(sha256(b"")),
        }];
        assert_eq!(
            checksum(&fixed),
            sha256(format!("file\0a\0{}\n", sha256(b"")).as_bytes())
        );
    }

    #[test]
    fn links_out_and_odd_names_are_refused() {
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("b", "/etc/passwd"));
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("x")).unwrap();
        assert!(
            listing(d.path())
                .unwrap_err()
                .0
                .contains("outside the plugin")
        );
        assert_eq!(bad_component("a\nb"), Some("has a control character"));
        // Inside as written, outside through another link.
        let d = tempfile::tempdir().unwrap();
        let plugin = d.path().join("p");
        std::fs::create_dir(&plugin).unwrap();
        std::fs::write(d.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(".", plugin.join("a")).unwrap();
        std::os::unix::fs::symlink("a/../secret", plugin.join("c")).unwrap();
        let e = listing(&plugin).unwrap_err().0;
        assert!(
            e.contains("c is a symlink to \"a/../secret\", which leads outside"),
            "{e}"
        );
        std::fs::remove_file(plugin.join("c")).unwrap();
        std::os::unix::fs::symlink("nothing", plugin.join("c")).unwrap();
        assert!(listing(&plugin).unwrap_err().0.contains("broken symlink"));
        std::fs::remove_file(plugin.join("c")).unwrap();
        assert_eq!(listing(&plugin).unwrap().len(), 1, "a -> . stays inside");
    }
}
