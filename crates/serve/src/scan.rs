//! The served folders and what is in them: every run folder (`config.json`) and sweep
//! folder (`sweep.json`) a few levels below each, found afresh at each look, and the
//! one way a request's run id becomes a folder. Nothing is followed through a
//! symlink, and a file is read only if its real path lies inside its run's folder
//! (`rudder_policy::contain`), so no `../` and no link can lead a read out.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::ServeError;

/// How far below a served folder runs are looked for (a sweep's trials are one
/// level below the sweep).
const DEPTH: usize = 4;

/// The most run and sweep folders one look lists.
const MAX_FOUND: usize = 5_000;

/// A served folder: as given, and its real path.
#[derive(Debug, Clone)]
struct Root {
    shown: String,
    real: PathBuf,
}

/// The served folders.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    roots: Vec<Root>,
}

/// A run or a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A run folder (`config.json`).
    Run,
    /// A sweep folder (`sweep.json`).
    Sweep,
}

/// A folder found: its id (`ROOT/relative/path`), kind, real path, and the sweep it
/// is a trial of.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Found {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    #[serde(skip)]
    pub(crate) dir: PathBuf,
    pub(crate) sweep: Option<String>,
}

impl Roots {
    /// The folders to serve, each checked to be a folder.
    pub(crate) fn new(dirs: &[PathBuf]) -> Result<Roots, ServeError> {
        let mut roots = Vec::new();
        for d in dirs {
            let shown = d.display().to_string();
            let real = d.canonicalize().map_err(|e| ServeError::Dir {
                dir: shown.clone(),
                message: format!("cannot be served: {e}"),
            })?;
            if !real.is_dir() {
                return Err(ServeError::Dir {
                    dir: shown,
                    message: "is not a folder".into(),
                });
            }
            roots.push(Root { shown, real });
        }
        Ok(Roots { roots })
    }

    /// The folders as given (`runs/`).
    pub(crate) fn shown(&self) -> Vec<String> {
        self.roots.iter().map(|r| r.shown.clone()).collect()
    }

    /// Every run and sweep folder now, sweeps' trials after their sweep.
    pub(crate) fn scan(&self) -> Vec<Found> {
        let mut out = Vec::new();
        for (i, r) in self.roots.iter().enumerate() {
            walk(&r.real, &r.real, i, DEPTH, None, &mut out);
        }
        out
    }

    /// The folder of run or sweep `id`, if it is one now. The id's path is taken only
    /// as plain names (no `..`, no root, no `.`) and only if the folder's real path
    /// is exactly where those names lead, so a link on the way is refused.
    pub(crate) fn resolve(&self, id: &str) -> Option<Found> {
        let (root, rel) = id.split_once('/').unwrap_or((id, ""));
        let root = self.roots.get(root.parse::<usize>().ok()?)?;
        let rel = Path::new(rel);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let dir = root.real.join(rel);
        if dir.canonicalize().ok()? != dir {
            return None;
        }
        let kind = kind_of(&dir)?;
        let sweep = rel
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .find(|a| root.real.join(a).join("sweep.json").is_file())
            .map(|a| format!("{}/{}", id.split('/').next().unwrap_or("0"), a.display()));
        Some(Found {
            id: id.to_string(),
            kind,
            dir,
            sweep,
        })
    }
}

/// The kind of folder `dir` is, if it is one: symlinks are not taken.
fn kind_of(dir: &Path) -> Option<Kind> {
    let plain = |name: &str| {
        std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_file())
    };
    if plain("sweep.json") {
        Some(Kind::Sweep)
    } else if plain("config.json") {
        Some(Kind::Run)
    } else {
        None
    }
}

/// Looks for runs and sweeps below `dir`.
fn walk(
    root: &Path,
    dir: &Path,
    index: usize,
    depth: usize,
    sweep: Option<&str>,
    out: &mut Vec<Found>,
) {
    if out.len() >= MAX_FOUND {
        return;
    }
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let id = if rel.as_os_str().is_empty() {
        index.to_string()
    } else {
        format!("{index}/{}", rel.display())
    };
    let kind = kind_of(dir);
    if let Some(kind) = kind {
        out.push(Found {
            id: id.clone(),
            kind,
            dir: dir.to_path_buf(),
            sweep: sweep.map(str::to_string),
        });
        if kind == Kind::Run {
            return;
        }
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "checkpoints" && name != "slurm"
        })
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    let inner = if kind == Some(Kind::Sweep) {
        Some(id.as_str())
    } else {
        sweep
    };
    for d in subdirs {
        walk(root, &d, index, depth - 1, inner, out);
    }
}

/// `name` inside run folder `dir`: its real path if that lies inside the folder.
pub(crate) fn inside(dir: &Path, name: &str) -> Option<PathBuf> {
    rudder_policy::contain::real_inside(dir, &dir.join(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_sweeps_are_found_and_ids_lead_nowhere_else() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("runs");
        for run in ["a", "s/t0", "s/t1", "deep/x/y"] {
            std::fs::create_dir_all(root.join(run)).unwrap();
            std::fs::write(root.join(run).join("config.json"), "{}").unwrap();
        }
        std::fs::write(root.join("s/sweep.json"), "{}").unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("config.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap();
        let ids: Vec<(String, Option<String>)> =
            roots.scan().into_iter().map(|f| (f.id, f.sweep)).collect();
        assert_eq!(
            ids,
            [
                ("0/a".to_string(), None),
                ("0/deep/x/y".to_string(), None),
                ("0/s".to_string(), None),
                ("0/s/t0".to_string(), Some("0/s".to_string())),
                ("0/s/t1".to_string(), Some("0/s".to_string())),
            ]
        );
        assert_eq!(
            roots.resolve("0/s/t1").unwrap().sweep.as_deref(),
            Some("0/s")
        );
        for bad in [
            "0/../outside",
            "0/link",
            "0/./a",
            "1/a",
            "0//a",
            "x/a",
            "0/a/../a",
        ] {
            assert!(roots.resolve(bad).is_none(), "{bad}");
        }
        std::os::unix::fs::symlink(outside.join("config.json"), root.join("a/events.jsonl"))
            .unwrap();
        assert!(inside(&root.join("a"), "events.jsonl").is_none());
        assert!(inside(&root.join("a"), "config.json").is_some());
    }
}
