//! `import` for policies: a relative path (no `..`, not absolute), looked up in the
//! importing policy's own folder, then on the search path. Every file read is recorded,
//! so a reload can watch it.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use super::find::SearchPath;

/// Resolves imports for one policy.
pub struct Resolver {
    /// The importing policy's folder (`None` for an embedded policy).
    home: Option<PathBuf>,
    search: SearchPath,
    /// Files this policy was built from, besides its own script.
    pub(crate) files: Arc<Mutex<Vec<PathBuf>>>,
}

impl Resolver {
    pub fn new(home: Option<PathBuf>, search: SearchPath) -> Resolver {
        Resolver {
            home,
            search,
            files: Arc::default(),
        }
    }

    fn locate(&self, path: &str) -> Result<PathBuf, String> {
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
        let mut dirs: Vec<PathBuf> = self.home.iter().cloned().collect();
        dirs.extend(self.search.dirs().iter().cloned());
        dirs.iter()
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!("module {path:?} not found in the policy's folder or on the search path")
            })
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
        let file = self
            .locate(path)
            .map_err(|m| EvalAltResult::ErrorModuleNotFound(m, pos))?;
        let text = std::fs::read_to_string(&file).map_err(|e| {
            EvalAltResult::ErrorModuleNotFound(format!("{}: {e}", file.display()), pos)
        })?;
        self.files.lock().expect("resolver lock").push(file.clone());
        let mut ast = engine.compile(&text).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                file.display().to_string(),
                Box::new(EvalAltResult::ErrorParsing(*e.0, e.1)),
                pos,
            ))
        })?;
        ast.set_source(file.display().to_string());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)?;
        Ok(module.into())
    }
}
