//! A crate's sources as the checks need them: each module's file, its path in the
//! module tree, and its parsed syntax, with `#[cfg(test)]` modules left out.

use std::path::{Path, PathBuf};

/// One module of a crate: its path (`["trainer", "learner"]`; the root is `[]`),
/// the file it is in, and its items (an inline module's own).
pub(crate) struct Module {
    pub(crate) path: Vec<String>,
    pub(crate) file: PathBuf,
    pub(crate) items: Vec<syn::Item>,
    /// The file's text, for line counts.
    pub(crate) text: std::sync::Arc<String>,
    /// Whether this module is the whole file (not an inline `mod x { .. }`).
    pub(crate) whole_file: bool,
}

/// Whether `attrs` hold `#[cfg(test)]` (or `#[test]`).
pub(crate) fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("test") {
            return true;
        }
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>().is_ok_and(|m| match m {
                syn::Meta::Path(p) => p.is_ident("test"),
                syn::Meta::List(l) => l.tokens.to_string().contains("test"),
                _ => false,
            })
    })
}

/// Every module of the crate whose root file is `src/root`, following `mod x;` to
/// `x.rs` or `x/mod.rs` (beside `lib.rs`, `main.rs` and `mod.rs`, else in the
/// file's own folder).
pub(crate) fn parse_crate(src: &Path, root: &str) -> Result<Vec<Module>, String> {
    let mut out = Vec::new();
    load(&src.join(root), Vec::new(), &mut out)?;
    Ok(out)
}

/// Every `.rs` file under `dir` as a module of its own (examples, benches).
pub(crate) fn parse_dir(dir: &Path) -> Result<Vec<Module>, String> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        let stem = f
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        load(&f, vec![stem], &mut out)?;
    }
    Ok(out)
}

fn load(file: &Path, path: Vec<String>, out: &mut Vec<Module>) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed = syn::parse_file(&text).map_err(|e| {
        let at = e.span().start();
        format!("{}:{}:{}: {e}", file.display(), at.line, at.column + 1)
    })?;
    let text = std::sync::Arc::new(text);
    let dir = child_dir(file);
    push(file, path, parsed.items, &dir, &text, true, out)
}

/// The folder a file's `mod x;` children are in.
fn child_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().unwrap_or_default()),
    }
}

fn push(
    file: &Path,
    path: Vec<String>,
    items: Vec<syn::Item>,
    dir: &Path,
    text: &std::sync::Arc<String>,
    whole_file: bool,
    out: &mut Vec<Module>,
) -> Result<(), String> {
    let mut kept = Vec::new();
    for item in items {
        let syn::Item::Mod(m) = &item else {
            kept.push(item);
            continue;
        };
        if is_test(&m.attrs) {
            continue;
        }
        let mut sub = path.clone();
        sub.push(m.ident.to_string());
        match &m.content {
            Some((_, inner)) => push(
                file,
                sub,
                inner.clone(),
                &dir.join(m.ident.to_string()),
                text,
                false,
                out,
            )?,
            None => {
                let name = m.ident.to_string();
                let flat = dir.join(format!("{name}.rs"));
                let nested = dir.join(&name).join("mod.rs");
                let found = if flat.is_file() { flat } else { nested };
                load(&found, sub, out)?;
            }
        }
    }
    out.push(Module {
        path,
        file: file.to_path_buf(),
        items: kept,
        text: text.clone(),
        whole_file,
    });
    Ok(())
}
