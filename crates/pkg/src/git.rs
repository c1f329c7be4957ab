//! Git through gitoxide (`gix`, the implementation Cargo uses): a bare mirror per
//! repository URL in the cache, fetched whole into a fresh folder and swapped in (an
//! interrupted fetch leaves the old mirror), references resolved there (a tag, a
//! branch's head, a commit, the newest `vX.Y.Z` tag matching a semver requirement,
//! the remote's `HEAD`), and a commit's tree written out blob by blob: no checkout,
//! so no hook, filter, attribute or submodule runs or is followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rudder_policy::checksum::{MAX_BYTES, MAX_FILES, bad_component, link_stays_inside};

use crate::PkgError;

/// The most bytes a fetched repository (its whole history) may take in the cache.
pub const MAX_FETCH: u64 = 256 << 20;
/// The deepest a plugin's folders may nest.
const MAX_DEPTH: usize = 32;
/// Where the remote's `HEAD` is kept in a mirror.
const REMOTE_HEAD: &str = "refs/rudder/HEAD";

/// Whether `source` names a git repository (`SCHEME://...` or scp-like
/// `user@host:path`) rather than a local folder.
pub fn is_url(source: &str) -> bool {
    source.contains("://")
        || source
            .split_once(':')
            .is_some_and(|(left, _)| left.contains('@') && !left.contains('/'))
}

/// Why `url` is not a repository URL rudder fetches from: only `https://`,
/// `http://`, `ssh://`, `git://`, `file://` and scp-like `user@host:path`.
pub fn url_problem(url: &str) -> Option<String> {
    if url.chars().any(char::is_control) {
        return Some(format!("git URL {url:?} has a control character"));
    }
    let scheme = match url.split_once("://") {
        Some((s, _)) => s,
        None if is_url(url) => "ssh",
        None => return Some(format!("{url:?} is not a git URL")),
    };
    if !matches!(scheme, "https" | "http" | "ssh" | "git" | "file") {
        return Some(format!(
            "git URL {url:?}: scheme {scheme} is not one of https, http, ssh, git, file"
        ));
    }
    if scheme.starts_with("http") && !cfg!(feature = "https") {
        return Some(format!(
            "git URL {url:?}: this rudder was built without the https feature (cargo build --release -p rudder-cli --features https, with libssl-dev)"
        ));
    }
    if let Err(e) = gix::url::parse(url.into()) {
        return Some(format!("git URL {url:?}: {e}"));
    }
    None
}

/// A manifest fault of a repository's commit, named by the repository (not by the
/// temporary folder it was checked in): `git URL at COMMIT: plugin.json:3:9: ...`.
pub(crate) fn in_repository(
    url: &str,
    commit: &str,
    e: &rudder_policy::plugin::PluginError,
) -> PkgError {
    let at =
        e.at.rsplit_once("plugin.json")
            .map_or("", |(_, place)| place);
    PkgError::input(format!(
        "git {url} at {}: plugin.json{at}: {}",
        &commit[..commit.len().min(12)],
        e.message
    ))
}

/// The mirror of `url` in `cache`: one folder per URL, named by its hash.
pub fn mirror_dir(cache: &Path, url: &str) -> PathBuf {
    let h = rudder_policy::checksum::sha256_hex(url.as_bytes());
    cache.join("git").join(&h[..16])
}

fn git_error(url: &str, e: impl std::fmt::Display) -> PkgError {
    PkgError::input(format!("git {url}: {e}"))
}

/// The total size of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Fetches every branch and tag of `url` and its `HEAD` into a fresh bare repository
/// at `tmp` (which must not exist), stopping past [`MAX_FETCH`] bytes.
fn fetch_into(url: &str, tmp: &Path) -> Result<(), PkgError> {
    gix::init_bare(tmp).map_err(|e| git_error(url, e))?;
    let repo =
        gix::open_opts(tmp, gix::open::Options::isolated()).map_err(|e| git_error(url, e))?;
    let remote = repo
        .remote_at(url)
        .map_err(|e| git_error(url, e))?
        .with_refspecs(
            [
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                &format!("+HEAD:{REMOTE_HEAD}"),
            ],
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| git_error(url, e))?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let interrupt = Arc::new(AtomicBool::new(false));
    let too_large = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (interrupt, too_large, done, dir) = (
            interrupt.clone(),
            too_large.clone(),
            done.clone(),
            tmp.to_path_buf(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if size_of(&dir) > MAX_FETCH {
                    too_large.store(true, Ordering::Relaxed);
                    interrupt.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let result = (|| {
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| git_error(url, e))?;
        connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| git_error(url, e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| git_error(url, e))?;
        Ok(())
    })();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if too_large.load(Ordering::Relaxed) || size_of(tmp) > MAX_FETCH {
        return Err(PkgError::input(format!(
            "git {url}: the repository is larger than the {} MiB rudder fetches",
            MAX_FETCH >> 20
        )));
    }
    result
}

/// Brings the mirror of `url` up to date: a whole fetch into a new folder beside
/// it, then a swap (the caller holds the cache's lock).
pub fn fetch(cache: &Path, url: &str) -> Result<PathBuf, PkgError> {
    // Every fetch, whoever named the URL (a manifest, a dependency, a lock).
    if let Some(why) = url_problem(url) {
        return Err(PkgError::input(why));
    }
    let dir = mirror_dir(cache, url);
    let parent = dir.parent().expect("a mirror has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| PkgError::io(format!("{}", parent.display()), e))?;
    let tmp = crate::store::temp_name(parent, "fetch");
    let fetched = fetch_into(url, &tmp);
    if let Err(e) = fetched {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = crate::store::temp_name(parent, "old");
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(|e| PkgError::io(dir.display(), e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| PkgError::io(dir.display(), e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(dir)
}

/// An opened mirror.
pub struct Mirror {
    repo: gix::Repository,
    url: String,
}

/// What a requirement resolved to in a mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// 40 hex digits.
    pub commit: String,
    /// What the lock's source records after `?` (`tag=v1.1.0`, `branch=main`,
    /// `rev=abc`), `None` for the default branch.
    pub reference: Option<String>,
}

/// A tag's version: `vMAJOR.MINOR.PATCH` or without the `v`.
pub fn tag_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

impl Mirror {
    /// Opens the mirror of `url` in `cache`, if it has been fetched.
    pub fn open(cache: &Path, url: &str) -> Option<Mirror> {
        let dir = mirror_dir(cache, url);
        let repo = gix::open_opts(&dir, gix::open::Options::isolated()).ok()?;
        Some(Mirror {
            repo,
            url: url.to_string(),
        })
    }

    fn peel(&self, name: &str) -> Option<String> {
        let mut r = self.repo.find_reference(name).ok()?;
        let id = r.peel_to_id().ok()?;
        let commit = self.repo.find_object(id).ok()?.peel_to_commit().ok()?;
        Some(commit.id.to_string())
    }

    /// Every tag that reads as a version, with its commit.
    pub fn versions(&self) -> Vec<(semver::Version, String, String)> {
        let Ok(platform) = self.repo.references() else {
            return Vec::new();
        };
        let Ok(tags) = platform.tags() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in tags.flatten() {
            let full = r.name().as_bstr().to_string();
            let tag = full.trim_start_matches("refs/tags/").to_string();
            if let (Some(v), Some(c)) = (tag_version(&tag), self.peel(&full)) {
                out.push((v, tag, c));
            }
        }
        out.sort();
        out
    }

    /// The commit `req` names: its tag, its branch's head, its commit, the newest
    /// version tag matching its `version`, or the remote's `HEAD`.
    pub fn resolve(&self, req: &rudder_policy::plugin::Requirement) -> Result<Resolved, PkgError> {
        let url = &self.url;
        for (kind, refs, name) in [("tag", "tags", &req.tag), ("branch", "heads", &req.branch)] {
            if let Some(n) = name {
                let commit = self
                    .peel(&format!("refs/{refs}/{n}"))
                    .ok_or_else(|| PkgError::input(format!("git {url}: no {kind} {n}")))?;
                return Ok(Resolved {
                    commit,
                    reference: Some(format!("{kind}={n}")),
                });
            }
        }
        if let Some(r) = &req.rev {
            // Its form (4 to 40 hex digits) is `Requirement::problem`'s, checked
            // where it is written.
            let commit = self
                .repo
                .rev_parse_single(r.as_str())
                .ok()
                .and_then(|id| id.object().ok()?.peel_to_commit().ok())
                .map(|c| c.id.to_string())
                .ok_or_else(|| PkgError::input(format!("git {url}: no commit {r}")))?;
            return Ok(Resolved {
                commit,
                reference: Some(format!("rev={r}")),
            });
        }
        if let Some(v) = &req.version {
            let want = semver::VersionReq::parse(v)
                .map_err(|e| PkgError::input(format!("version {v:?}: {e}")))?;
            return self.newest(&[(String::new(), want)]).ok_or_else(|| {
                let have: Vec<String> = self.versions().into_iter().map(|(_, t, _)| t).collect();
                PkgError::input(format!(
                    "git {url}: no tag matches version {v} (tags: {})",
                    if have.is_empty() {
                        "none".into()
                    } else {
                        have.join(", ")
                    }
                ))
            });
        }
        let commit = self
            .peel(REMOTE_HEAD)
            .ok_or_else(|| PkgError::input(format!("git {url}: the repository has no HEAD")))?;
        Ok(Resolved {
            commit,
            reference: None,
        })
    }

    /// The newest version tag matching every requirement.
    pub fn newest(&self, reqs: &[(String, semver::VersionReq)]) -> Option<Resolved> {
        self.versions()
            .into_iter()
            .rev()
            .find(|(v, _, _)| reqs.iter().all(|(_, r)| r.matches(v)))
            .map(|(_, tag, commit)| Resolved {
                commit,
                reference: Some(format!("tag={tag}")),
            })
    }

    /// Whether the mirror has `commit`.
    pub fn has(&self, commit: &str) -> bool {
        gix::ObjectId::from_hex(commit.as_bytes())
            .ok()
            .and_then(|id| self.repo.find_commit(id).ok())
            .is_some()
    }

    /// Writes `commit`'s tree into `dest` (which must not exist): regular and
    /// executable files as files, symlinks whose target stays inside as symlinks,
    /// submodules skipped; bounded to [`MAX_FILES`] entries and [`MAX_BYTES`]
    /// bytes; a name with a separator, a control character, `.`, `..` or `.git`, or
    /// a duplicate, refused by name.
    pub fn extract(&self, commit: &str, dest: &Path) -> Result<Vec<String>, PkgError> {
        let url = &self.url;
        let id = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| PkgError::input(format!("commit {commit}: {e}")))?;
        let tree = self
            .repo
            .find_commit(id)
            .map_err(|e| git_error(url, e))?
            .tree_id()
            .map_err(|e| git_error(url, e))?
            .detach();
        let mut walk = Walk {
            repo: &self.repo,
            url,
            files: 0,
            bytes: 0,
            skipped: Vec::new(),
        };
        std::fs::create_dir(dest).map_err(|e| PkgError::io(dest.display(), e))?;
        walk.tree(tree, "", dest, 0)?;
        Ok(walk.skipped)
    }
}

struct Walk<'a> {
    repo: &'a gix::Repository,
    url: &'a str,
    files: usize,
    bytes: u64,
    skipped: Vec<String>,
}

impl Walk<'_> {
    /// A file or folder of the tree that could not be written: a name met twice,
    /// or what the system says (a name too long).
    fn write_error(&self, path: &str, e: &std::io::Error) -> PkgError {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            self.refuse(path, "is a duplicate entry")
        } else {
            self.refuse(path, format!("cannot be written: {e}"))
        }
    }

    fn refuse(&self, path: &str, why: impl std::fmt::Display) -> PkgError {
        PkgError::input(format!("git {}: {path:?} {why}", self.url))
    }

    fn tree(
        &mut self,
        id: gix::ObjectId,
        rel: &str,
        dir: &Path,
        depth: usize,
    ) -> Result<(), PkgError> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(rel, format!("nests more than {MAX_DEPTH} folders")));
        }
        let tree = self
            .repo
            .find_tree(id)
            .map_err(|e| git_error(self.url, e))?;
        let mut entries = Vec::new();
        for e in tree.iter() {
            let e = e.map_err(|e| git_error(self.url, e))?;
            entries.push((
                e.inner.filename.to_vec(),
                e.inner.mode,
                e.inner.oid.to_owned(),
            ));
        }
        drop(tree);
        for (name, mode, oid) in entries {
            let name = String::from_utf8(name).map_err(|e| {
                let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let at = if rel.is_empty() {
                    shown
                } else {
                    format!("{rel}/{shown}")
                };
                self.refuse(&at, "has a file name that is not UTF-8")
            })?;
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if let Some(why) = bad_component(&name) {
                return Err(self.refuse(&path, why));
            }
            if name.eq_ignore_ascii_case(".git") {
                return Err(self.refuse(&path, "is a .git entry"));
            }
            self.files += 1;
            if self.files > MAX_FILES {
                return Err(PkgError::input(format!(
                    "git {}: more than {MAX_FILES} files",
                    self.url
                )));
            }
            let target = dir.join(&name);
            if mode.is_tree() {
                std::fs::create_dir(&target).map_err(|e| self.write_error(&path, &e))?;
                self.tree(oid, &path, &target, depth + 1)?;
            } else if mode.is_commit() {
                // A submodule: not followed.
                self.skipped.push(path);
            } else {
                self.blob(oid, mode, &path, &target)?;
            }
        }
        Ok(())
    }

    /// Writes a file or a symlink (whose target must stay inside) at `target`.
    fn blob(
        &mut self,
        oid: gix::ObjectId,
        mode: gix::object::tree::EntryMode,
        path: &str,
        target: &Path,
    ) -> Result<(), PkgError> {
        let blob = self
            .repo
            .find_blob(oid)
            .map_err(|e| git_error(self.url, e))?;
        self.bytes += blob.data.len() as u64;
        if self.bytes > MAX_BYTES {
            return Err(PkgError::input(format!(
                "git {}: more than {} MiB of files",
                self.url,
                MAX_BYTES >> 20
            )));
        }
        if mode.is_link() {
            let to = std::str::from_utf8(&blob.data)
                .map_err(|_| self.refuse(path, "is a symlink whose target is not UTF-8"))?;
            if !link_stays_inside(path, to) {
                return Err(
                    self.refuse(path, format!("is a symlink to {to:?}, outside the plugin"))
                );
            }
            std::os::unix::fs::symlink(to, target).map_err(|e| self.write_error(path, &e))
        } else {
            crate::store::write_new(target, &blob.data, mode.is_executable())
                .map_err(|e| self.write_error(path, &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders_are_told_apart_and_odd_schemes_refused() {
        for url in [
            "https://h/x.git",
            "ssh://git@h/x.git",
            "git://h/x",
            "file:///srv/x.git",
            "git@host:team/x.git",
        ] {
            assert!(is_url(url), "{url}");
        }
        for path in ["../mine", "plugins/goyal", "/abs/dir", "a:b/c"] {
            assert!(!is_url(path), "{path}");
        }
        assert!(url_problem("file:///srv/x.git").is_none());
        assert!(url_problem("git@host:team/x.git").is_none());
        assert!(url_problem("ftp://h/x").unwrap().contains("scheme ftp"));
        assert!(url_problem("ext::sh -c x").is_some());
        assert!(
            url_problem("git://h/x\n")
                .unwrap()
                .contains("control character")
        );
    }

    #[test]
    fn tags_read_as_versions_with_or_without_v() {
        assert_eq!(tag_version("v1.2.3"), Some(semver::Version::new(1, 2, 3)));
        assert_eq!(tag_version("1.2.3"), Some(semver::Version::new(1, 2, 3)));
        assert_eq!(tag_version("release-1"), None);
        assert_eq!(tag_version("v1.2"), None);
        // Cargo's rules: ^1.0 takes 1.x, never 2.0 nor a pre-release.
        let req = semver::VersionReq::parse("^1.0").unwrap();
        let ok: Vec<bool> = ["v1.0.0", "v1.9.3", "v2.0.0", "v1.1.0-rc.1"]
            .iter()
            .map(|t| req.matches(&tag_version(t).unwrap()))
            .collect();
        assert_eq!(ok, [true, true, false, false]);
    }

    #[test]
    fn a_mirror_is_one_folder_per_url() {
        let cache = Path::new("/c");
        assert_eq!(
            mirror_dir(cache, "file:///a"),
            mirror_dir(cache, "file:///a")
        );
        assert_ne!(
            mirror_dir(cache, "file:///a"),
            mirror_dir(cache, "file:///b")
        );
        assert!(mirror_dir(cache, "x").starts_with("/c/git"));
    }
}
