//! Resolution: from `rudder.toml`'s entries and the plugins' declared dependencies
//! to one commit (or folder) per plugin name for the whole project, preferring what
//! `rudder.lock` already records (as Cargo does: nothing moves until `update`), and
//! installing each choice into the cache to read its manifest and dependencies. Two
//! requirements no single version meets are an error naming both requirers; a
//! dependency cycle is an error naming the cycle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use rudder_policy::checksum;
use rudder_policy::plugin::{self, Manifest, Requirement};
use rudder_policy::project::{Lock, Locked, Source};

pub use crate::cache::Ctx;
use crate::git::{self, Resolved};
use crate::{PkgError, store};

/// Who asked for a plugin, and how.
#[derive(Debug, Clone)]
pub struct Want {
    /// `rudder.toml` or `plugin NAME`.
    pub requirer: String,
    /// The requirement as written.
    pub req: Requirement,
    /// The folder a relative `path` is relative to.
    pub base: PathBuf,
}

impl Want {
    fn describe(&self) -> String {
        let what = if let Some(p) = &self.req.path {
            format!("path {p}")
        } else {
            let url = self.req.git.as_deref().unwrap_or("");
            match (
                &self.req.tag,
                &self.req.branch,
                &self.req.rev,
                &self.req.version,
            ) {
                (Some(t), ..) => format!("{url} tag {t}"),
                (_, Some(b), ..) => format!("{url} branch {b}"),
                (_, _, Some(r), _) => format!("{url} rev {r}"),
                (_, _, _, Some(v)) => format!("{url} version {v}"),
                _ => format!("{url} (its default branch)"),
            }
        };
        format!("{} requires {what}", self.requirer)
    }
}

/// One plugin as resolved and installed.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its name in the project.
    pub name: String,
    /// Its folder.
    pub home: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The lock's source string.
    pub source: String,
    /// Its checksum.
    pub checksum: String,
    /// Submodules its repository has, not followed.
    pub skipped: Vec<String>,
}

impl Chosen {
    /// Its lock entry.
    pub fn locked(&self) -> Locked {
        Locked {
            name: self.name.clone(),
            version: self.manifest.version.clone(),
            source: self.source.clone(),
            checksum: self.checksum.clone(),
            dependencies: self.manifest.dependencies.keys().cloned().collect(),
        }
    }
}

/// The name a source's `plugin.json` gives (what `add` names its entry): read from
/// the folder, or from the resolved commit written out in a temporary folder.
pub fn manifest_name(ctx: &mut Ctx, req: &Requirement, root: &Path) -> Result<String, PkgError> {
    if let Some(p) = &req.path {
        let m = plugin::read(&root.join(p)).map_err(|e| PkgError::input(e.to_string()))?;
        return Ok(m.name);
    }
    let url = req.git.clone().unwrap_or_default();
    let mirror = ctx.fresh(&url)?;
    let resolved = mirror.resolve(req)?;
    let tmp_dir = ctx.cache.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| PkgError::io(tmp_dir.display(), e))?;
    let tmp = tmp_dir.join(format!("probe-{}", std::process::id()));
    store::remove_tree(&tmp);
    let read = mirror.extract(&resolved.commit, &tmp).and_then(|_| {
        plugin::read(&tmp).map_err(|e| git::in_repository(&url, &resolved.commit, &e))
    });
    store::remove_tree(&tmp);
    Ok(read?.name)
}

/// The lock's source string for a git plugin.
pub fn git_source(url: &str, r: &Resolved) -> String {
    Source::Git {
        url: url.to_string(),
        reference: r.reference.clone(),
        commit: r.commit.clone(),
    }
    .to_string()
}

/// Whether a locked source still meets `want` (same repository or folder, and a
/// reference the requirement accepts).
pub fn lock_meets(locked: &Locked, want: &Want, root: &Path) -> bool {
    match Source::parse(&locked.source) {
        Ok(Source::Path(p)) => want
            .req
            .path
            .as_ref()
            .is_some_and(|wp| same_folder(&want.base.join(wp), &root.join(&p))),
        Ok(Source::Git {
            url,
            reference,
            commit,
        }) => {
            if want.req.git.as_deref() != Some(url.as_str()) {
                return false;
            }
            let r = &want.req;
            match (&r.tag, &r.branch, &r.rev, &r.version) {
                (Some(t), ..) => reference.as_deref() == Some(&format!("tag={t}")),
                (_, Some(b), ..) => reference.as_deref() == Some(&format!("branch={b}")),
                (_, _, Some(rev), _) => commit.starts_with(&rev.to_ascii_lowercase()),
                (_, _, _, Some(v)) => {
                    let tag = reference.as_deref().and_then(|x| x.strip_prefix("tag="));
                    match (semver::VersionReq::parse(v), tag.and_then(git::tag_version)) {
                        (Ok(req), Some(ver)) => req.matches(&ver),
                        _ => false,
                    }
                }
                _ => reference.is_none(),
            }
        }
        Err(_) => false,
    }
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `path` relative to `root` when it is under it.
pub(crate) fn relative_to(path: &Path, root: &Path) -> String {
    let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let r = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    match p.strip_prefix(&r) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

/// Resolves a project.
pub struct Resolver<'a> {
    /// The command's cache.
    pub ctx: &'a mut Ctx,
    /// The project's root.
    pub root: PathBuf,
    /// The lock as it was, if any.
    pub lock: Option<&'a Lock>,
    /// Names whose lock entry is not to be reused (`update`).
    pub refresh: BTreeSet<String>,
    /// Every name re-resolved (`update` with no names).
    pub refresh_all: bool,
}

impl Resolver<'_> {
    fn locked(&self, name: &str) -> Option<&Locked> {
        if self.refresh_all || self.refresh.contains(name) {
            return None;
        }
        self.lock?.plugins.iter().find(|l| l.name == name)
    }

    /// One plugin meeting every one of `wants`.
    fn choose(&mut self, name: &str, wants: &[Want]) -> Result<Chosen, PkgError> {
        let conflict = |why: &str| {
            let said: Vec<String> = wants.iter().map(Want::describe).collect();
            PkgError::input(format!("plugin {name}: {}; {why}", said.join(", ")))
        };
        let first = &wants[0];
        // A lock entry every requirement accepts is kept as it is.
        if let Some(l) = self.locked(name).cloned()
            && wants.iter().all(|w| lock_meets(&l, w, &self.root))
        {
            return self.materialize(name, &l, first);
        }
        if let Some(p) = &first.req.path {
            let dir = first.base.join(p);
            if wants.iter().any(|w| {
                w.req
                    .path
                    .as_ref()
                    .is_none_or(|wp| !same_folder(&w.base.join(wp), &dir))
            }) {
                return Err(conflict("no single source satisfies them all"));
            }
            return self.path_plugin(name, &dir, first);
        }
        let url = first.req.git.clone().unwrap_or_default();
        if wants
            .iter()
            .any(|w| w.req.git.as_deref() != Some(url.as_str()))
        {
            return Err(conflict("no single source satisfies them all"));
        }
        let mirror = self.ctx.fresh(&url)?;
        let mut pinned: Option<Resolved> = None;
        let mut versions = Vec::new();
        for w in wants {
            match &w.req.version {
                Some(v) => versions.push((
                    w.requirer.clone(),
                    semver::VersionReq::parse(v)
                        .map_err(|e| PkgError::input(format!("version {v:?}: {e}")))?,
                )),
                None => {
                    let r = mirror.resolve(&w.req)?;
                    match &pinned {
                        Some(p) if p.commit != r.commit => {
                            return Err(conflict("they name different commits"));
                        }
                        Some(_) => {}
                        None => pinned = Some(r),
                    }
                }
            }
        }
        let resolved = match pinned {
            Some(p) => {
                if !versions.is_empty() {
                    let at = mirror
                        .versions()
                        .into_iter()
                        .filter(|(_, _, c)| *c == p.commit)
                        .any(|(v, _, _)| versions.iter().all(|(_, r)| r.matches(&v)));
                    if !at {
                        return Err(conflict("no single version satisfies them all"));
                    }
                }
                p
            }
            // One requirement alone: say which tags there are.
            None if wants.len() == 1 => mirror.resolve(&first.req)?,
            None => mirror
                .newest(&versions)
                .ok_or_else(|| conflict("no single version satisfies them all"))?,
        };
        let source = git_source(&url, &resolved);
        let (home, checksum, skipped) = self.ctx.install_git(name, &url, &resolved.commit)?;
        self.finish(name, home, source, checksum, skipped, first)
    }

    fn path_plugin(&mut self, name: &str, dir: &Path, want: &Want) -> Result<Chosen, PkgError> {
        // A folder is a plugin only with a manifest: nothing else of it is read first.
        plugin::read(dir).map_err(|e| PkgError::input(format!("plugin {name}: {e}")))?;
        let entries = checksum::listing(dir)
            .map_err(|m| PkgError::input(format!("plugin {name} at {}: {m}", dir.display())))?;
        let source = Source::Path(relative_to(dir, &self.root)).to_string();
        self.finish(
            name,
            dir.to_path_buf(),
            source,
            checksum::checksum(&entries),
            Vec::new(),
            want,
        )
    }

    /// A lock entry brought back: its folder installed (or, for a path, there).
    fn materialize(&mut self, name: &str, l: &Locked, want: &Want) -> Result<Chosen, PkgError> {
        match Source::parse(&l.source).map_err(PkgError::input)? {
            Source::Path(p) => self.path_plugin(name, &self.root.join(p), want),
            Source::Git { url, commit, .. } => {
                let (home, checksum, skipped) = self.ctx.install_git(name, &url, &commit)?;
                self.finish(name, home, l.source.clone(), checksum, skipped, want)
            }
        }
    }

    fn finish(
        &mut self,
        name: &str,
        home: PathBuf,
        source: String,
        checksum: String,
        skipped: Vec<String>,
        want: &Want,
    ) -> Result<Chosen, PkgError> {
        let manifest =
            plugin::read(&home).map_err(|e| PkgError::input(format!("plugin {name}: {e}")))?;
        let expected = want.req.package.as_deref().unwrap_or(name);
        if manifest.name != expected {
            return Err(PkgError::input(format!(
                "plugin {name}: its plugin.json is named {:?}, not {expected:?}; add it with --name {name} to use it under that name",
                manifest.name
            )));
        }
        let is_git = source.starts_with("git+");
        for (dep, req) in &manifest.dependencies {
            if is_git && req.path.is_some() {
                return Err(PkgError::input(format!(
                    "plugin {name}: dependency {dep} is a path, which a plugin from git cannot have"
                )));
            }
        }
        Ok(Chosen {
            name: name.to_string(),
            home,
            manifest,
            source,
            checksum,
            skipped,
        })
    }

    /// Resolves `roots` (the project's entries) and everything they depend on.
    pub fn run(
        &mut self,
        roots: &BTreeMap<String, Requirement>,
    ) -> Result<BTreeMap<String, Chosen>, PkgError> {
        let mut constraints: BTreeMap<String, Vec<Want>> = BTreeMap::new();
        for _round in 0..32 {
            let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
            let mut queue: VecDeque<(String, Want)> = roots
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        Want {
                            requirer: rudder_policy::project::MANIFEST.into(),
                            req: r.clone(),
                            base: self.root.clone(),
                        },
                    )
                })
                .collect();
            let mut again = false;
            while let Some((name, want)) = queue.pop_front() {
                let list = constraints.entry(name.clone()).or_default();
                if !list.iter().any(|w| w.requirer == want.requirer) {
                    list.push(want.clone());
                }
                if let Some(c) = chosen.get(&name) {
                    let l = c.locked();
                    if lock_meets(&l, &want, &self.root) {
                        continue;
                    }
                    // A later requirement the first choice does not meet: choose
                    // again with every requirement known.
                    again = true;
                    break;
                }
                let wants = constraints[&name].clone();
                let c = self.choose(&name, &wants)?;
                for (dep, req) in &c.manifest.dependencies {
                    queue.push_back((
                        dep.clone(),
                        Want {
                            requirer: format!("plugin {name}"),
                            req: req.clone(),
                            base: c.home.clone(),
                        },
                    ));
                }
                chosen.insert(name, c);
            }
            if !again {
                check_cycles(&chosen)?;
                return Ok(chosen);
            }
        }
        Err(PkgError::input(
            "the plugins' requirements did not settle in 32 rounds",
        ))
    }
}

/// Refuses a dependency cycle, naming it.
fn check_cycles(chosen: &BTreeMap<String, Chosen>) -> Result<(), PkgError> {
    fn visit(
        n: &str,
        chosen: &BTreeMap<String, Chosen>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), PkgError> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Err(PkgError::input(format!(
                "plugin dependency cycle: {}",
                cycle.join(" -> ")
            )));
        }
        if done.contains(n) {
            return Ok(());
        }
        path.push(n.to_string());
        if let Some(c) = chosen.get(n) {
            for d in c.manifest.dependencies.keys() {
                visit(d, chosen, path, done)?;
            }
        }
        path.pop();
        done.insert(n.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for n in chosen.keys() {
        visit(n, chosen, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(req: Requirement) -> Want {
        Want {
            requirer: "rudder.toml".into(),
            req,
            base: PathBuf::from("/p"),
        }
    }

    fn locked(source: &str) -> Locked {
        Locked {
            name: "goyal".into(),
            version: "1.1.0".into(),
            source: source.into(),
            checksum: "sha256:00".into(),
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn a_lock_entry_meets_only_what_the_manifest_asks_for() {
        let c = "0cda9381c224ae6f0794b29f6a1e7e3d11b3d8ab";
        let l = locked(&format!("git+file:///g.git?tag=v1.1.0#{c}"));
        let git = |f: fn(&mut Requirement)| {
            let mut r = Requirement {
                git: Some("file:///g.git".into()),
                ..Default::default()
            };
            f(&mut r);
            want(r)
        };
        let root = Path::new("/p");
        assert!(lock_meets(
            &l,
            &git(|r| r.version = Some("^1.0".into())),
            root
        ));
        assert!(!lock_meets(
            &l,
            &git(|r| r.version = Some("^2".into())),
            root
        ));
        assert!(lock_meets(
            &l,
            &git(|r| r.tag = Some("v1.1.0".into())),
            root
        ));
        assert!(!lock_meets(
            &l,
            &git(|r| r.tag = Some("v1.0.0".into())),
            root
        ));
        assert!(lock_meets(
            &l,
            &git(|r| r.rev = Some("0CDA938".into())),
            root
        ));
        assert!(!lock_meets(
            &l,
            &git(|r| r.branch = Some("main".into())),
            root
        ));
        assert!(
            !lock_meets(&l, &git(|_| {}), root),
            "the default branch is not a tag"
        );
        let other = want(Requirement {
            git: Some("file:///other.git".into()),
            version: Some("^1".into()),
            ..Default::default()
        });
        assert!(!lock_meets(&l, &other, root));
    }

    #[test]
    fn cycles_are_named_from_where_they_start() {
        let manifest = |deps: &[&str]| plugin::Manifest {
            name: String::new(),
            version: "1.0.0".into(),
            description: String::new(),
            api: 1,
            policies: Default::default(),
            license: "MIT".into(),
            rudder: None,
            dependencies: deps
                .iter()
                .map(|d| (d.to_string(), Requirement::default()))
                .collect(),
        };
        let chosen = |graph: &[(&str, &[&str])]| -> BTreeMap<String, Chosen> {
            graph
                .iter()
                .map(|(n, deps)| {
                    (
                        n.to_string(),
                        Chosen {
                            name: n.to_string(),
                            home: PathBuf::new(),
                            manifest: manifest(deps),
                            source: String::new(),
                            checksum: String::new(),
                            skipped: Vec::new(),
                        },
                    )
                })
                .collect()
        };
        assert!(check_cycles(&chosen(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])).is_ok());
        let e = check_cycles(&chosen(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])).unwrap_err();
        assert_eq!(e.message, "plugin dependency cycle: a -> b -> c -> a");
        assert_eq!(e.exit, 2);
        let e = check_cycles(&chosen(&[("s", &["s"])])).unwrap_err();
        assert_eq!(e.message, "plugin dependency cycle: s -> s");
    }
}
