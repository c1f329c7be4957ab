//! `rudder policy check`'s warnings: the mistakes that load and run without an error
//! but do nothing. A function named like a hook that is not one (`on_epoch_ends`), a
//! decision key that does not exist in a map a hook returns, a parameter of
//! `fn params()` that nothing reads. (An unprefixed `--param` that reaches more than
//! one policy is warned of where parameters are applied, `crate::params`.)

use std::collections::HashSet;

use rhai::{AST, ASTNode, Expr, Map, Position, Stmt};

use super::convert::DECISION_KEYS;
use super::strict::Fns;
use crate::Hook;

/// A warning at a place in the policy's script.
pub(crate) struct Warning {
    pub pos: Position,
    pub message: String,
}

/// The warnings for a policy compiled to `ast`, declaring `params`, whose imported
/// modules' texts are `modules`.
pub(crate) fn lint(ast: &AST, params: &Map, modules: &[&str]) -> Vec<Warning> {
    let fns = Fns::of(ast);
    // A sweep policy's one hook counts as a hook.
    let hooks: Vec<&str> = Hook::ALL
        .iter()
        .map(|h| h.function())
        .chain([crate::hooks::ON_REPORT])
        .collect();
    let mut out = Vec::new();
    for f in ast.iter_fn_def() {
        let name = f.name.as_str();
        if hooks.contains(&name) || f.params.len() != 1 {
            continue;
        }
        if let Some(near) = crate::text::nearest(name, hooks.iter().copied()) {
            out.push(Warning {
                pos: f.body.start_position(),
                message: format!(
                    "fn {name} is not a hook, so it is never called; did you mean {near}?"
                ),
            });
        }
    }
    let mut read = HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(node) = path.last() else { return true };
        let in_params = fns
            .owner(node.position())
            .is_some_and(|i| fns.all[i].0 == "params" && fns.all[i].1.is_empty());
        let in_hook = fns
            .owner(node.position())
            .is_some_and(|i| hooks.contains(&fns.all[i].0.as_str()));
        match node {
            ASTNode::Expr(Expr::Property(p, _)) if !in_params => {
                read.insert(p.2.to_string());
            }
            ASTNode::Expr(Expr::StringConstant(s, _)) if !in_params => {
                read.insert(s.to_string());
            }
            ASTNode::Stmt(Stmt::Expr(e)) if in_hook => decision_keys(e, &mut out),
            ASTNode::Stmt(Stmt::Return(Some(e), ..)) if in_hook => decision_keys(e, &mut out),
            _ => {}
        }
        true
    });
    let declared = fns
        .all
        .iter()
        .find(|(n, p, ..)| n == "params" && p.is_empty());
    for key in params.keys() {
        let key = key.as_str();
        if !read.contains(key) && !modules.iter().any(|m| mentions(m, key)) {
            out.push(Warning {
                pos: declared.map_or(Position::NONE, |d| {
                    Position::new(d.2.0 as u16, d.2.1 as u16)
                }),
                message: format!("parameter {key} is declared in fn params() but never read"),
            });
        }
    }
    out.sort_by_key(|w| (w.pos.line(), w.pos.position()));
    out
}

/// A warning for each key of a map literal `e` that no decision has.
fn decision_keys(e: &Expr, out: &mut Vec<Warning>) {
    // rhai folds a map of constants into one constant value (its keys have no place).
    let keys: Vec<(String, Position)> = match e {
        Expr::Map(m, _) => {
            m.0.iter()
                .map(|(i, _)| (i.name.to_string(), i.pos))
                .collect()
        }
        Expr::DynamicConstant(v, pos) => match v.read_lock::<Map>() {
            Some(m) => m.keys().map(|k| (k.to_string(), *pos)).collect(),
            None => return,
        },
        _ => return,
    };
    for (key, pos) in keys {
        let key = key.as_str();
        if !DECISION_KEYS.contains(&key) {
            let near = crate::text::nearest(key, DECISION_KEYS.iter().copied())
                .map(|n| format!("; did you mean {n}?"))
                .unwrap_or_default();
            out.push(Warning {
                pos,
                message: format!(
                    "decision key {key} does not exist, so the decision will be rejected{near}"
                ),
            });
        }
    }
}

/// Whether `text` has `word` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(src: &str, params: &[&str], modules: &[&str]) -> Vec<String> {
        let ast = rhai::Engine::new().compile(src).unwrap();
        let mut m = Map::new();
        for p in params {
            m.insert((*p).into(), rhai::Dynamic::from_int(1));
        }
        lint(&ast, &m, modules)
            .into_iter()
            .map(|w| {
                format!(
                    "{}:{}: {}",
                    w.pos.line().unwrap_or(0),
                    w.pos.position().unwrap_or(0),
                    w.message
                )
            })
            .collect()
    }

    #[test]
    fn a_misspelled_hook_is_named() {
        let w = warnings(
            "fn on_epoch_ends(ctx) { #{ lr: 0.1 } }\nfn helper(x) { x }",
            &[],
            &[],
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(
                "fn on_epoch_ends is not a hook, so it is never called; did you mean on_epoch_end?"
            ),
            "{w:?}"
        );
    }

    #[test]
    fn a_decision_key_that_does_not_exist() {
        let src = "fn on_epoch_end(ctx) {\n  if ctx.epoch > 2 { return #{ stop: true, reasn: \"x\" }; }\n  #{ learning_rate: 0.1 }\n}\nfn helper() { #{ anything: 1 } }";
        let w = warnings(src, &[], &[]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("2:29: decision key reasn does not exist")
                && w[0].ends_with("did you mean reason?"),
            "{w:?}"
        );
        assert!(w[1].starts_with("3:3: decision key learning_rate"), "{w:?}");
    }

    #[test]
    fn a_parameter_nothing_reads() {
        let src = "fn params() { #{ patience: 3, factor: 0.5, mode: \"min\", common: 1 } }\nfn on_epoch_end(ctx) { let p = ctx.params; p.patience + ctx.params[\"mode\"] }";
        let w = warnings(
            src,
            &["patience", "factor", "mode", "common"],
            &["fn f(p) { p.common }"],
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("parameter factor is declared in fn params() but never read"),
            "{w:?}"
        );
        assert!(w[0].starts_with("1:"), "{w:?}");
    }
}
