//! No import cycle between the modules of a crate. Every `use` and every path in
//! code that starts with `crate`, `super` or `self` is an edge from the module it is
//! in to the deepest module it names. A module and its own submodules are one unit
//! (a parent declares its children, a child sees `super`), so an edge between an
//! ancestor and its descendant is not counted; every other edge is lifted to the two
//! sibling modules under their lowest common ancestor, and a cycle among siblings is
//! an error.

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;

use crate::source::{Module, is_test};

/// An edge's place, for the message.
#[derive(Clone)]
struct Place {
    file: String,
    line: usize,
}

/// The cycles among sibling modules of `krate`, one message each.
pub(crate) fn cycles(krate: &str, modules: &[Module]) -> Vec<String> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    // parent -> (child a, child b) -> the first place a uses b.
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<(String, String), Place>> = BTreeMap::new();
    for m in modules {
        let mut v = Paths::default();
        for item in &m.items {
            v.visit_item(item);
        }
        for (segments, line) in v.found {
            let Some(target) = resolve(&m.path, &segments, &known) else {
                continue;
            };
            let Some((parent, a, b)) = lift(&m.path, &target) else {
                continue;
            };
            let place = Place {
                file: m.file.display().to_string(),
                line,
            };
            graphs
                .entry(parent)
                .or_default()
                .entry((a, b))
                .or_insert(place);
        }
    }
    let mut out = Vec::new();
    for (parent, edges) in &graphs {
        for scc in components(edges) {
            let at = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let uses: Vec<String> = edges
                .iter()
                .filter(|((a, b), _)| scc.contains(a) && scc.contains(b))
                .map(|((a, b), p)| format!("{a} -> {b} ({}:{})", p.file, p.line))
                .collect();
            out.push(format!(
                "{krate}: import cycle among the modules of {at}: {}",
                uses.join(", ")
            ));
        }
    }
    out
}

/// The module `segments` (a path used in module `from`) names: the longest prefix
/// that is a module of the crate.
fn resolve(
    from: &[String],
    segments: &[String],
    known: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = match segments.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => from.to_vec(),
        Some("super") => from.to_vec(),
        _ => return None,
    };
    let mut rest = &segments[1..];
    if segments[0] == "super" {
        base.pop();
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
    }
    let mut best = base.clone();
    let mut cur = base;
    for s in rest {
        cur.push(s.clone());
        if known.contains(&cur) {
            best = cur.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// The parent and the two sibling modules an edge `from -> to` is between; `None`
/// when one is the other's ancestor (or the same).
fn lift(from: &[String], to: &[String]) -> Option<(Vec<String>, String, String)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((
        from[..common].to_vec(),
        from[common].clone(),
        to[common].clone(),
    ))
}

/// The strongly connected components of more than one module (Tarjan's).
fn components(edges: &BTreeMap<(String, String), Place>) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    let mut t = Tarjan {
        next: &next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        n: 0,
        out: Vec::new(),
    };
    let nodes: Vec<&str> = next.keys().copied().collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

struct Tarjan<'a> {
    next: &'a BTreeMap<&'a str, Vec<&'a str>>,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on: BTreeSet<&'a str>,
    n: usize,
    out: Vec<BTreeSet<String>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, v: &'a str) {
        self.index.insert(v, self.n);
        self.low.insert(v, self.n);
        self.n += 1;
        self.stack.push(v);
        self.on.insert(v);
        for &w in &self.next[v] {
            if !self.index.contains_key(w) {
                self.visit(w);
                let l = self.low[v].min(self.low[w]);
                self.low.insert(v, l);
            } else if self.on.contains(w) {
                let l = self.low[v].min(self.index[w]);
                self.low.insert(v, l);
            }
        }
        if self.low[v] == self.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = self.stack.pop() {
                self.on.remove(w);
                scc.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                self.out.push(scc);
            }
        }
    }
}

/// Every `crate::`, `super::` and `self::` path of some items, with its line; test
/// code left out.
#[derive(Default)]
struct Paths {
    found: Vec<(Vec<String>, usize)>,
}

impl Paths {
    fn tree(&mut self, prefix: &mut Vec<String>, t: &syn::UseTree, line: usize) {
        match t {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                full.push(n.ident.to_string());
                self.found.push((full, line));
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.found.push((full, line));
            }
            syn::UseTree::Glob(_) => self.found.push((prefix.clone(), line)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.tree(prefix, t, line);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let line = u.use_token.span.start().line;
        self.tree(&mut Vec::new(), &u.tree, line);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            let line = p.segments[0].ident.span().start().line;
            self.found.push((segments, line));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
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

    fn module(path: &[&str], code: &str) -> Module {
        Module {
            path: path.iter().map(|s| s.to_string()).collect(),
            file: format!("{}.rs", path.join("/")).into(),
            items: syn::parse_file(code).unwrap().items,
            text: std::sync::Arc::new(code.to_string()),
            whole_file: true,
        }
    }

    #[test]
    fn a_cycle_between_siblings_is_found_and_a_parents_own_children_are_not_one() {
        let tree = [
            module(&[], "mod a; mod b; mod c; pub use a::A;"),
            module(&["a"], "use crate::b::B; pub struct A;"),
            module(&["b"], "pub struct B(crate::a::A); use super::c::C;"),
            module(&["c"], "pub struct C; fn f() { let _ = crate::A; }"),
        ];
        let found = cycles("k", &tree);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("a -> b") && found[0].contains("b -> a"),
            "{found:?}"
        );
        // c uses the crate root (its ancestor): no edge, no cycle with it.
        assert!(!found[0].contains("c ->"), "{found:?}");
    }

    #[test]
    fn a_child_using_its_parent_is_no_cycle_and_nested_cycles_are_found() {
        let tree = [
            module(&[], "mod p; mod q;"),
            module(&["p"], "mod x; mod y; pub struct P; use self::x::X;"),
            module(&["p", "x"], "use super::P; pub struct X; use super::y::Y;"),
            module(&["p", "y"], "pub struct Y; use crate::p::x::X;"),
            module(&["q"], "use crate::p::P;"),
        ];
        let found = cycles("k", &tree);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("modules of p:"), "{found:?}");
    }
}
