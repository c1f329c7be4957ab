//! Policy libraries from git or a path: `rudder plugin add | install | update |
//! remove | list | verify`. The project manifest (`rudder.toml`, [`manifest`]),
//! resolution with dependencies ([`resolve`]), fetching with gitoxide ([`git`]), the
//! install cache and atomic writes ([`store`]), and the lock (`rudder.lock`) written
//! here and read by `rudder_policy::project`, which checks it at every policy load.
//! Each command returns its output lines and an exit code, so that the binary and
//! the Python package print the same.

pub mod cache;
pub mod git;
mod install;
pub mod manifest;
pub mod report;
pub mod resolve;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rudder_policy::plugin::Requirement;
use rudder_policy::project::{self, LOCK, LOCK_VERSION, Lock, ProjectError, Source};

use manifest::Project;
use resolve::{Chosen, Ctx, Resolver};

/// A command that failed: exit 2 for what it was given (a source, a manifest, a
/// lock, a repository), 1 for a check that failed or the system refusing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PkgError {
    /// The exit code.
    pub exit: u8,
    /// One line.
    pub message: String,
}

impl PkgError {
    /// Bad input: exit 2.
    pub fn input(message: impl std::fmt::Display) -> PkgError {
        PkgError {
            exit: 2,
            message: rudder_policy::text::one_line(&message.to_string()),
        }
    }

    /// A file that could not be read or written: exit 1.
    pub fn io(at: impl std::fmt::Display, e: std::io::Error) -> PkgError {
        PkgError {
            exit: 1,
            message: format!("{at}: {e}"),
        }
    }
}

impl From<ProjectError> for PkgError {
    fn from(e: ProjectError) -> PkgError {
        PkgError::input(e)
    }
}

/// Which commit of a git source `add` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reference {
    /// `--tag`.
    pub tag: Option<String>,
    /// `--rev`.
    pub rev: Option<String>,
    /// `--branch`.
    pub branch: Option<String>,
    /// `--version`.
    pub version: Option<String>,
}

/// A `rudder plugin` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `add SOURCE [REF] [--name N]`.
    Add {
        /// A git URL or a folder.
        source: String,
        /// Which commit.
        reference: Reference,
        /// The name to use it under.
        name: Option<String>,
    },
    /// `install [--locked] [--offline]`.
    Install {
        /// Refuse to re-resolve when `rudder.toml` and `rudder.lock` disagree.
        locked: bool,
        /// Fetch nothing.
        offline: bool,
    },
    /// `update [NAME...]`.
    Update {
        /// The plugins to move; all when empty.
        names: Vec<String>,
    },
    /// `remove NAME`.
    Remove {
        /// The plugin.
        name: String,
    },
    /// `list`.
    List,
    /// `verify`.
    Verify,
}

/// What a command printed and its exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Lines for stdout.
    pub lines: Vec<String>,
    /// 0, or 1 for a failed `verify`.
    pub exit: u8,
}

impl Output {
    /// The error line for a nonzero exit (what `verify` failing says).
    pub fn failure(&self) -> Option<&'static str> {
        (self.exit != 0).then_some("verify: a plugin is missing or differs from rudder.lock")
    }
}

/// Runs `cmd` in the project around the working folder, with the cache
/// `rudder_policy::project::cache_home()`.
pub fn run(cmd: &Command) -> Result<Output, PkgError> {
    let cache = project::cache_home();
    match cmd {
        Command::Add {
            source,
            reference,
            name,
        } => add(&cache, source, reference, name.as_deref()),
        Command::Install { locked, offline } => install::install(&cache, *locked, *offline),
        Command::Update { names } => update(&cache, names),
        Command::Remove { name } => remove(&cache, name),
        Command::List => report::list(&cache),
        Command::Verify => report::verify(&cache),
    }
}

pub(crate) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn commit_of(source: &str) -> Option<String> {
    match Source::parse(source) {
        Ok(Source::Git { commit, .. }) => Some(commit),
        _ => None,
    }
}

/// Resolves `project` (re-resolving `refresh`, or everything) and writes the lock.
pub(crate) fn relock(
    ctx: &mut Ctx,
    project: &Project,
    lock: Option<&Lock>,
    refresh: BTreeSet<String>,
    refresh_all: bool,
) -> Result<BTreeMap<String, Chosen>, PkgError> {
    let chosen = Resolver {
        ctx,
        root: project.root.clone(),
        lock,
        refresh,
        refresh_all,
    }
    .run(&project.plugins)?;
    write_lock(&project.root, &chosen)?;
    Ok(chosen)
}

/// Writes `root/rudder.lock` from what was resolved, sorted by name.
fn write_lock(root: &Path, chosen: &BTreeMap<String, Chosen>) -> Result<Lock, PkgError> {
    let lock = Lock {
        version: LOCK_VERSION,
        plugins: chosen.values().map(Chosen::locked).collect(),
    };
    let body = toml::to_string(&lock).map_err(|e| PkgError::input(format!("{LOCK}: {e}")))?;
    let text = format!(
        "# Written by rudder plugin add | install | update | remove; do not edit.\n# Check it in: rudder plugin install gives every machine these exact files.\n{body}"
    );
    store::write_atomic(&root.join(LOCK), text.as_bytes())?;
    Ok(lock)
}

pub(crate) fn describe(c: &Chosen) -> String {
    let at = commit_of(&c.source).map_or_else(
        || c.source.clone(),
        |commit| {
            let src = Source::parse(&c.source).ok();
            let reference = match src {
                Some(Source::Git {
                    reference: Some(r), ..
                }) => format!("{r} "),
                _ => String::new(),
            };
            format!("{reference}{}", short(&commit))
        },
    );
    format!("{} {} ({at}) {}", c.name, c.manifest.version, c.checksum)
}

pub(crate) fn skipped_lines(c: &Chosen, out: &mut Vec<String>) {
    for s in &c.skipped {
        out.push(format!(
            "note: plugin {}: submodule {s} not followed",
            c.name
        ));
    }
}

fn add(cache: &Path, source: &str, r: &Reference, name: Option<&str>) -> Result<Output, PkgError> {
    // The cache's lock first: one command at a time reads and writes a project.
    let mut ctx = Ctx::new(cache.to_path_buf(), false)?;
    let mut project = Project::find_or_new()?;
    let lock = project::read_lock(&project.root)?;
    let mut req = Requirement::default();
    if git::is_url(source) {
        if let Some(why) = git::url_problem(source) {
            return Err(PkgError::input(why));
        }
        req.git = Some(source.to_string());
        req.tag = r.tag.clone();
        req.rev = r.rev.clone();
        req.branch = r.branch.clone();
        req.version = r.version.clone();
    } else {
        if r != &Reference::default() {
            return Err(PkgError::input(format!(
                "{source} is a folder: --tag, --rev, --branch and --version go with a git URL"
            )));
        }
        let dir = Path::new(source);
        if !dir.join("plugin.json").is_file() {
            return Err(PkgError::input(format!(
                "{source}: neither a git URL nor a folder with a plugin.json"
            )));
        }
        // Given from the working folder; written relative to the project's root.
        let cwd = std::env::current_dir().map_err(|e| PkgError::io("the working folder", e))?;
        req.path = Some(resolve::relative_to(&cwd.join(dir), &project.root));
    }
    if let Some(why) = req.problem() {
        return Err(PkgError::input(format!("plugin add: {why}")));
    }
    if let Some(n) = name
        && let Some(why) = rudder_policy::plugin::bad_plugin_name(n)
    {
        return Err(PkgError::input(format!("--name {why}")));
    }
    let manifest_name = resolve::manifest_name(&mut ctx, &req, &project.root)?;
    let entry_name = name.unwrap_or(&manifest_name).to_string();
    if let Some(why) = rudder_policy::plugin::bad_plugin_name(&entry_name) {
        return Err(PkgError::input(format!("the plugin's name: {why}")));
    }
    if entry_name != manifest_name {
        req.package = Some(manifest_name.clone());
    }
    let replaced = project
        .plugins
        .insert(entry_name.clone(), req.clone())
        .is_some();
    let chosen = relock(
        &mut ctx,
        &project,
        lock.as_ref(),
        BTreeSet::from([entry_name.clone()]),
        false,
    )?;
    manifest::edit(&project.root, &entry_name, Some(&req))?;
    let mut lines = vec![format!(
        "{} {} in {}",
        if replaced { "replaced" } else { "added" },
        entry_name,
        project.root.join(project::MANIFEST).display()
    )];
    for c in chosen.values() {
        skipped_lines(c, &mut lines);
        lines.push(format!("installed {}", describe(c)));
    }
    Ok(Output { lines, exit: 0 })
}

fn update(cache: &Path, names: &[String]) -> Result<Output, PkgError> {
    let mut ctx = Ctx::new(cache.to_path_buf(), false)?;
    let project = Project::find()?;
    let lock = project::read_lock(&project.root)?;
    for n in names {
        let known = project.plugins.contains_key(n)
            || lock
                .as_ref()
                .is_some_and(|l| l.plugins.iter().any(|p| &p.name == n));
        if !known {
            return Err(PkgError::input(format!(
                "update: no plugin {n} in {}",
                project::MANIFEST
            )));
        }
    }
    let chosen = relock(
        &mut ctx,
        &project,
        lock.as_ref(),
        names.iter().cloned().collect(),
        names.is_empty(),
    )?;
    let before: BTreeMap<&str, &project::Locked> = lock
        .iter()
        .flat_map(|l| l.plugins.iter())
        .map(|l| (l.name.as_str(), l))
        .collect();
    let mut lines = Vec::new();
    for c in chosen.values() {
        let now = c.locked();
        let at = |l: &project::Locked| {
            format!(
                "{} ({})",
                l.version,
                commit_of(&l.source).map_or_else(|| "path".to_string(), |c| short(&c).to_string())
            )
        };
        match before.get(c.name.as_str()) {
            Some(old) if old.source == now.source && old.checksum == now.checksum => {
                lines.push(format!("{} {} unchanged", c.name, at(&now)));
            }
            Some(old) => lines.push(format!("{} {} -> {}", c.name, at(old), at(&now))),
            None => lines.push(format!("{} new {}", c.name, at(&now))),
        }
    }
    for name in before.keys() {
        if !chosen.contains_key(*name) {
            lines.push(format!("{name} removed (nothing requires it)"));
        }
    }
    Ok(Output { lines, exit: 0 })
}

fn remove(cache: &Path, name: &str) -> Result<Output, PkgError> {
    let mut ctx = Ctx::new(cache.to_path_buf(), true)?;
    let mut project = Project::find()?;
    if project.plugins.remove(name).is_none() {
        return Err(PkgError::input(format!(
            "remove: no plugin {name} in {}",
            project.root.join(project::MANIFEST).display()
        )));
    }
    let lock = project::read_lock(&project.root)?;
    relock(&mut ctx, &project, lock.as_ref(), BTreeSet::new(), false)?;
    manifest::edit(&project.root, name, None)?;
    Ok(Output {
        lines: vec![format!("removed {name}")],
        exit: 0,
    })
}
