//! A project's locked plugins, as every policy load sees them: `rudder.toml` found
//! from the working folder upwards (as Cargo finds `Cargo.toml`), `rudder.lock` beside
//! it, the install cache (`$RUDDER_HOME`, else the platform's cache folder), and the
//! checksum over a plugin's files that every use of a git plugin checks. Fetching,
//! resolving and writing the lock are `rudder-pkg`'s; this module only reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::checksum::{Entry, Kind, MAX_BYTES, MAX_FILES, checksum, listing};

/// The project manifest's file name.
pub const MANIFEST: &str = "rudder.toml";
/// The lock file's name.
pub const LOCK: &str = "rudder.lock";
/// The lock format this rudder writes and reads.
pub const LOCK_VERSION: u32 = 1;
/// The most bytes `rudder.toml` or `rudder.lock` may have.
pub const MAX_TOML: u64 = 1 << 20;

/// A project, lock or installed plugin that cannot be used: `at` names the file or
/// the plugin, `message` what is wrong and how to repair it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ProjectError {
    /// The file (with a line and column for a TOML fault), or `plugin NAME`.
    pub at: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl ProjectError {
    /// An error at `at`.
    pub fn new(at: impl std::fmt::Display, message: impl std::fmt::Display) -> ProjectError {
        ProjectError {
            at: at.to_string(),
            message: crate::text::one_line(&message.to_string()),
        }
    }
}

/// `rudder.lock`: what was resolved, one `[[plugin]]` table per plugin, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The lock format ([`LOCK_VERSION`]).
    pub version: u32,
    /// Every plugin of the project and of its plugins' dependencies, by name.
    #[serde(default, rename = "plugin", skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Locked>,
}

/// One plugin as the lock records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// The name `--policy NAME/POLICY` uses.
    pub name: String,
    /// Its `plugin.json` version.
    pub version: String,
    /// `git+URL?tag=v1.0.0#COMMIT` (or `?branch=B`, `?rev=R`) or `path+PATH`.
    pub source: String,
    /// `sha256:` and 64 hex digits over its canonical file listing.
    pub checksum: String,
    /// The plugins its scripts may import from, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

/// A lock's `source`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A git repository at a commit; `reference` is what the manifest asked for
    /// (`tag=v1.0.0`, `branch=main`, `rev=abc`), if anything.
    Git {
        /// The repository's URL as given.
        url: String,
        /// `KIND=VALUE`, or `None` for the default branch.
        reference: Option<String>,
        /// 40 hex digits.
        commit: String,
    },
    /// A local folder, relative to the project's root (or absolute).
    Path(String),
}

/// A lock's `source` that is neither `git+URL#COMMIT` nor `path+PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl Source {
    /// Parses a lock's `source` string.
    pub fn parse(s: &str) -> Result<Source, SourceError> {
        Source::parse_text(s).map_err(SourceError)
    }

    fn parse_text(s: &str) -> Result<Source, String> {
        if let Some(p) = s.strip_prefix("path+") {
            return Ok(Source::Path(p.to_string()));
        }
        let Some(rest) = s.strip_prefix("git+") else {
            return Err(format!(
                "source {s:?} is neither git+URL#COMMIT nor path+PATH"
            ));
        };
        let Some((left, commit)) = rest.rsplit_once('#') else {
            return Err(format!("source {s:?} has no #COMMIT"));
        };
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("source {s:?}: the commit must be 40 hex digits"));
        }
        let (url, reference) = match left.split_once('?') {
            Some((u, r)) => (u.to_string(), Some(r.to_string())),
            None => (left.to_string(), None),
        };
        Ok(Source::Git {
            url,
            reference,
            commit: commit.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(p) => write!(f, "path+{p}"),
            Source::Git {
                url,
                reference: Some(r),
                commit,
            } => write!(f, "git+{url}?{r}#{commit}"),
            Source::Git { url, commit, .. } => write!(f, "git+{url}#{commit}"),
        }
    }
}

/// Where a plugin of a run came from, as `config.json`, `run_start` and
/// `policy list` record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The plugin's name in the project.
    pub name: String,
    /// Its `plugin.json` version.
    pub version: String,
    /// The lock's source string.
    pub source: String,
    /// The git commit, for a git plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The checksum of its files as they are (for a git plugin, the lock's, which
    /// they were checked against).
    pub checksum: String,
}

/// A locked plugin as installed: its name, its folder, the plugins it may import
/// from, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The name `--policy NAME/POLICY` uses.
    pub name: String,
    /// Its folder: in the cache for a git plugin, the folder itself for a path one.
    pub home: PathBuf,
    /// Its declared dependencies, by name.
    pub dependencies: Vec<String>,
    /// Its provenance.
    pub origin: Origin,
}

/// The folder holding `rudder.toml`: `from` or the nearest folder above it.
pub fn find_root(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .find(|d| d.join(MANIFEST).is_file())
        .map(Path::to_path_buf)
}

/// The install cache: `$RUDDER_HOME`, else the platform's cache folder for rudder
/// (`~/.cache/rudder` on Linux), else `.rudder` in the working folder.
pub fn cache_home() -> PathBuf {
    if let Some(h) = std::env::var_os("RUDDER_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    directories::ProjectDirs::from("", "", "rudder")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".rudder"))
}

/// A git plugin's folder in `cache`: one per (name, commit).
pub fn installed_dir(cache: &Path, name: &str, commit: &str) -> PathBuf {
    cache.join("plugins").join(name).join(commit)
}

/// The per-file listing written beside an installed folder, so that a changed file
/// can be named.
pub fn listing_file(home: &Path) -> PathBuf {
    home.with_extension("files")
}

/// Reads a TOML file of at most [`MAX_TOML`] bytes (a regular file only), as text.
pub fn read_toml_text(path: &Path) -> Result<String, ProjectError> {
    let bytes = rudder_core::input::read(path, MAX_TOML).map_err(|e| match e {
        rudder_core::input::ReadError::TooLarge(n) => ProjectError::new(
            path.display(),
            format!(
                "{n} bytes, more than the {} KiB it may have",
                MAX_TOML >> 10
            ),
        ),
        rudder_core::input::ReadError::Io(e) => ProjectError::new(path.display(), e),
    })?;
    String::from_utf8(bytes).map_err(|_| ProjectError::new(path.display(), "not UTF-8 text"))
}

/// A TOML fault at `path` with its line and column.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ProjectError {
    let (line, column) = e.span().map_or((0, 0), |s| {
        let before = &text[..s.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    });
    ProjectError::new(format!("{}:{line}:{column}", path.display()), e.message())
}

/// `root/rudder.lock`, if there is one.
pub fn read_lock(root: &Path) -> Result<Option<Lock>, ProjectError> {
    let path = root.join(LOCK);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let text = read_toml_text(&path)?;
    let lock: Lock = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
    if lock.version != LOCK_VERSION {
        return Err(ProjectError::new(
            path.display(),
            format!(
                "lock version {} is not supported (this rudder reads {LOCK_VERSION})",
                lock.version
            ),
        ));
    }
    for l in &lock.plugins {
        if let Some(why) = crate::plugin::bad_plugin_name(&l.name) {
            return Err(ProjectError::new(
                path.display(),
                format!("plugin name {why}"),
            ));
        }
        Source::parse(&l.source).map_err(|m| ProjectError::new(path.display(), m))?;
    }
    Ok(Some(lock))
}

/// Where `locked`'s files are: in `cache` for a git plugin, under `root` for a path.
pub fn home_of(locked: &Locked, root: &Path, cache: &Path) -> PathBuf {
    match Source::parse(&locked.source) {
        Ok(Source::Git { commit, .. }) => installed_dir(cache, &locked.name, &commit),
        Ok(Source::Path(p)) => root.join(p),
        Err(_) => root.join(&locked.name),
    }
}

/// The state of an installed plugin against its lock entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its files hash to the lock's checksum (or, for a path plugin, it is there).
    Ok(String),
    /// Its folder is not there.
    Missing,
    /// Its files differ: the checksum they have, and each file that differs with
    /// what it has and what it had (`None` where it is new or gone).
    Modified {
        /// The checksum the files have now.
        now: String,
        /// (file, hash now, hash locked).
        files: Vec<(String, Option<String>, Option<String>)>,
    },
}

/// Checks `locked`'s installed files: a git plugin against the lock's checksum, a
/// path plugin only for being there (its current checksum is returned).
pub fn state(locked: &Locked, home: &Path) -> Result<State, ProjectError> {
    if !home.join("plugin.json").is_file() {
        return Ok(State::Missing);
    }
    let entries =
        listing(home).map_err(|m| ProjectError::new(format!("plugin {}", locked.name), m))?;
    let now = checksum(&entries);
    let is_git = matches!(Source::parse(&locked.source), Ok(Source::Git { .. }));
    if !is_git || now == locked.checksum {
        return Ok(State::Ok(now));
    }
    let before = crate::checksum::read_listing(&listing_file(home))
        .filter(|l| checksum(l) == locked.checksum)
        .unwrap_or_default();
    Ok(State::Modified {
        now,
        files: crate::checksum::differences(&before, &entries),
    })
}

/// The message for a plugin whose files do not match the lock.
pub fn modified_message(
    locked: &Locked,
    now: &str,
    files: &[(String, Option<String>, Option<String>)],
) -> String {
    let named: Vec<String> = files
        .iter()
        .take(5)
        .map(|(f, n, b)| {
            format!(
                "{f} is {} where the lock has {}",
                n.as_deref().unwrap_or("gone"),
                b.as_deref().unwrap_or("no such file")
            )
        })
        .collect();
    let more = files.len().saturating_sub(5);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "installed files differ from rudder.lock ({}{more}; checksum {now}, locked {}); run rudder plugin install to repair",
        if named.is_empty() {
            "files changed".to_string()
        } else {
            named.join(", ")
        },
        locked.checksum
    )
}

/// Every plugin `lock` records, installed and checked: a git plugin whose files do
/// not hash to its checksum, or one not installed, is an error naming the plugin,
/// the file, both hashes and the repair.
pub fn installed(root: &Path, lock: &Lock, cache: &Path) -> Result<Vec<Installed>, ProjectError> {
    let mut out = Vec::new();
    for l in &lock.plugins {
        let home = home_of(l, root, cache);
        let at = format!("plugin {}", l.name);
        let checksum = match state(l, &home)? {
            State::Ok(now) => now,
            State::Missing => {
                return Err(ProjectError::new(
                    at,
                    format!(
                        "locked in {} but not installed at {}; run rudder plugin install",
                        root.join(LOCK).display(),
                        home.display()
                    ),
                ));
            }
            State::Modified { now, files } => {
                return Err(ProjectError::new(at, modified_message(l, &now, &files)));
            }
        };
        let commit = match Source::parse(&l.source) {
            Ok(Source::Git { commit, .. }) => Some(commit),
            _ => None,
        };
        out.push(Installed {
            name: l.name.clone(),
            home,
            dependencies: l.dependencies.clone(),
            origin: Origin {
                name: l.name.clone(),
                version: l.version.clone(),
                source: l.source.clone(),
                commit,
                checksum,
            },
        });
    }
    Ok(out)
}

/// The locked plugins of the project around the working folder, checked; none
/// when there is no `rudder.toml` or no `rudder.lock`.
pub fn discover() -> Result<Vec<Installed>, ProjectError> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(Vec::new());
    };
    let Some(root) = find_root(&cwd) else {
        return Ok(Vec::new());
    };
    let lock = read_lock(&root)?;
    // A plugin rudder.toml declares but the lock does not have: install first.
    let declared = declared_plugins(&root)?;
    let unlocked: Vec<&String> = declared
        .iter()
        .filter(|n| {
            lock.as_ref()
                .is_none_or(|l| !l.plugins.iter().any(|p| &p.name == *n))
        })
        .collect();
    if !unlocked.is_empty() {
        let names: Vec<&str> = unlocked.iter().map(|s| s.as_str()).collect();
        return Err(ProjectError::new(
            root.join(MANIFEST).display(),
            format!(
                "plugin(s) {} not in {LOCK}; run rudder plugin install",
                names.join(", ")
            ),
        ));
    }
    match lock {
        Some(lock) => installed(&root, &lock, &cache_home()),
        None => Ok(Vec::new()),
    }
}

/// The names under `[plugins]` in `root/rudder.toml` (its other checks are
/// `rudder-pkg`'s, when it resolves).
fn declared_plugins(root: &Path) -> Result<Vec<String>, ProjectError> {
    let path = root.join(MANIFEST);
    let text = read_toml_text(&path)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
    Ok(match table.get("plugins") {
        Some(toml::Value::Table(t)) => t.keys().cloned().collect(),
        Some(_) => {
            return Err(ProjectError::new(path.display(), "plugins must be a table"));
        }
        None => Vec::new(),
    })
}

/// A file a policy was built from, with the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    /// The file as found (`<embedded>/NAME.rhai` for the standard library).
    pub path: String,
    /// `sha256:` and 64 hex digits.
    pub sha256: String,
}

/// What steered a run, per policy: its name, every file it was built from (its
/// script, each imported module, its plugin's manifest) with their hashes, and for a
/// locked plugin's policy the plugin's name, version, source and commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The policy's name.
    pub policy: String,
    /// Its files, its script first.
    pub files: Vec<FileHash>,
    /// The locked plugin it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Origin>,
    /// Its parameters as the run resolved them (`fn params()`'s defaults with the
    /// `--param`s given), what the report's header and TensorBoard's hyperparameters
    /// show.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}
