//! Errors met while loading a policy set, typed, with their place.

use std::path::PathBuf;

use crate::script::error::ScriptError;

/// What went wrong while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// A script that does not compile, a module that does not resolve, top-level code
    /// that fails or overruns its budget, a required function missing.
    Script,
    /// No policy by that name or path (`spec` names it).
    NotFound,
    /// A parameter no policy declares, or a value of the wrong type.
    Param,
    /// The file watcher could not start.
    Watch,
    /// The project's `rudder.lock` is unreadable, or a locked plugin is not installed
    /// or not what the lock records (`message` names it and the repair).
    Project,
}

/// A policy set that could not be loaded. `file`, `line` and `column` give the place
/// where there is one (a script error); `message` says what is wrong on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub struct LoadError {
    /// What went wrong.
    pub kind: LoadErrorKind,
    /// The name or path as given (for `NotFound`), or the parameter (for `Param`).
    pub spec: Option<String>,
    /// The file at fault, where there is one.
    pub file: Option<PathBuf>,
    /// 1-based; 0 where the fault has no place in the file.
    pub line: usize,
    /// 1-based; 0 with `line`.
    pub column: usize,
    /// What is wrong, on one line.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, &self.file, &self.spec) {
            (LoadErrorKind::Script, Some(file), _) => write!(
                f,
                "{}:{}:{}: {}",
                file.display(),
                self.line,
                self.column,
                self.message
            ),
            (LoadErrorKind::NotFound, _, Some(spec)) => {
                write!(f, "policy {spec}: {}", self.message)
            }
            (LoadErrorKind::Param, ..) => write!(f, "param {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl From<crate::project::ProjectError> for LoadError {
    fn from(e: crate::project::ProjectError) -> LoadError {
        LoadError {
            kind: LoadErrorKind::Project,
            spec: None,
            file: None,
            line: 0,
            column: 0,
            message: e.to_string(),
        }
    }
}

impl LoadError {
    pub(crate) fn not_found(spec: &str, message: String) -> LoadError {
        LoadError {
            kind: LoadErrorKind::NotFound,
            spec: Some(spec.to_string()),
            file: None,
            line: 0,
            column: 0,
            message,
        }
    }

    pub(crate) fn param(message: String) -> LoadError {
        LoadError {
            kind: LoadErrorKind::Param,
            spec: None,
            file: None,
            line: 0,
            column: 0,
            message,
        }
    }

    pub(crate) fn watch(message: String) -> LoadError {
        LoadError {
            kind: LoadErrorKind::Watch,
            ..LoadError::param(message)
        }
    }
}

impl From<ScriptError> for LoadError {
    fn from(e: ScriptError) -> LoadError {
        LoadError {
            kind: LoadErrorKind::Script,
            spec: None,
            file: Some(e.file),
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}
