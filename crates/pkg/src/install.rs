//! `rudder plugin install`: the lock as it records it, or re-resolved when
//! `rudder.toml` asks for what it does not meet (refused with `--locked`).

use std::collections::BTreeSet;
use std::path::Path;

use rudder_policy::project::{self, LOCK, Lock, Source, State};

use crate::cache::Ctx;
use crate::manifest::Project;
use crate::{Output, PkgError, describe, git, relock, resolve, short, skipped_lines, store};

/// The entries of `rudder.toml` that `lock` does not meet, named.
fn drift(project: &Project, lock: &Lock) -> Vec<String> {
    let mut out = Vec::new();
    for (name, req) in &project.plugins {
        let want = resolve::Want {
            requirer: project::MANIFEST.into(),
            req: req.clone(),
            base: project.root.clone(),
        };
        match lock.plugins.iter().find(|l| &l.name == name) {
            None => out.push(format!("{name} is not in {LOCK}")),
            Some(l) if !resolve::lock_meets(l, &want, &project.root) => {
                out.push(format!(
                    "{name} is locked as {} which {} does not ask for",
                    l.source,
                    project::MANIFEST
                ));
            }
            Some(_) => {}
        }
    }
    out
}

pub(crate) fn install(cache: &Path, locked: bool, offline: bool) -> Result<Output, PkgError> {
    let mut ctx = Ctx::new(cache.to_path_buf(), offline)?;
    let project = Project::find()?;
    let lock = project::read_lock(&project.root)?;
    let mut lines = Vec::new();
    let drifted = match &lock {
        Some(l) => drift(&project, l),
        None => vec![format!("there is no {LOCK}")],
    };
    if !drifted.is_empty() {
        if locked {
            return Err(PkgError::input(format!(
                "--locked: {} and {LOCK} disagree ({}); run rudder plugin install without --locked to update the lock",
                project::MANIFEST,
                drifted.join("; ")
            )));
        }
        let chosen = relock(&mut ctx, &project, lock.as_ref(), BTreeSet::new(), false)?;
        for c in chosen.values() {
            skipped_lines(c, &mut lines);
            lines.push(format!("installed {}", describe(c)));
        }
        lines.push(format!("wrote {}", project.root.join(LOCK).display()));
        return Ok(Output { lines, exit: 0 });
    }
    let lock = lock.expect("no drift means a lock");
    for l in &lock.plugins {
        let home = project::home_of(l, &project.root, cache);
        install_one(&mut ctx, l, &home, &mut lines)?;
        // The entry's name against the manifest's, as resolution checks it.
        if let Some(req) = project.plugins.get(&l.name) {
            let m = rudder_policy::plugin::read(&home)
                .map_err(|e| PkgError::input(format!("plugin {}: {e}", l.name)))?;
            let expected = req.package.as_deref().unwrap_or(&l.name);
            if m.name != expected {
                return Err(PkgError::input(format!(
                    "plugin {}: its plugin.json is named {:?}, not {expected:?}; set package = {:?} in its {} entry to use it under this name",
                    l.name,
                    m.name,
                    m.name,
                    project::MANIFEST
                )));
            }
        }
    }
    Ok(Output { lines, exit: 0 })
}

/// Installs one lock entry as it records it (repairing a modified folder).
fn install_one(
    ctx: &mut Ctx,
    l: &project::Locked,
    home: &Path,
    lines: &mut Vec<String>,
) -> Result<(), PkgError> {
    match Source::parse(&l.source).map_err(PkgError::input)? {
        Source::Path(p) => {
            if !home.join("plugin.json").is_file() {
                return Err(PkgError::input(format!(
                    "plugin {}: path {p} has no plugin.json",
                    l.name
                )));
            }
            lines.push(format!(
                "{} {} (path {p}, not checksum-enforced)",
                l.name, l.version
            ));
        }
        Source::Git { url, commit, .. } => {
            // A lock is input too: its URLs are held to what `add` accepts.
            if let Some(why) = git::url_problem(&url) {
                return Err(PkgError::input(format!("{LOCK}: plugin {}: {why}", l.name)));
            }
            let state = project::state(l, home)?;
            if state == State::Ok(l.checksum.clone()) {
                lines.push(format!(
                    "{} {} ({}) already installed",
                    l.name,
                    l.version,
                    short(&commit)
                ));
                return Ok(());
            }
            let repaired = match &state {
                State::Modified { now, .. } => {
                    // Files as installed (their listing agrees) but not as locked:
                    // the lock is what changed; the folder stays for other projects.
                    let listed =
                        rudder_policy::checksum::read_listing(&project::listing_file(home))
                            .map(|e| rudder_policy::checksum::checksum(&e));
                    if listed.as_deref() == Some(now.as_str()) {
                        return Err(PkgError::input(format!(
                            "plugin {}: commit {commit} has checksum {now}, but {LOCK} records {}; the lock was edited or the files differ",
                            l.name, l.checksum
                        )));
                    }
                    store::remove_tree(home);
                    true
                }
                _ => false,
            };
            let (_, checksum, skipped) = ctx.install_git(&l.name, &url, &commit)?;
            if checksum != l.checksum {
                return Err(PkgError::input(format!(
                    "plugin {}: commit {commit} has checksum {checksum}, but {LOCK} records {}; the lock was edited or the files differ",
                    l.name, l.checksum
                )));
            }
            for s in skipped {
                lines.push(format!(
                    "note: plugin {}: submodule {s} not followed",
                    l.name
                ));
            }
            lines.push(format!(
                "installed {} {} ({}) {}{}",
                l.name,
                l.version,
                short(&commit),
                l.checksum,
                if repaired { " (repaired)" } else { "" }
            ));
        }
    }
    Ok(())
}
