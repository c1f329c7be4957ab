//! What is on the search path: `rudder policy list` (name, one-line doc, file),
//! `rudder policy doc` (doc comment, hooks, parameters with defaults and docs) and
//! `rudder policy defs` (Rhai definitions for editor completion).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::find::{EMBEDDED, Located, SearchPath};
use super::policy::Policy;

/// One policy as `policy list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub summary: String,
    pub file: String,
}

/// The `//!` lines at the top of a script, without the markers.
pub fn module_doc(source: &str) -> Vec<String> {
    source
        .lines()
        .take_while(|l| l.trim_start().starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).to_string())
        .collect()
}

/// The `///` lines right above `fn params()`.
fn params_doc(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| l.trim_start().starts_with("fn params("))
    else {
        return Vec::new();
    };
    let mut doc: Vec<String> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("///"))
        .map(|l| l.trim_start().trim_start_matches("///").trim().to_string())
        .collect();
    doc.reverse();
    doc
}

fn scripts_in(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            // A plugin's scripts are listed through its manifest.
            if p.file_name().is_some_and(|n| n != "tests") && !p.join("plugin.json").is_file() {
                scripts_in(&p, base, out);
            }
        } else if p.extension().is_some_and(|e| e == "rhai") {
            let name = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .with_extension("")
                .display()
                .to_string();
            out.push((name, p));
        }
    }
}

/// Every policy on `search`, then the embedded ones no file shadows; by name.
pub fn list(search: &SearchPath) -> Vec<Entry> {
    let mut seen: BTreeMap<String, Entry> = BTreeMap::new();
    for dir in search.dirs() {
        let mut found = Vec::new();
        scripts_in(dir, dir, &mut found);
        for home in super::plugin::folders(dir) {
            let plugin = home
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            match super::plugin::read(&home) {
                Ok(m) => found.extend(
                    m.policies
                        .iter()
                        .map(|(p, f)| (format!("{plugin}/{p}"), home.join(f))),
                ),
                Err(e) => {
                    seen.entry(format!("{plugin}/")).or_insert(Entry {
                        name: format!("{plugin}/"),
                        summary: format!("invalid plugin: {e}"),
                        file: home.display().to_string(),
                    });
                }
            }
        }
        for (name, path) in found {
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            seen.entry(name.clone()).or_insert(Entry {
                name,
                summary: module_doc(&source).into_iter().next().unwrap_or_default(),
                file: path.display().to_string(),
            });
        }
    }
    for (name, source) in EMBEDDED {
        seen.entry(name.to_string()).or_insert(Entry {
            name: name.to_string(),
            summary: module_doc(source).into_iter().next().unwrap_or_default(),
            file: format!("<embedded>/{name}.rhai"),
        });
    }
    seen.into_values().collect()
}

/// `policy doc`: the doc comment, the hooks, and the parameters with their defaults.
pub fn doc(src: &Located, policy: &Policy) -> String {
    let mut out = format!("{} ({})\n\n", src.name, src.file.display());
    for l in module_doc(&src.source) {
        out.push_str(&format!("  {l}\n"));
    }
    let hooks = policy.hooks();
    out.push_str(&format!(
        "\nhooks: {}\n\nparameters (defaults):\n",
        hooks.join(", ")
    ));
    for (k, v) in &policy.params {
        let shown = if v.is_unit() {
            "() (see below)".to_string()
        } else {
            v.to_string()
        };
        out.push_str(&format!("  {k} = {shown}\n"));
    }
    let pdoc = params_doc(&src.source);
    if !pdoc.is_empty() {
        out.push('\n');
        for l in pdoc {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

/// Rhai definitions of what scripts can call (the standard package and `lr`), for
/// editors.
pub fn definitions() -> String {
    let (engine, _) = super::host::engine();
    engine.definitions().single_file()
}
