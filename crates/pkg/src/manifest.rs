//! `rudder.toml`: the project's plugins (`[plugins]`, name -> where from and which
//! version), read through `toml` with errors at their line and column, edited through
//! `toml_edit` so that a user's comments and order survive `add` and `remove`, and
//! written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rudder_policy::plugin::{Requirement, bad_plugin_name};
use rudder_policy::project::{self, MANIFEST, ProjectError};
use serde::Deserialize;

use crate::PkgError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    plugins: BTreeMap<String, Requirement>,
}

/// A project: its root folder and `rudder.toml`'s plugins.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding `rudder.toml`.
    pub root: PathBuf,
    /// `[plugins]`, by name.
    pub plugins: BTreeMap<String, Requirement>,
}

impl Project {
    /// `rudder.toml` at `root`, read and checked.
    pub fn read(root: &Path) -> Result<Project, PkgError> {
        let path = root.join(MANIFEST);
        let text = project::read_toml_text(&path)?;
        let file: File =
            toml::from_str(&text).map_err(|e| project::toml_error(&path, &text, &e))?;
        for (name, req) in &file.plugins {
            if let Some(why) = bad_plugin_name(name) {
                return Err(
                    ProjectError::new(path.display(), format!("plugin {name:?}: {why}")).into(),
                );
            }
            let package = req.package.as_deref().and_then(bad_plugin_name);
            if let Some(why) = req.problem().or_else(|| source_problem(req)).or(package) {
                return Err(
                    ProjectError::new(path.display(), format!("plugin {name}: {why}")).into(),
                );
            }
        }
        Ok(Project {
            root: root.to_path_buf(),
            plugins: file.plugins,
        })
    }

    /// The project around the working folder, or one made there (with no plugins).
    pub fn find_or_new() -> Result<Project, PkgError> {
        let cwd = std::env::current_dir().map_err(|e| PkgError::io("the working folder", e))?;
        match project::find_root(&cwd) {
            Some(root) => Project::read(&root),
            None => Ok(Project {
                root: cwd,
                plugins: BTreeMap::new(),
            }),
        }
    }

    /// The project around the working folder; an error naming what is missing when
    /// there is none.
    pub fn find() -> Result<Project, PkgError> {
        let cwd = std::env::current_dir().map_err(|e| PkgError::io("the working folder", e))?;
        let root = project::find_root(&cwd).ok_or_else(|| {
            PkgError::input(format!(
                "no {MANIFEST} in {} or any folder above it; rudder plugin add SOURCE makes one",
                cwd.display()
            ))
        })?;
        Project::read(&root)
    }
}

/// Why a requirement's git URL cannot be fetched.
fn source_problem(req: &Requirement) -> Option<String> {
    req.git.as_deref().and_then(crate::git::url_problem)
}

fn entry(req: &Requirement) -> toml_edit::InlineTable {
    let mut t = toml_edit::InlineTable::new();
    for (k, v) in [
        ("git", &req.git),
        ("path", &req.path),
        ("tag", &req.tag),
        ("rev", &req.rev),
        ("branch", &req.branch),
        ("version", &req.version),
        ("package", &req.package),
    ] {
        if let Some(v) = v {
            t.insert(k, v.as_str().into());
        }
    }
    t
}

/// Rewrites `root/rudder.toml` with `name` set to `req` (`None`: removed), keeping
/// everything else as written; creates the file when there is none.
pub fn edit(root: &Path, name: &str, req: Option<&Requirement>) -> Result<(), PkgError> {
    let path = root.join(MANIFEST);
    let text = if path.exists() {
        project::read_toml_text(&path)?
    } else {
        String::new()
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ProjectError::new(path.display(), e.message()))?;
    if !doc.contains_key("plugins") {
        doc["plugins"] = toml_edit::Item::Table(toml_edit::Table::new());
    }
    let plugins = doc["plugins"]
        .as_table_like_mut()
        .ok_or_else(|| ProjectError::new(path.display(), "plugins is not a table"))?;
    match req {
        Some(r) => {
            plugins.insert(
                name,
                toml_edit::Item::Value(toml_edit::Value::InlineTable(entry(r))),
            );
        }
        None => {
            plugins.remove(name);
        }
    }
    crate::store::write_atomic(&path, doc.to_string().as_bytes())
}
