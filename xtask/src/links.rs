//! The built book's links: every relative `href` and `src` of every page leads to a
//! file of the book, and every `#anchor` to an `id` on its page. Links to the web are
//! not followed (the checks run without a network); a link that leaves the book's
//! folder is an error (it would break wherever the book is served).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Broken links under `book` (mdBook's output folder), one message each.
pub(crate) fn check(book: &Path) -> Vec<String> {
    let mut pages = Vec::new();
    collect(book, &mut pages);
    if pages.is_empty() {
        return vec![format!(
            "{}: no HTML pages (build the book first)",
            book.display()
        )];
    }
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut texts = Vec::new();
    for p in &pages {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        ids.insert(p.clone(), attr_values(&text, "id").into_iter().collect());
        texts.push((p.clone(), text));
    }
    let mut out = Vec::new();
    for (page, text) in &texts {
        for link in attr_values(text, "href")
            .into_iter()
            .chain(attr_values(text, "src"))
        {
            if let Some(problem) = broken(book, page, &link, &ids) {
                let shown = page.strip_prefix(book).unwrap_or(page).display();
                out.push(format!("{shown}: link {link:?}: {problem}"));
            }
        }
    }
    out
}

/// What is wrong with `link` on `page`, if anything.
fn broken(
    book: &Path,
    page: &Path,
    link: &str,
    ids: &BTreeMap<PathBuf, BTreeSet<String>>,
) -> Option<String> {
    if link.is_empty()
        || link.contains("://")
        || link.starts_with("mailto:")
        || link.starts_with("javascript:")
    {
        return None;
    }
    let (file, anchor) = match link.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (link, None),
    };
    let file = file.split('?').next().unwrap_or(file);
    let target = if file.is_empty() {
        page.to_path_buf()
    } else {
        normalize(&page.parent().unwrap_or(book).join(file))
    };
    if !target.starts_with(book) {
        return Some("leaves the book".into());
    }
    let target = if target.is_dir() {
        target.join("index.html")
    } else {
        target
    };
    if !target.exists() {
        return Some("no such file".into());
    }
    match (anchor, ids.get(&target)) {
        (Some(a), Some(known)) if !a.is_empty() && !known.contains(a) => Some(format!(
            "no id {a:?} on {}",
            target.strip_prefix(book).unwrap_or(&target).display()
        )),
        _ => None,
    }
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Every value of attribute `name` in `html` (double-quoted, as mdBook writes them).
fn attr_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "html") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_page_a_missing_anchor_and_a_link_out_are_found() {
        let d = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("guide")).unwrap();
        std::fs::write(
            d.join("index.html"),
            r##"<a href="guide/a.html#top">a</a> <a href="guide/b.html">b</a> <a href="guide/a.html#nope">c</a> <a href="../x.html">d</a> <a href="https://example.org">e</a> <a href="#here">f</a><h1 id="here">x</h1>"##,
        )
        .unwrap();
        std::fs::write(d.join("guide/a.html"), r#"<h1 id="top">a</h1>"#).unwrap();
        let found = check(&d);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("guide/b.html") && found[0].contains("no such file"));
        assert!(found[1].contains("no id \"nope\""));
        assert!(found[2].contains("leaves the book"));
    }
}
