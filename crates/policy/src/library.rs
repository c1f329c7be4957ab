//! The policy commands: `rudder policy list` (name, one-line doc, file, from
//! [`crate::catalog`]), `rudder policy doc` (doc comment, hooks, parameters with
//! defaults and docs), `policy check`, and `rudder policy defs` (Rhai definitions for
//! editor completion).

use std::path::Path;

use crate::catalog::{hint, list, module_doc};
use crate::script::find::SearchPath;
use crate::script::policy::Policy;
use crate::{LoadError, Messages, Param, Policies};

pub use crate::catalog::{Entry, headline};

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

/// `policy doc NAME`: the doc comment, the hooks, and the parameters with their
/// defaults and their doc.
pub fn doc(spec: &str, search: &SearchPath) -> Result<String, LoadError> {
    let src = crate::script::find::locate(spec, search)
        .map_err(|m| LoadError::not_found(&crate::text::clip(spec), hint(spec, &m, search)))?;
    let policy = Policy::compile(src.clone(), search)?;
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
    Ok(out)
}

/// `policy list`: one line per name, aligned: the name, the first sentence of its doc
/// (cut at a word to 64 characters), the file it resolves to, and what it shadows.
pub fn list_lines(search: &SearchPath) -> Vec<String> {
    let entries = list(search);
    let width = entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    entries
        .into_iter()
        .map(|e| {
            let summary = headline(&e.summary, 64);
            let mut line = format!("{:<width$}  {summary:<64}  {}", e.name, e.file);
            if !e.shadows.is_empty() {
                line.push_str(&format!("  ({})", e.shadows.join("; ")));
            }
            // A locked plugin's policy: where it came from.
            let locked = e
                .name
                .split_once('/')
                .and_then(|(plugin, _)| search.plugin(plugin))
                .filter(|p| Path::new(&e.file).starts_with(&p.home));
            if let Some(p) = locked {
                let o = &p.origin;
                let at = o
                    .commit
                    .as_deref()
                    .map_or("path", |c| &c[..c.len().min(12)]);
                line.push_str(&format!("  (plugin {} {} {at})", o.name, o.version));
            }
            line
        })
        .collect()
}

/// `policy check NAME...`: an `ok` line per policy that loads (its file, hooks,
/// parameters and version) and a `warning:` line for each lint (`Policies::lint`),
/// then, if all load, the set with `params` (an unknown or mistyped parameter is an
/// error; one that reaches several policies a warning). The first error ends the check.
pub fn check(
    specs: &[String],
    params: &[Param],
    search: &SearchPath,
) -> (Vec<String>, Option<LoadError>) {
    let none = |v: Vec<&str>| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut lines = Vec::new();
    let mut failed = None;
    for spec in specs {
        // A sweep policy (it defines on_report) is checked as one.
        if let Ok(s) = crate::sweep::Scheduler::load(spec, &[], search) {
            let params = s.params();
            let keys: Vec<&str> = params
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            lines.push(format!(
                "ok {} ({}): sweep policy, hook on_report; params {}; version {}",
                s.name(),
                s.file().display(),
                none(keys),
                s.version()
            ));
            lines.extend(s.lint().into_iter().map(|w| format!("warning: {w}")));
            continue;
        }
        let built = Policies::builder()
            .policy(spec.as_str())
            .search_path(search.clone())
            .messages(Messages::none())
            .build();
        match built {
            Ok(set) => {
                let p = &set.describe()[0];
                lines.push(format!(
                    "ok {} ({}): hooks {}; params {}; version {}",
                    p.name,
                    p.file.display(),
                    none(p.hooks.clone()),
                    none(p.params.keys().map(String::as_str).collect()),
                    p.version
                ));
                lines.extend(set.lint().into_iter().map(|w| format!("warning: {w}")));
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if failed.is_none() && !params.is_empty() {
        match Policies::builder()
            .policies(specs.iter().cloned())
            .params(params.iter().cloned())
            .search_path(search.clone())
            .messages(Messages::none())
            .build()
        {
            Ok(set) => lines.extend(set.warnings().iter().map(|w| format!("warning: {w}"))),
            Err(e) => failed = Some(e),
        }
    }
    (lines, failed)
}

/// Rhai definitions of what scripts can call (the standard package and `lr`), for
/// editors.
pub fn definitions() -> String {
    let (engine, _) = crate::script::host::engine();
    engine.definitions().single_file()
}
