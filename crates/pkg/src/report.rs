//! `rudder plugin list` and `verify`: every locked plugin's state against the lock
//! (`ok`, `modified` naming the files and both hashes, `missing`, `not locked`).

use std::path::Path;

use rudder_policy::project::{self, LOCK, LOCK_VERSION, Lock, Source, State};

use crate::manifest::Project;
use crate::{Output, PkgError, short};

/// One row per plugin: name, version, source, commit, checksum, state.
fn rows(cache: &Path) -> Result<(Vec<[String; 6]>, bool), PkgError> {
    let project = Project::find()?;
    let lock = project::read_lock(&project.root)?.unwrap_or(Lock {
        version: LOCK_VERSION,
        plugins: Vec::new(),
    });
    let mut rows = Vec::new();
    let mut bad = false;
    for l in &lock.plugins {
        let home = project::home_of(l, &project.root, cache);
        let state = match project::state(l, &home)? {
            State::Ok(_) if l.source.starts_with("path+") => "ok (path)".to_string(),
            State::Ok(_) => "ok".to_string(),
            State::Missing => {
                bad = true;
                "missing".to_string()
            }
            State::Modified { files, .. } => {
                bad = true;
                format!(
                    "modified ({} file(s) differ; rudder plugin verify names them)",
                    files.len()
                )
            }
        };
        let (source, commit) = match Source::parse(&l.source) {
            Ok(Source::Git {
                url,
                reference,
                commit,
            }) => (
                format!(
                    "{url}{}",
                    reference.map(|r| format!(" {r}")).unwrap_or_default()
                ),
                short(&commit).to_string(),
            ),
            Ok(Source::Path(p)) => (format!("path {p}"), "-".into()),
            Err(_) => (l.source.clone(), "-".into()),
        };
        rows.push([
            l.name.clone(),
            l.version.clone(),
            source,
            commit,
            l.checksum.clone(),
            state,
        ]);
    }
    for (name, req) in &project.plugins {
        if !lock.plugins.iter().any(|l| &l.name == name) {
            let source = req.git.clone().or(req.path.clone()).unwrap_or_default();
            rows.push([
                name.clone(),
                "-".into(),
                source,
                "-".into(),
                "-".into(),
                "not locked".into(),
            ]);
        }
    }
    Ok((rows, bad))
}

/// `plugin list`: an aligned table, one row per plugin.
pub fn list(cache: &Path) -> Result<Output, PkgError> {
    let (rows, _) = rows(cache)?;
    if rows.is_empty() {
        return Ok(Output {
            lines: vec![format!("no plugins in {}", project::MANIFEST)],
            exit: 0,
        });
    }
    let header = ["name", "version", "source", "commit", "checksum", "state"].map(String::from);
    let all: Vec<&[String; 6]> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let lines = all
        .iter()
        .map(|r| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                s.push_str(&format!("{:<w$}  ", r[i], w = w));
            }
            s.push_str(&r[5]);
            s
        })
        .collect();
    Ok(Output { lines, exit: 0 })
}

/// `plugin verify`: a line per plugin; exit 1 when one is missing or modified.
pub fn verify(cache: &Path) -> Result<Output, PkgError> {
    let project = Project::find()?;
    let Some(lock) = project::read_lock(&project.root)? else {
        return Err(PkgError::input(format!(
            "no {LOCK} in {}; rudder plugin install writes it",
            project.root.display()
        )));
    };
    let mut lines = Vec::new();
    let mut failed = false;
    for l in &lock.plugins {
        let home = project::home_of(l, &project.root, cache);
        match project::state(l, &home)? {
            State::Ok(now) if l.source.starts_with("path+") => {
                lines.push(format!("{} path plugin (not enforced): {now}", l.name));
            }
            State::Ok(now) => lines.push(format!("{} ok {now}", l.name)),
            State::Missing => {
                failed = true;
                lines.push(format!(
                    "{} missing: not installed at {}; run rudder plugin install",
                    l.name,
                    home.display()
                ));
            }
            State::Modified { now, files } => {
                failed = true;
                lines.push(format!(
                    "{} modified: checksum {now}, locked {}",
                    l.name, l.checksum
                ));
                for (f, n, b) in &files {
                    lines.push(format!(
                        "  {f}: {} (locked {})",
                        n.as_deref().unwrap_or("gone"),
                        b.as_deref().unwrap_or("no such file")
                    ));
                }
                lines.push("  run rudder plugin install to repair".into());
            }
        }
    }
    Ok(Output {
        lines,
        exit: u8::from(failed),
    })
}
