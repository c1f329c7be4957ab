//! `import` for policies: a relative path (no `..`, not absolute), looked up in the
//! importing policy's own folder, then on the search path, and read only if its real
//! (canonical) path lies inside the folder it was found in: a symlink that leads out is
//! refused by its name, and no byte of its target is read. Every import is an edge of
//! the policy's import graph, so a cycle is refused, naming it
//! (`a.rhai -> b.rhai -> a.rhai`), before it recurses: at load (every import with a
//! constant path, also inside functions) and when a hook imports at run time. A
//! module's top-level code runs once, under the budget of the load or call that first
//! imports it, and the module is kept for the policy's later imports of it. Every file
//! read is recorded, so a reload can watch it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{
    AST, ASTNode, Engine, EvalAltResult, Expr, GlobalRuntimeState, Module, ModuleResolver,
    Position, Scope, Shared, Stmt,
};

use super::find::SearchPath;
use super::source::read_source;
use crate::contain::{Escape, real_inside};

/// The policy's import graph while it loads or runs a call.
#[derive(Default)]
pub(crate) struct Chain {
    /// Real paths of the modules whose top level is being evaluated, innermost last.
    loading: Vec<PathBuf>,
    /// `importer -> imported` (real paths) seen in this load or call.
    edges: Vec<(PathBuf, PathBuf)>,
    /// Source labels (the policy's file, each module's path as found) to real paths.
    real: HashMap<String, PathBuf>,
    /// Real paths to the names shown in messages.
    shown: HashMap<PathBuf, String>,
    root: Option<PathBuf>,
}

impl Chain {
    /// A new graph for a load or a call.
    pub(crate) fn reset(&mut self) {
        self.loading.clear();
        self.edges.clear();
    }

    fn label(&mut self, real: &Path, shown: &str) {
        self.real.insert(shown.to_string(), real.to_path_buf());
        self.shown.insert(real.to_path_buf(), shown.to_string());
    }

    fn importer(&self, source: Option<&str>) -> Option<PathBuf> {
        self.loading
            .last()
            .cloned()
            .or_else(|| source.and_then(|s| self.real.get(s).cloned()))
            .or_else(|| self.root.clone())
    }

    fn name(&self, p: &Path) -> String {
        self.shown
            .get(p)
            .cloned()
            .unwrap_or_else(|| p.display().to_string())
    }

    /// Records `from -> to`; the cycle it closes, if any, as `a -> b -> a`.
    fn add(&mut self, from: PathBuf, to: PathBuf) -> Result<(), String> {
        self.edges.push((from.clone(), to.clone()));
        // A path to -> ... -> from closes the cycle.
        let mut stack = vec![vec![to.clone()]];
        let mut seen = vec![to.clone()];
        while let Some(path) = stack.pop() {
            let last = path.last().expect("paths are not empty");
            if *last == from {
                let mut names: Vec<String> = path.iter().map(|p| self.name(p)).collect();
                names.push(self.name(&to));
                return Err(names.join(" -> "));
            }
            for (a, b) in &self.edges {
                if a == last && !seen.contains(b) {
                    seen.push(b.clone());
                    let mut next = path.clone();
                    next.push(b.clone());
                    stack.push(next);
                }
            }
        }
        Ok(())
    }
}

/// Resolves imports for one policy; a clone shares everything.
#[derive(Clone)]
pub(crate) struct Resolver {
    /// The importing policy's folder (`None` for an embedded policy).
    home: Option<PathBuf>,
    search: SearchPath,
    /// Files this policy was built from, besides its own script.
    pub(crate) files: Arc<Mutex<Vec<PathBuf>>>,
    /// The import graph, shared with the policy (which resets it per load and call).
    pub(crate) chain: Arc<Mutex<Chain>>,
    /// Modules loaded so far, by real path.
    loaded: Arc<Mutex<HashMap<PathBuf, Shared<Module>>>>,
    /// Their texts, by the name errors give them, for showing an error's line.
    pub(crate) texts: Arc<Mutex<HashMap<String, Arc<str>>>>,
}

/// A refusal with a place: the import statement in the importing file.
fn refused(message: String, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), pos))
}

impl Resolver {
    /// `root`: the policy's file and the label its AST carries.
    pub(crate) fn new(
        home: Option<PathBuf>,
        search: SearchPath,
        root: Option<(&Path, &str)>,
    ) -> Resolver {
        let mut chain = Chain::default();
        if let Some((file, label)) = root {
            let real = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
            chain.label(&real, label);
            chain.root = Some(real);
        }
        Resolver {
            home,
            search,
            files: Arc::default(),
            chain: Arc::new(Mutex::new(chain)),
            loaded: Arc::default(),
            texts: Arc::default(),
        }
    }

    /// Loads every import of `ast` whose path is a constant (at its top level and in
    /// its functions), so a missing module, a refused one or a cycle is found now.
    pub(crate) fn preload(&self, engine: &Engine, ast: &AST) -> Result<(), Box<EvalAltResult>> {
        let mut imports = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Import(x, _))) = path.last()
                && let Expr::StringConstant(s, pos) = &x.0
            {
                imports.push((s.to_string(), *pos));
            }
            true
        });
        for (path, pos) in imports {
            self.resolve_in(engine, None, &path, pos)?;
        }
        Ok(())
    }

    /// The module file for `path`: `(as found, real path)`.
    fn locate(&self, path: &str) -> Result<Option<(PathBuf, PathBuf)>, String> {
        let rel = Path::new(path);
        if rel.is_absolute() || path.starts_with('/') || path.starts_with('\\') {
            return Err(format!(
                "import of an absolute path is not allowed: {path:?}"
            ));
        }
        if rel.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::Prefix(_) | Component::RootDir
            )
        }) {
            return Err(format!(
                "import outside the policy's folder and the search path is not allowed: {path:?}"
            ));
        }
        let file = if rel.extension().is_some() {
            rel.to_path_buf()
        } else {
            rel.with_extension("rhai")
        };
        let mut dirs: Vec<(&Path, &Path)> = self
            .home
            .iter()
            .map(|h| (h.as_path(), file.as_path()))
            .collect();
        let in_plugin = self.plugin_import(path, &file)?;
        dirs.extend(in_plugin.as_ref().map(|(h, f)| (h.as_path(), f.as_path())));
        dirs.extend(
            self.search
                .dirs()
                .iter()
                .map(|d| (d.as_path(), file.as_path())),
        );
        for (dir, file) in dirs {
            // The folder of `x.rhai` is `""`: the working folder.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let found = dir.join(file);
            // A dangling link is there too (and refused below).
            if std::fs::symlink_metadata(&found).is_err() {
                continue;
            }
            let real = match real_inside(dir, &found) {
                Ok(real) => real,
                Err(Escape::Broken) => {
                    return Err(format!(
                        "import {path:?}: {} is a broken link",
                        found.display()
                    ));
                }
                Err(Escape::Outside) => {
                    return Err(format!(
                        "import {path:?}: {} leads outside {} through a symlink",
                        found.display(),
                        dir.display()
                    ));
                }
            };
            // `./x.rhai` is shown as `x.rhai`.
            let found = found
                .strip_prefix(".")
                .map_or(found.clone(), Path::to_path_buf);
            return Ok(Some((found, real)));
        }
        Ok(None)
    }

    /// `PLUGIN/MODULE` in a locked plugin's folder: (its folder, the module's file
    /// there). A plugin's scripts may import only from itself and the plugins its
    /// manifest declares; a project's own scripts from any locked plugin.
    fn plugin_import(&self, path: &str, file: &Path) -> Result<Option<(PathBuf, PathBuf)>, String> {
        let Some((first, _)) = path.split_once('/') else {
            return Ok(None);
        };
        let Some(target) = self.search.plugin(first) else {
            return Ok(None);
        };
        let own = self.home.as_deref().and_then(|h| self.search.plugin_at(h));
        if let Some(own) = own
            && own.name != first
            && !own.dependencies.iter().any(|d| d == first)
        {
            return Err(format!(
                "import {path:?}: plugin {} does not declare a dependency on {first} (plugin.json's dependencies)",
                own.name
            ));
        }
        let rest = file.strip_prefix(first).unwrap_or(file).to_path_buf();
        Ok(Some((target.home.clone(), rest)))
    }

    fn resolve_in(
        &self,
        engine: &Engine,
        global: Option<&mut GlobalRuntimeState>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let (found, real) = match self.locate(path) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                    format!(
                        "module {path:?} not found in the policy's folder or on the search path"
                    ),
                    pos,
                )));
            }
            Err(m) => return Err(refused(m, pos)),
        };
        let shown = found.display().to_string();
        {
            let mut chain = self.chain.lock().expect("import chain lock");
            chain.label(&real, &shown);
            let from = chain
                .importer(global.as_ref().and_then(|g| g.source()))
                .unwrap_or_else(|| real.clone());
            if let Err(cycle) = chain.add(from, real.clone()) {
                return Err(refused(
                    format!("import {path:?}: import cycle {cycle}"),
                    pos,
                ));
            }
        }
        if let Some(m) = self.loaded.lock().expect("module lock").get(&real) {
            return Ok(m.clone());
        }
        let text = read_source(&real, &found).map_err(|m| refused(m, pos))?;
        self.files
            .lock()
            .expect("resolver lock")
            .push(found.clone());
        self.texts
            .lock()
            .expect("module texts lock")
            .insert(shown.clone(), Arc::from(text.as_str()));
        let in_module =
            |e: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(shown.clone(), e, pos));
        let mut ast = engine
            .compile(&text)
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(shown.as_str());
        self.chain
            .lock()
            .expect("import chain lock")
            .loading
            .push(real.clone());
        // The module's top level runs under the importing call's budget.
        let module = match global {
            Some(g) => Module::eval_ast_as_new_raw(engine, &mut Scope::new(), g, &ast),
            None => Module::eval_ast_as_new(Scope::new(), &ast, engine),
        };
        self.chain.lock().expect("import chain lock").loading.pop();
        let mut module = module.map_err(in_module)?;
        module.set_id(shown.as_str());
        let module: Shared<Module> = module.into();
        self.loaded
            .lock()
            .expect("module lock")
            .insert(real, module.clone());
        Ok(module)
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        self.resolve_in(engine, None, path, pos)
    }

    fn resolve_raw(
        &self,
        engine: &Engine,
        global: &mut GlobalRuntimeState,
        _scope: &mut Scope,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        self.resolve_in(engine, Some(global), path, pos)
    }
}
