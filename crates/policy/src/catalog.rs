//! What is on the search path: every policy name with the file it resolves to and
//! what it shadows, a one-line summary of each, and the nearest name to one that is
//! not there. `policy list` prints it; the loader's "no policy" messages use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::script::find::{EMBEDDED, SearchPath};

/// One policy as `policy list` shows it: where its name resolves, and what shadows
/// what (other sources of the name whose text differs).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name to load it by (`lr/cosine`, `myplugin/stop`).
    pub name: String,
    /// The first paragraph of its doc comment (for a broken plugin, why it is broken).
    pub summary: String,
    /// The file the name resolves to (`<embedded>/NAME.rhai` for the standard library).
    pub file: String,
    /// `shadows FILE`, or `"SHORT" finds FILE instead`.
    pub shadows: Vec<String>,
}

/// The first sentence of `doc` (its first paragraph joined), cut at a word to at most
/// `width` characters with `...`.
pub fn headline(doc: &str, width: usize) -> String {
    let text = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    // A sentence ends at ". " unless the word before is an abbreviation ("et al.").
    let end = text.match_indices(". ").map(|(i, _)| i).find(|&i| {
        let word = text[..i].rsplit([' ', '(']).next().unwrap_or("");
        word.chars().count() > 1 && !["al", "vs", "e.g", "i.e", "etc", "cf"].contains(&word)
    });
    let sentence = match end {
        Some(i) => &text[..=i],
        None => text.as_str(),
    };
    if sentence.chars().count() <= width {
        return sentence.to_string();
    }
    let mut out = String::new();
    for word in sentence.split(' ') {
        if out.chars().count() + word.chars().count() + 1 > width - 3 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push_str("...");
    out
}

/// The first paragraph of a script's `//!` doc, joined into one line.
fn first_paragraph(source: &str) -> String {
    module_doc(source)
        .into_iter()
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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

/// Every source of every name on `search`, in search order, then the standard
/// library's: (name, file, text).
type Found = Vec<(String, String, String)>;

/// Each plugin name's first folder on the search path (the one `PLUGIN/POLICY`
/// finds) and its policies' files; `None` when that manifest is broken.
type Plugins = BTreeMap<String, Option<BTreeMap<String, PathBuf>>>;

/// Plugin folders by name, and the search folder they are in (`None`: locked).
type Source<'a> = (Vec<(String, PathBuf)>, Option<&'a Path>);

/// What is on `search`: every source of every name, each plugin's manifest (read
/// once each: resolving every name through its manifest again would be quadratic),
/// and the broken plugins' entries.
fn gather(search: &SearchPath) -> (Found, Plugins, BTreeMap<String, Entry>) {
    let mut found: Found = Vec::new();
    let mut broken: BTreeMap<String, Entry> = BTreeMap::new();
    let mut plugins: Plugins = BTreeMap::new();
    // The project's locked plugins come first, by name, then each search folder's.
    let mut sources: Vec<Source<'_>> = vec![(
        search
            .plugins()
            .iter()
            .map(|p| (p.name.clone(), p.home.clone()))
            .collect(),
        None,
    )];
    for dir in search.dirs() {
        let homes = crate::plugin::folders(dir)
            .into_iter()
            .map(|home| {
                let name = home
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                (name, home)
            })
            .collect();
        sources.push((homes, Some(dir.as_path())));
    }
    for (homes, dir) in sources {
        let mut files = Vec::new();
        if let Some(dir) = dir {
            scripts_in(dir, dir, &mut files);
        }
        for (plugin, home) in homes {
            let read = crate::plugin::read(&home);
            plugins.entry(plugin.clone()).or_insert_with(|| {
                read.as_ref().ok().map(|m| {
                    m.policies
                        .iter()
                        .map(|(p, f)| (p.clone(), home.join(f)))
                        .collect()
                })
            });
            match read {
                Ok(m) => files.extend(
                    m.policies
                        .iter()
                        .map(|(p, f)| (format!("{plugin}/{p}"), home.join(f))),
                ),
                Err(e) => {
                    broken.entry(format!("{plugin}/")).or_insert(Entry {
                        name: format!("{plugin}/"),
                        summary: format!("invalid plugin: {e}"),
                        file: home.display().to_string(),
                        shadows: Vec::new(),
                    });
                }
            }
        }
        for (name, path) in files {
            let text = rudder_core::input::read(&path, crate::limits::MAX_SOURCE)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            found.push((name, path.display().to_string(), text));
        }
    }
    for (name, source) in EMBEDDED {
        found.push((
            name.to_string(),
            format!("<embedded>/{name}.rhai"),
            source.to_string(),
        ));
    }
    (found, plugins, broken)
}

/// Where `name` resolves: (file, source, whether through a plugin's manifest);
/// `None` when it does not.
fn resolve(
    name: &str,
    found: &Found,
    plugins: &Plugins,
    search: &SearchPath,
) -> Option<(String, String, bool)> {
    let in_plugin = name
        .split_once('/')
        .and_then(|(p, policy)| Some((plugins.get(p)?, policy)));
    match in_plugin {
        Some((None, _)) => None,
        Some((Some(files), policy)) => {
            let file = files.get(policy)?.display().to_string();
            let (_, _, text) = found.iter().find(|(_, f, _)| *f == file)?;
            Some((file, text.clone(), true))
        }
        None => crate::script::find::locate(name, search).ok().map(|at| {
            (
                at.file.display().to_string(),
                at.source,
                at.manifest.is_some(),
            )
        }),
    }
}

/// Every name on `search` and in the standard library, with the file it resolves to
/// (as `--policy NAME` finds it) and what it shadows; by name.
pub fn list(search: &SearchPath) -> Vec<Entry> {
    let (found, plugins, broken) = gather(search);
    let names: std::collections::BTreeSet<String> = found.iter().map(|f| f.0.clone()).collect();
    let mut out = broken;
    for name in names {
        let Some((file, source, manifest)) = resolve(&name, &found, &plugins, search) else {
            continue;
        };
        // The same name elsewhere, and (for a library name) the short name's hits.
        let short = name.rsplit('/').next().unwrap_or(&name);
        let mut shadows: Vec<String> = found
            .iter()
            .filter(|(n, f, t)| *n == name && *f != file && *t != source)
            .map(|(_, f, _)| format!("shadows {f}"))
            .collect();
        // A plugin's policies have no short name.
        if short != name
            && !manifest
            && let Ok(s) = crate::script::find::locate(short, search)
            && s.source != source
        {
            shadows.push(format!("{short:?} finds {} instead", s.file.display()));
        }
        out.insert(
            name.clone(),
            Entry {
                name,
                summary: first_paragraph(&source),
                file,
                shadows,
            },
        );
    }
    out.into_values().collect()
}

/// What a "no policy" message ends with: the nearest name on `search` and in the
/// library (by edit distance, of the whole name or its last part), or where to see
/// them all; nothing when the message already names a file to give instead.
pub(crate) fn hint(spec: &str, message: &str, search: &SearchPath) -> String {
    if message.contains("there is a file") {
        return message.to_string();
    }
    let names: Vec<String> = list(search).into_iter().map(|e| e.name).collect();
    let short = names.iter().map(|n| n.rsplit('/').next().unwrap_or(n));
    match crate::text::nearest(spec, names.iter().map(String::as_str))
        .or_else(|| crate::text::nearest(spec, short))
    {
        Some(n) => format!("{message}; did you mean {n}? (rudder policy list shows them all)"),
        None => format!("{message}; rudder policy list shows the names there are"),
    }
}

/// The `specs` (as `--policy` gives them) that name a policy of the standard library
/// but resolve to a file on `search` instead, with that file: what a run announces
/// at its start (a file `scripts/lr/cosine.rhai` replaces the library's `lr/cosine`).
pub fn shadowing(specs: &[String], search: &SearchPath) -> Vec<(String, PathBuf)> {
    specs
        .iter()
        .filter(|s| {
            EMBEDDED
                .iter()
                .any(|(n, _)| *n == s.as_str() || n.rsplit('/').next() == Some(s.as_str()))
        })
        .filter_map(|s| {
            let at = crate::script::find::locate(s, search).ok()?;
            (!at.file.starts_with("<embedded>")).then(|| (s.clone(), at.file))
        })
        .collect()
}
