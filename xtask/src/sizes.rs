//! No source file over [`MAX_FILE`] lines and no function over [`MAX_FN`], tests
//! aside (a `tests.rs`, a file under `tests/`, an inline `#[cfg(test)]` module and
//! `#[test]` functions do not count).

use std::collections::BTreeSet;
use std::path::Path;

use syn::spanned::Spanned;
use syn::visit::Visit;

use crate::source::{Module, is_test};

/// The most lines of a source file.
pub(crate) const MAX_FILE: usize = 500;
/// The most lines of a function, its signature and braces included.
pub(crate) const MAX_FN: usize = 80;

/// Files over [`MAX_FILE`] lines and functions over [`MAX_FN`] among `modules`.
pub(crate) fn check(root: &Path, modules: &[Module]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for m in modules {
        let shown = m
            .file
            .strip_prefix(root)
            .unwrap_or(&m.file)
            .display()
            .to_string();
        let test_file = m.file.file_name().is_some_and(|n| n == "tests.rs")
            || m.file.components().any(|c| c.as_os_str() == "tests");
        if test_file {
            continue;
        }
        if m.whole_file && seen.insert(m.file.clone()) {
            let lines = m.text.lines().count() - test_lines(&m.text);
            if lines > MAX_FILE {
                out.push(format!(
                    "{shown}: {lines} lines (tests aside), more than {MAX_FILE}"
                ));
            }
        }
        let mut v = Fns::default();
        for item in &m.items {
            v.visit_item(item);
        }
        for (name, line, len) in v.long {
            out.push(format!(
                "{shown}:{line}: fn {name} is {len} lines, more than {MAX_FN}"
            ));
        }
    }
    out
}

/// The lines of a file's inline `#[cfg(test)]` modules.
fn test_lines(text: &str) -> usize {
    let Ok(file) = syn::parse_file(text) else {
        return 0;
    };
    file.items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) if is_test(&m.attrs) && m.content.is_some() => {
                Some(m.span().end().line + 1 - m.span().start().line)
            }
            _ => None,
        })
        .sum()
}

/// Functions longer than [`MAX_FN`]: name, first line, lines.
#[derive(Default)]
struct Fns {
    long: Vec<(String, usize, usize)>,
}

impl Fns {
    fn measure(&mut self, name: String, attrs: &[syn::Attribute], span: proc_macro2::Span) {
        if is_test(attrs) {
            return;
        }
        let (a, b) = (span.start().line, span.end().line);
        let len = b + 1 - a;
        if len > MAX_FN {
            self.long.push((name, a, len));
        }
    }
}

impl<'ast> Visit<'ast> for Fns {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.measure(f.sig.ident.to_string(), &f.attrs, f.span());
        if !is_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.measure(f.sig.ident.to_string(), &f.attrs, f.span());
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if f.default.is_some() {
            self.measure(f.sig.ident.to_string(), &f.attrs, f.span());
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_function_is_found_and_a_long_test_is_not() {
        let body = "    let _ = 1;\n".repeat(90);
        let code = format!(
            "fn long() {{\n{body}}}\n#[test]\nfn long_test() {{\n{body}}}\nfn short() {{}}\n"
        );
        let m = Module {
            path: vec![],
            file: "x.rs".into(),
            items: syn::parse_file(&code).unwrap().items,
            text: std::sync::Arc::new(code.clone()),
            whole_file: true,
        };
        let found = check(Path::new("."), &[m]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("fn long is 92 lines"), "{found:?}");
    }
}
