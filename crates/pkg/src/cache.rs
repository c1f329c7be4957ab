//! A command's hold on the install cache: the cache's lock taken for the whole
//! command, each repository fetched at most once, and a locked commit installed
//! from the mirror (fetched only when the mirror lacks it).

use std::collections::BTreeSet;
use std::path::PathBuf;

use rudder_policy::{checksum, plugin};

use crate::git::{self, Mirror};
use crate::{PkgError, store};

/// A command's view of the cache: its lock held, each URL fetched at most once.
pub struct Ctx {
    /// The cache folder.
    pub cache: PathBuf,
    /// No network: mirrors and installed folders only.
    pub offline: bool,
    fetched: BTreeSet<String>,
    _lock: store::CacheLock,
}

impl Ctx {
    /// Takes the cache's lock.
    pub fn new(cache: PathBuf, offline: bool) -> Result<Ctx, PkgError> {
        let lock = store::lock(&cache)?;
        Ok(Ctx {
            cache,
            offline,
            fetched: BTreeSet::new(),
            _lock: lock,
        })
    }

    /// The mirror of `url`, fetched first unless this command fetched it already
    /// (or runs offline).
    pub fn fresh(&mut self, url: &str) -> Result<Mirror, PkgError> {
        if !self.offline && !self.fetched.contains(url) {
            git::fetch(&self.cache, url)?;
            self.fetched.insert(url.to_string());
        }
        self.cached(url)
    }

    /// The mirror of `url` as the cache has it.
    pub fn cached(&self, url: &str) -> Result<Mirror, PkgError> {
        Mirror::open(&self.cache, url).ok_or_else(|| {
            PkgError::input(format!(
                "git {url}: not in the cache, and --offline fetches nothing"
            ))
        })
    }

    /// A mirror of `url` that has `commit`: the cached one, else fetched.
    pub fn with_commit(&mut self, url: &str, commit: &str) -> Result<Mirror, PkgError> {
        if let Some(m) = Mirror::open(&self.cache, url)
            && m.has(commit)
        {
            return Ok(m);
        }
        let m = self.fresh(url)?;
        if m.has(commit) {
            Ok(m)
        } else {
            Err(PkgError::input(format!(
                "git {url}: no commit {commit} (was the history rewritten?)"
            )))
        }
    }

    /// Installs `commit` of `url` as `name` and reads its manifest.
    pub fn install_git(
        &mut self,
        name: &str,
        url: &str,
        commit: &str,
    ) -> Result<(PathBuf, String, Vec<String>), PkgError> {
        let home = rudder_policy::project::installed_dir(&self.cache, name, commit);
        let mirror = if home.join("plugin.json").is_file() {
            None
        } else {
            Some(self.with_commit(url, commit)?)
        };
        let done = match mirror {
            Some(m) => {
                let done = store::install(
                    &self.cache,
                    name,
                    commit,
                    |dir| m.extract(commit, dir),
                    |dir| {
                        plugin::read(dir)
                            .map(|_| ())
                            .map_err(|e| git::in_repository(url, commit, &e))
                    },
                );
                if done.is_err() {
                    // A repository refused (past its bounds, a bad tree) is not kept.
                    store::remove_tree(&git::mirror_dir(&self.cache, url));
                    self.fetched.remove(url);
                }
                done?
            }
            None => {
                let entries = checksum::listing(&home)
                    .map_err(|m| PkgError::input(format!("plugin {name}: {m}")))?;
                store::Installed {
                    home,
                    checksum: checksum::checksum(&entries),
                    skipped: Vec::new(),
                }
            }
        };
        Ok((done.home, done.checksum, done.skipped))
    }
}
