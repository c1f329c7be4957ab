//! What a library crate may not hold: a way to end the process (`process::exit`:
//! exit codes are the binary's), the binary's error type (`AppError`) or its error
//! plumbing (`anyhow`), and a public function that returns `Result<_, String>`
//! (every library error is a typed enum). And every crate under the workspace's
//! lints (`missing_docs`, `unreachable_pub`, ...).

use std::path::Path;

use syn::visit::Visit;

use crate::source::{Module, is_test};

/// What `krate`'s library code holds that it may not.
pub(crate) fn check(root: &Path, krate: &str, modules: &[Module]) -> Vec<String> {
    let mut out = Vec::new();
    for m in modules {
        let mut v = Banned::default();
        for item in &m.items {
            v.visit_item(item);
        }
        let shown = m.file.strip_prefix(root).unwrap_or(&m.file).display();
        for (line, what) in v.found {
            out.push(format!(
                "{shown}:{line}: {krate} is a library crate: {what}"
            ));
        }
    }
    out
}

/// `manifest`'s `[lints] workspace = true`.
pub(crate) fn lints(root: &Path, krate: &str, manifest: &Path) -> Vec<String> {
    let shown = manifest.strip_prefix(root).unwrap_or(manifest).display();
    let text = match std::fs::read_to_string(manifest) {
        Ok(t) => t,
        Err(e) => return vec![format!("{shown}: {e}")],
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return vec![format!("{shown}: {e}")],
    };
    let inherits = table
        .get("lints")
        .and_then(|l| l.get("workspace"))
        .and_then(toml::Value::as_bool)
        == Some(true);
    if inherits {
        Vec::new()
    } else {
        vec![format!(
            "{shown}: {krate} does not take the workspace's lints ([lints] workspace = true)"
        )]
    }
}

#[derive(Default)]
struct Banned {
    found: Vec<(usize, String)>,
}

/// Whether `ty` is `Result<_, String>` (by any path to `Result`).
fn string_error(ty: &syn::Type) -> bool {
    let syn::Type::Path(p) = ty else {
        return false;
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    last.ident == "Result"
        && args.args.len() == 2
        && matches!(&args.args[1], syn::GenericArgument::Type(syn::Type::Path(e))
            if e.path.is_ident("String"))
}

impl Banned {
    fn signature(&mut self, vis: &syn::Visibility, sig: &syn::Signature) {
        if !matches!(vis, syn::Visibility::Public(_)) {
            return;
        }
        if let syn::ReturnType::Type(_, ty) = &sig.output
            && string_error(ty)
        {
            self.found.push((
                sig.ident.span().start().line,
                format!(
                    "pub fn {} returns Result<_, String>; give it a typed error",
                    sig.ident
                ),
            ));
        }
    }
}

impl<'ast> Visit<'ast> for Banned {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_test(&f.attrs) {
            return;
        }
        self.signature(&f.vis, &f.sig);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test(&f.attrs) {
            return;
        }
        self.signature(&f.vis, &f.sig);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let names: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = p
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        if names
            .windows(2)
            .any(|w| w[0] == "process" && w[1] == "exit")
        {
            self.found
                .push((line, "process::exit: exit codes are the binary's".into()));
        }
        if names.first().is_some_and(|n| n == "anyhow") {
            self.found
                .push((line, "anyhow: library errors are typed enums".into()));
        }
        if names.iter().any(|n| n == "AppError") {
            self.found
                .push((line, "AppError is the binary's error".into()));
        }
        syn::visit::visit_path(self, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_string_errors_and_the_binarys_error_are_found() {
        let code = "pub fn a() -> Result<(), String> { Ok(()) }\n\
                    fn private() -> Result<(), String> { Ok(()) }\n\
                    pub fn b() { std::process::exit(2) }\n\
                    pub fn c() -> Result<(), crate::AppError> { todo!() }\n\
                    #[cfg(test)] mod tests { fn t() { std::process::exit(0) } }\n";
        let m = Module {
            path: vec![],
            file: "lib.rs".into(),
            items: syn::parse_file(code).unwrap().items,
            text: std::sync::Arc::new(code.into()),
            whole_file: true,
        };
        let found = check(Path::new("."), "k", &[m]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("pub fn a returns Result<_, String>"));
        assert!(found[1].contains(":3:") && found[1].contains("process::exit"));
        assert!(found[2].contains("AppError"));
    }
}
