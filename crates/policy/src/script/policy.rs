//! One compiled policy: its AST in its own sandboxed engine, the hooks it defines, its
//! merged parameters and its `this` state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{AST, CallFnOptions, Dynamic, Engine, Map, Scope};

use super::error::ScriptError;
use super::find::{Located, SearchPath};
use super::host::{self, Budget};
use super::resolver::{Chain, Resolver};
use super::state;
use crate::Hook;

const HOOKS: [Hook; 6] = Hook::ALL;

pub(crate) struct Policy {
    pub name: String,
    pub file: PathBuf,
    engine: Engine,
    budget: Budget,
    /// The import graph of the load or call in progress.
    imports: Arc<Mutex<Chain>>,
    ast: AST,
    defined: [bool; 6],
    /// Defaults from `fn params()`, then `--param` values.
    pub params: Map,
    /// The state scripts keep in `this`; owned by the host.
    pub this: Dynamic,
    /// Every file the policy was built from (its script first).
    pub files: Vec<PathBuf>,
    /// Content hash of those files.
    pub version: String,
    /// Those files with their SHA-256, and the locked plugin it belongs to.
    pub provenance: crate::project::Provenance,
    /// The script's text, for placing errors rhai gives no position.
    source: String,
    /// Whether a call must run the top level first: only for its imports, which
    /// functions cannot see otherwise. Without imports the AST is its functions only.
    eval_top: bool,
    /// `params` as the read-only value `ctx.params` carries, built once.
    params_value: Dynamic,
    /// The `ctx` map of its last call, updated in place for the next
    /// ([`super::convert::ctx_cached`]).
    ctx_cache: Arc<Map>,
    /// Whether any of its files mentions `history`: `ctx.history` (a copy of the run's
    /// metrics so far, growing by an epoch each epoch) is built only for those.
    pub uses_history: bool,
    /// Whether its script has an `import` anywhere (a call then needs a fresh import
    /// graph).
    may_import: bool,
    /// The texts of the modules it imported, by file, for showing errors.
    module_texts: Arc<Mutex<std::collections::HashMap<String, Arc<str>>>>,
}

fn index(hook: Hook) -> usize {
    HOOKS
        .iter()
        .position(|h| *h == hook)
        .expect("every hook is listed")
}

/// FNV-1a over the sources' bytes, as 12 hex digits: the version in events.
pub(crate) fn content_hash(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().copied().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// Whether `ast` has an `import` statement (a hook may import at run time).
fn imports_at_run_time(ast: &AST) -> bool {
    let mut may_import = false;
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        may_import |= matches!(
            path.last(),
            Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(..)))
        );
        !may_import
    });
    may_import
}

/// Which hooks `ast` defines (in [`HOOKS`]' order), each with its one parameter
/// (`ctx`), and whether it has `fn params()`.
fn hooks_of(ast: &AST, file: &std::path::Path) -> Result<([bool; 6], bool), ScriptError> {
    let mut defined = [false; 6];
    let mut has_params = false;
    for f in ast.iter_functions() {
        if let Some(i) = HOOKS.iter().position(|h| h.function() == f.name) {
            if f.params.len() != 1 {
                return Err(ScriptError {
                    file: file.to_path_buf(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "{} must take one parameter (ctx), it takes {}",
                        f.name,
                        f.params.len()
                    ),
                });
            }
            defined[i] = true;
        }
        has_params |= f.name == "params" && f.params.is_empty();
    }
    Ok((defined, has_params))
}

/// A policy's provenance: its files (script first) with the SHA-256 of the bytes it
/// was built from, and its locked plugin's origin.
fn provenance_of(
    src: &Located,
    files: &[PathBuf],
    sources: &[Vec<u8>],
) -> crate::project::Provenance {
    crate::project::Provenance {
        policy: src.name.clone(),
        files: files
            .iter()
            .zip(sources)
            .map(|(f, b)| crate::project::FileHash {
                path: f.display().to_string(),
                sha256: crate::checksum::sha256(b),
            })
            .collect(),
        plugin: src.origin.clone(),
        params: serde_json::Map::new(),
    }
}

impl Policy {
    /// Compiles `src` (resolving its imports) and reads its `params()`.
    pub(crate) fn compile(src: Located, search: &SearchPath) -> Result<Policy, ScriptError> {
        let (mut engine, budget) = host::engine();
        let label = src.file.display().to_string();
        let resolver = Resolver::new(
            src.home.clone(),
            search.clone(),
            Some((src.file.as_path(), label.as_str())),
        );
        let imported = resolver.files.clone();
        let imports = resolver.chain.clone();
        let module_texts = resolver.texts.clone();
        engine.set_module_resolver(resolver.clone());
        // Imported modules' top-level code runs now, under a budget.
        budget.start();
        let mut ast = engine
            .compile_with_scope(&Scope::new(), &src.source)
            .map_err(|e| ScriptError::from_eval(&src.file, &e.into()))?;
        ast.set_source(label.as_str());
        resolver.preload(&engine, &ast).map_err(|e| {
            let err = ScriptError::from_eval(&src.file, &e);
            // A refused or missing import may have no place: find the import's path.
            let needle = err
                .message
                .split('"')
                .nth(1)
                .map(|p| format!("\"{p}\""))
                .unwrap_or_else(|| "import".into());
            err.or_place(&src.source, &needle)
        })?;
        let (defined, has_params) = hooks_of(&ast, &src.file)?;
        let mut files = vec![src.file.clone()];
        files.extend(imported.lock().expect("resolver lock").iter().cloned());
        let eval_top = files.len() > 1;
        files.extend(src.manifest.iter().cloned());
        if !eval_top {
            ast = ast.clone_functions_only();
        }
        let sources: Vec<Vec<u8>> = std::iter::once(src.source.clone().into_bytes())
            .chain(files[1..].iter().map(|f| {
                rudder_core::input::read(f, crate::limits::MAX_SOURCE).unwrap_or_default()
            }))
            .collect();
        let version = content_hash(&sources.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let provenance = provenance_of(&src, &files, &sources);
        let may_import = imports_at_run_time(&ast);
        let uses_history = sources
            .iter()
            .any(|t| t.windows(7).any(|w| w == b"history"));
        let mut policy = Policy {
            name: src.name.clone(),
            file: src.file,
            engine,
            budget,
            imports,
            ast,
            defined,
            params: Map::new(),
            this: Dynamic::from_map(Map::new()),
            files,
            version,
            provenance,
            source: src.source,
            eval_top,
            params_value: Dynamic::UNIT,
            ctx_cache: Arc::new(Map::new()),
            uses_history,
            module_texts,
            may_import,
        };
        if has_params {
            policy.params = policy.declared_params()?;
        }
        super::strict::check(&policy.ast, &policy.name, &policy.params)
            .map_err(|(pos, message)| ScriptError::new(&policy.file, pos, message))?;
        policy.set_params(policy.params.clone());
        Ok(policy)
    }

    /// What `fn params()` returns: a map of parameters with their defaults.
    fn declared_params(&mut self) -> Result<Map, ScriptError> {
        let v = self.call_raw("params", ())?;
        v.try_cast::<Map>().ok_or_else(|| ScriptError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            message: "fn params() must return a map of parameters with their defaults".into(),
        })
    }

    /// The text `file` (this policy's script or one of its modules) was compiled from.
    pub(crate) fn source_of(&self, file: &std::path::Path) -> Option<Arc<str>> {
        if file == self.file {
            return Some(Arc::from(self.source.as_str()));
        }
        self.module_texts
            .lock()
            .expect("module texts lock")
            .get(&file.display().to_string())
            .cloned()
    }

    /// `policy check`'s warnings for it (`super::lint`), placed in its script.
    pub(crate) fn lint(&self) -> Vec<ScriptError> {
        let texts = self.module_texts.lock().expect("module texts lock");
        let modules: Vec<&str> = texts.values().map(|t| &**t).collect();
        super::lint::lint(&self.ast, &self.params, &modules)
            .into_iter()
            .map(|w| ScriptError::new(&self.file, w.pos, w.message))
            .collect()
    }

    /// Replaces the merged parameters.
    pub(crate) fn set_params(&mut self, params: Map) {
        // A getter per parameter, as `ctx`'s fields have (`super::strict::register`).
        for key in params.keys() {
            super::strict::register_field(&mut self.engine, key);
        }
        self.params_value = super::strict::View::params(&self.name, params.clone());
        self.params = params;
    }

    /// The script's text.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// `ctx.params`.
    pub(crate) fn params_value(&self) -> &Dynamic {
        &self.params_value
    }

    /// The `ctx` its hook sees for `c`, with the run's `history` (see
    /// [`super::convert::ctx_cached`]).
    pub(crate) fn ctx_value(&mut self, c: &crate::Ctx, history: &Dynamic) -> Dynamic {
        super::convert::ctx_cached(&mut self.ctx_cache, c, &self.params_value, history)
    }

    /// The functions of the hooks it defines, in run order.
    pub(crate) fn hooks(&self) -> Vec<&'static str> {
        HOOKS
            .into_iter()
            .filter(|h| self.defines(*h))
            .map(Hook::function)
            .collect()
    }

    pub(crate) fn defines(&self, hook: Hook) -> bool {
        self.defined[index(hook)]
    }

    /// Calls `name` under a fresh budget. A call that fails, or leaves a `this` that
    /// cannot be kept (the book's Limits page, docs/src/reference/limits.md), changes
    /// nothing: `this` is put back.
    fn call_raw(&mut self, name: &str, args: impl rhai::FuncArgs) -> Result<Dynamic, ScriptError> {
        // An empty `this` (most schedules keep nothing) needs no copy.
        let before = (!self.this.read_lock::<Map>().is_some_and(|m| m.is_empty()))
            .then(|| self.this.clone());
        if self.may_import {
            self.imports.lock().expect("import chain lock").reset();
        }
        self.budget.start();
        let opts = CallFnOptions::new()
            .eval_ast(self.eval_top)
            .rewind_scope(true)
            .bind_this_ptr(&mut self.this);
        let result = self
            .engine
            .call_fn_with_options::<Dynamic>(opts, &mut Scope::new(), &self.ast, name, args)
            .map_err(|e| ScriptError::from_eval(&self.file, &e))
            .and_then(|v| {
                state::check(&self.this)
                    .map(|()| v)
                    .map_err(|message| ScriptError {
                        file: self.file.clone(),
                        line: 0,
                        column: 0,
                        message,
                    })
            });
        if result.is_err() {
            self.this = before.unwrap_or_else(|| Dynamic::from_map(Map::new()));
        }
        result
    }

    /// Whether its script defines `name` taking `params` parameters.
    pub(crate) fn defines_fn(&self, name: &str, params: usize) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == params)
    }

    /// Calls `name` with one argument; the raw value it returned.
    pub(crate) fn call_fn(&mut self, name: &str, arg: Dynamic) -> Result<Dynamic, ScriptError> {
        self.call_raw(name, (arg,)).map_err(|e| {
            // Budgets have no place in rhai's errors: point at the function that ran out.
            if e.line == 0 && e.file == self.file {
                e.or_place(&self.source, &format!("fn {name}"))
            } else {
                e
            }
        })
    }

    /// Calls `hook` with `ctx`; the raw value it returned.
    pub(crate) fn call(&mut self, hook: Hook, ctx: Dynamic) -> Result<Dynamic, ScriptError> {
        self.call_fn(hook.function(), ctx)
    }
}
