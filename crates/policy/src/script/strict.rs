//! The strict `ctx`: reading a field that does not exist is an error naming it and the
//! nearest real name, at run time (`ctx` is a [`View`], not a map) and, statically,
//! when a policy loads (`check`). `ctx.params.KEY` is held to the policy's
//! `fn params()` and `ctx.best.KEY` to the best's fields the same way. A field that
//! exists but has no value yet (`val_loss` before the first epoch) is `()`; `this`
//! stays a free map.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use rhai::{AST, ASTNode, Dynamic, Engine, EvalAltResult, Expr, Map, Position, Stmt};

use crate::Hook;

/// The fields of `ctx` that are not metrics (the book's Hooks and ctx page).
const SETTING_FIELDS: [&str; 18] = [
    "epoch",
    "epoch_number",
    "epochs",
    "step",
    "steps_per_epoch",
    "lr",
    "base_lr",
    "batch_size",
    "base_batch_size",
    "accumulation",
    "momentum",
    "weight_decay",
    "optimizer",
    "dataset_size",
    "best",
    "history",
    "params",
    "resumed",
];

/// Every field of `ctx`: the settings' and the metrics' ([`crate::METRIC_NAMES`]).
pub(crate) static FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    SETTING_FIELDS
        .into_iter()
        .chain(crate::METRIC_NAMES)
        .collect()
});

/// The fields of `ctx.best`.
pub(crate) const BEST_FIELDS: &[&str] = &["val_loss", "val_acc", "epoch"];

/// What a [`View`] is a view of, for its messages.
#[derive(Clone, Debug)]
enum What {
    Ctx,
    Best,
    /// A policy's parameters, with the policy's name.
    Params(Arc<str>),
}

/// A map whose unknown keys are errors to read: `ctx`, `ctx.best`, `ctx.params`.
/// Scripts read it as a map (`ctx.lr`, `ctx["val_loss"]`, `keys`, `in`, `get`,
/// `to_map`, `to_json`); `get` is the lenient read (`()` for an unknown key).
#[derive(Clone, Debug)]
pub(crate) struct View {
    map: Arc<Map>,
    what: What,
}

impl View {
    /// `ctx` over a map shared with the policy's cache ([`super::convert::ctx_cached`]).
    pub(crate) fn ctx_shared(map: Arc<Map>) -> Dynamic {
        Dynamic::from(View {
            map,
            what: What::Ctx,
        })
    }

    /// Changes its map (copied first if another value shares it).
    pub(crate) fn update(&mut self, f: impl FnOnce(&mut Map)) {
        f(Arc::make_mut(&mut self.map));
    }

    /// `ctx.best` over `map`.
    pub(crate) fn best(map: Map) -> Dynamic {
        Dynamic::from(View {
            map: Arc::new(map),
            what: What::Best,
        })
    }

    /// `ctx.params` of `policy`.
    pub(crate) fn params(policy: &str, map: Map) -> Dynamic {
        Dynamic::from(View {
            map: Arc::new(map),
            what: What::Params(Arc::from(policy)),
        })
    }

    fn read(&self, key: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        match self.map.get(key) {
            Some(v) => Ok(v.clone()),
            None => {
                let names: Vec<&str> = self.map.keys().map(|k| k.as_str()).collect();
                Err(unknown(&self.what, key, &names).into())
            }
        }
    }
}

/// The message for `key` missing from a view of `what` whose keys are `names`.
fn unknown(what: &What, key: &str, names: &[&str]) -> String {
    let key = crate::text::clip(key);
    let near = crate::text::nearest(&key, names.iter().copied())
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    match what {
        What::Ctx => format!("ctx.{key}: no such field{near}"),
        What::Best => format!("ctx.best.{key}: no such field{near}"),
        What::Params(p) if names.is_empty() => {
            format!("ctx.params.{key}: policy {p} declares no parameters (fn params())")
        }
        What::Params(p) => {
            format!("ctx.params.{key}: policy {p} declares no parameter {key}{near}")
        }
    }
}

/// A getter of field `name` on every [`View`] (a view without it gives the same
/// error as the indexer).
pub(crate) fn register_field(e: &mut Engine, name: &str) {
    let key: rhai::ImmutableString = name.into();
    e.register_get(name, move |v: &mut View| v.read(&key));
}

/// Registers [`View`] and what scripts may do with it.
pub(crate) fn register(e: &mut Engine) {
    // A getter per field of `ctx` and `ctx.best`: `ctx.lr` then resolves at the first
    // try, not after the property lookup fails and the indexer is tried.
    for name in FIELDS.iter().chain(BEST_FIELDS).copied() {
        register_field(e, name);
    }
    e.register_type_with_name::<View>("ctx")
        .register_indexer_get(|v: &mut View, k: &str| v.read(k))
        // A script's own copy may be written (`ctx.epoch = 5`): nothing outside it
        // changes, as with any value passed to a function.
        .register_indexer_set(|v: &mut View, k: &str, x: Dynamic| {
            Arc::make_mut(&mut v.map).insert(k.into(), x);
        })
        .register_fn("get", |v: &mut View, k: &str| {
            v.map.get(k).cloned().unwrap_or(Dynamic::UNIT)
        })
        .register_fn("contains", |v: &mut View, k: &str| v.map.contains_key(k))
        .register_fn("keys", |v: &mut View| -> rhai::Array {
            v.map.keys().map(|k| Dynamic::from(k.clone())).collect()
        })
        .register_fn("values", |v: &mut View| -> rhai::Array {
            v.map.values().cloned().collect()
        })
        .register_fn("len", |v: &mut View| v.map.len() as rhai::INT)
        .register_fn("is_empty", |v: &mut View| v.map.is_empty())
        .register_fn("to_map", |v: &mut View| plain(v))
        .register_fn("to_json", |v: &mut View| {
            rhai::format_map_as_json(&plain(v))
        })
        .register_fn("to_string", |v: &mut View| {
            Dynamic::from_map(plain(v)).to_string()
        })
        .register_fn("to_debug", |v: &mut View| {
            format!("{:?}", Dynamic::from_map(plain(v)))
        });
}

/// A view as a plain map, nested views included.
fn plain(v: &View) -> Map {
    v.map
        .iter()
        .map(|(k, x)| {
            let x = match x.read_lock::<View>() {
                Some(inner) => Dynamic::from_map(plain(&inner)),
                None => x.clone(),
            };
            (k.clone(), x)
        })
        .collect()
}

/// The first fault of `ctx.FIELD`, `ctx["FIELD"]`, `ctx.best.FIELD` and
/// `ctx.params.KEY` (also through `let p = ctx.params;`) in `ast`'s functions: in each
/// hook its parameter, in any other function a parameter named `ctx` or one that is
/// passed a `ctx` (`helper(ctx)`). `params` is what `fn params()` declares.
pub(crate) fn check(ast: &AST, policy: &str, params: &Map) -> Result<(), (Position, String)> {
    let declared: Vec<&str> = params.keys().map(|k| k.as_str()).collect();
    let params_what = What::Params(Arc::from(policy));
    let fns = Fns::of(ast);
    let ctx = fns.ctx_parameters(ast);
    let aliases = fns.param_aliases(ast, &ctx);
    let mut fault = None;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(e)) = path.last()
            && let Some(i) = fns.owner(e.position())
            && let Some(name) = &ctx[i]
        {
            fault = fault_in(e, name, &aliases[i], &declared, &params_what);
        }
        fault.is_none()
    });
    fault.map_or(Ok(()), Err)
}

/// A script's functions by the span of their bodies (rhai gives no walk of one
/// function, so a node belongs to the innermost function whose body holds its place).
pub(super) struct Fns {
    /// Name, parameters, first and last place of the body.
    pub(super) all: Vec<(String, Vec<String>, Place, Place)>,
}

pub(super) type Place = (usize, usize);

fn place(p: Position) -> Option<Place> {
    Some((p.line()?, p.position().unwrap_or(0)))
}

impl Fns {
    pub(super) fn of(ast: &AST) -> Fns {
        let all = ast
            .iter_fn_def()
            .filter_map(|f| {
                let span = (
                    place(f.body.start_position())?,
                    place(f.body.end_position())?,
                );
                let params = f.params.iter().map(|p| p.to_string()).collect();
                Some((f.name.to_string(), params, span.0, span.1))
            })
            .collect();
        Fns { all }
    }

    /// The innermost function whose body holds `pos`.
    pub(super) fn owner(&self, pos: Position) -> Option<usize> {
        let at = place(pos)?;
        self.all
            .iter()
            .enumerate()
            .filter(|(_, (.., start, end))| *start <= at && at <= *end)
            .min_by_key(|(_, (.., start, end))| (end.0 - start.0, end.1.abs_diff(start.1)))
            .map(|(i, _)| i)
    }

    /// The parameter that holds `ctx` in each function, if any: a hook's one
    /// parameter, a parameter named `ctx`, and the parameter of a function another such
    /// function calls with its `ctx`, to a fixed point.
    fn ctx_parameters(&self, ast: &AST) -> Vec<Option<String>> {
        let mut ctx: Vec<Option<String>> = self
            .all
            .iter()
            .map(|(name, params, ..)| {
                let hook = Hook::ALL.iter().any(|h| h.function() == name);
                if hook {
                    params.first().cloned()
                } else {
                    params.iter().find(|p| *p == "ctx").cloned()
                }
            })
            .collect();
        loop {
            let mut found = Vec::new();
            ast.walk(&mut |path: &[ASTNode]| {
                let call = match path.last() {
                    Some(ASTNode::Expr(Expr::FnCall(call, pos)))
                    | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, *pos)),
                    _ => None,
                };
                if let Some((call, pos)) = call
                    && let Some(Some(name)) = self.owner(pos).map(|i| &ctx[i])
                    && let Some(arg) = call.args.iter().position(|a| var_name(a) == Some(name))
                {
                    found.push((call.name.to_string(), call.args.len(), arg));
                }
                true
            });
            let mut grew = false;
            for (callee, arity, arg) in found {
                for (i, (name, params, ..)) in self.all.iter().enumerate() {
                    if *name == callee && params.len() == arity && ctx[i].is_none() {
                        ctx[i] = Some(params[arg].clone());
                        grew = true;
                    }
                }
            }
            if !grew {
                return ctx;
            }
        }
    }

    /// The variables bound by `let X = ctx.params;` in each function.
    fn param_aliases(&self, ast: &AST, ctx: &[Option<String>]) -> Vec<HashSet<String>> {
        let mut out = vec![HashSet::new(); self.all.len()];
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Var(x, _, pos))) = path.last()
                && let Some(i) = self.owner(*pos)
                && let Some(name) = &ctx[i]
            {
                let (ident, init, _) = &**x;
                if let Expr::Dot(d, ..) = init
                    && var_name(&d.lhs) == Some(name)
                    && matches!(&d.rhs, Expr::Property(p, _) if p.2.as_str() == "params")
                {
                    out[i].insert(ident.name.to_string());
                }
            }
            true
        });
        out
    }
}

fn var_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Variable(x, ..) => Some(x.1.as_str()),
        _ => None,
    }
}

/// The first name of a chain (`a` of `a.b[0].c`) and its place, if a property.
fn head(e: &Expr) -> Option<(&str, Position)> {
    match e {
        Expr::Property(p, pos) => Some((p.2.as_str(), *pos)),
        Expr::Dot(x, ..) | Expr::Index(x, ..) => head(&x.lhs),
        _ => None,
    }
}

/// A string-constant index (`["KEY"]`) and its place.
fn constant(e: &Expr) -> Option<(&str, Position)> {
    match e {
        Expr::StringConstant(s, pos) => Some((s.as_str(), *pos)),
        _ => None,
    }
}

/// The key read from a view by the rest of a chain `rest` (after `view.`): its head
/// property, or `view["KEY"]`.
fn key_of(rest: &Expr) -> Option<(&str, Position)> {
    head(rest)
}

fn fault_in(
    e: &Expr,
    ctx: &str,
    aliases: &HashSet<String>,
    declared: &[&str],
    params_what: &What,
) -> Option<(Position, String)> {
    let (x, dotted) = match e {
        Expr::Dot(x, ..) => (x, true),
        Expr::Index(x, ..) => (x, false),
        _ => return None,
    };
    let name = var_name(&x.lhs)?;
    let miss = |what: &What, key: &str, pos: Position, names: &[&str]| {
        (!names.contains(&key)).then(|| (pos, unknown(what, key, names)))
    };
    if aliases.contains(name) && name != ctx {
        let (key, pos) = if dotted {
            key_of(&x.rhs)?
        } else {
            constant(&x.rhs)?
        };
        return miss(params_what, key, pos, declared);
    }
    if name != ctx {
        return None;
    }
    let (field, pos) = if dotted {
        key_of(&x.rhs)?
    } else {
        constant(&x.rhs)?
    };
    if let Some(f) = miss(&What::Ctx, field, pos, &FIELDS) {
        return Some(f);
    }
    // `ctx.params.KEY`, `ctx.best.KEY`, `ctx.params["KEY"]`.
    let next = match &x.rhs {
        Expr::Dot(y, ..) if dotted => key_of(&y.rhs),
        Expr::Index(y, ..) if dotted => constant(&y.rhs),
        _ => None,
    };
    let (key, pos) = next?;
    match field {
        "params" => miss(params_what, key, pos, declared),
        "best" => miss(&What::Best, key, pos, BEST_FIELDS),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(src: &str, params: &[&str]) -> Option<String> {
        let ast = Engine::new().compile(src).unwrap();
        let mut m = Map::new();
        for p in params {
            m.insert((*p).into(), Dynamic::from_int(1));
        }
        check(&ast, "my/policy", &m).err().map(|(pos, msg)| {
            format!(
                "{}:{}: {msg}",
                pos.line().unwrap_or(0),
                pos.position().unwrap_or(0)
            )
        })
    }

    #[test]
    fn the_fields_checked_are_the_fields_a_hook_sees() {
        let ctx = crate::Ctx::new(crate::Settings::new(0.1, 8), 100);
        let seen = super::super::convert::ctx_map(&ctx, &Dynamic::UNIT, &Dynamic::UNIT);
        let mut seen: Vec<String> = seen
            .cast::<View>()
            .map
            .keys()
            .map(|k| k.to_string())
            .collect();
        let mut fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
        seen.sort();
        fields.sort();
        assert_eq!(seen, fields);
    }

    #[test]
    fn a_misspelled_field_is_named_with_the_nearest() {
        let src =
            "fn on_epoch_end(ctx) {\n  if ctx.val_los < this.best { #{ lr: ctx.lr / 2.0 } }\n}";
        assert_eq!(
            fault(src, &[]).as_deref(),
            Some("2:10: ctx.val_los: no such field; did you mean val_loss?")
        );
    }

    #[test]
    fn every_way_of_reading_a_field_is_checked() {
        assert_eq!(fault("fn on_step(c) { c.lr + c.base_lr }", &[]), None);
        assert!(
            fault("fn on_step(c) { c[\"lrr\"] }", &[])
                .unwrap()
                .contains("ctx.lrr")
        );
        assert!(
            fault("fn on_step(ctx) { ctx.best.val_acc + ctx.best.epoc }", &[])
                .unwrap()
                .contains("ctx.best.epoc: no such field; did you mean epoch?")
        );
        assert!(
            fault("fn helper(ctx) { ctx.stepp }", &[])
                .unwrap()
                .contains("ctx.stepp")
        );
        assert_eq!(fault("fn helper(x) { x.stepp }", &[]), None);
        let through = "fn on_step(ctx) { a(1, ctx) }\nfn a(n, c) { b(c) }\nfn b(x) { x.stepp }";
        assert!(fault(through, &[]).unwrap().starts_with("3:13: ctx.stepp"));
        assert_eq!(
            fault(
                "fn on_step(ctx) { ctx.history[0].val_los; ctx[ctx.params.k] }",
                &["k"]
            ),
            None
        );
    }

    #[test]
    fn params_are_held_to_fn_params() {
        let src = "fn on_step(ctx) { let p = ctx.params; p.patience + p.factr }";
        assert!(fault(src, &["patience", "factor"]).unwrap().contains(
            "ctx.params.factr: policy my/policy declares no parameter factr; did you mean factor?"
        ));
        assert!(
            fault("fn on_step(ctx) { ctx.params.T_mx }", &["T_max"])
                .unwrap()
                .contains("did you mean T_max?")
        );
        assert!(
            fault("fn on_step(ctx) { ctx.params.x }", &[])
                .unwrap()
                .contains("declares no parameters")
        );
        assert_eq!(
            fault(
                "fn on_step(ctx) { ctx.params.keys().len() + ctx.params[\"k\"] }",
                &["k"]
            ),
            None
        );
    }
}
