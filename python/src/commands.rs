//! `python -m rudder policy list | doc | check | test`: the runtime's commands as
//! functions.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rudder_policy::{LoadError, Param, SearchPath, library, testing};

use crate::load_error;

/// The folders given, or the project's locked plugins and the usual folders; a
/// missing or modified locked plugin raises `PolicyLoadError` (kind `project`).
pub(crate) fn search(py: Python<'_>, path: Option<Vec<PathBuf>>) -> PyResult<SearchPath> {
    match path {
        Some(dirs) => Ok(SearchPath::new(dirs)),
        None => SearchPath::from_env().map_err(|e| load_error(py, &LoadError::from(e))),
    }
}

/// `policy list`: one aligned line per name on the search path and in the library.
#[pyfunction]
#[pyo3(signature = (path=None))]
pub(crate) fn policy_list(py: Python<'_>, path: Option<Vec<PathBuf>>) -> PyResult<Vec<String>> {
    let search = search(py, path)?;
    Ok(py.detach(|| library::list_lines(&search)))
}

/// `policy doc NAME`: its doc, hooks and parameters.
#[pyfunction]
#[pyo3(signature = (name, path=None))]
pub(crate) fn policy_doc(
    py: Python<'_>,
    name: &str,
    path: Option<Vec<PathBuf>>,
) -> PyResult<String> {
    let search = search(py, path)?;
    py.detach(|| library::doc(name, &search))
        .map_err(|e| load_error(py, &e))
}

/// `policy check NAME... [KEY=VALUE...]`: an `ok` line per policy; raises the first
/// load error after the lines it has.
#[pyfunction]
#[pyo3(signature = (names, params=vec![], path=None))]
pub(crate) fn policy_check(
    py: Python<'_>,
    names: Vec<String>,
    params: Vec<String>,
    path: Option<Vec<PathBuf>>,
) -> PyResult<(Vec<String>, Option<String>)> {
    let params = params
        .iter()
        .map(|p| p.parse::<Param>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| PyValueError::new_err(format!("param {m}")))?;
    let search = search(py, path)?;
    let (lines, failed) = py.detach(|| library::check(&names, &params, &search));
    Ok((lines, failed.map(|e| e.to_string())))
}

/// `policy test [WHICH...]` under `root` (with `std`, the standard library's own
/// tests, compiled in): (passed, failed, failures).
#[pyfunction]
#[pyo3(signature = (root=PathBuf::from("."), which=vec![], path=None, stdlib=false))]
pub(crate) fn policy_test(
    py: Python<'_>,
    root: PathBuf,
    which: Vec<String>,
    path: Option<Vec<PathBuf>>,
    stdlib: bool,
) -> PyResult<(usize, usize, Vec<String>)> {
    let search = search(py, path)?;
    let out = py
        .detach(|| {
            if stdlib {
                testing::run_std(&which)
            } else {
                testing::run(&root, &which, &search)
            }
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((out.passed, out.failed, out.failures))
}

/// `plugin add | install | update | remove | list | verify`: (stdout lines, exit
/// code, error message) exactly as `rudder plugin ...` prints and exits.
#[pyfunction]
#[pyo3(signature = (action, source=None, tag=None, rev=None, branch=None, version=None, name=None, locked=false, offline=false, names=vec![]))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plugin_run(
    py: Python<'_>,
    action: &str,
    source: Option<String>,
    tag: Option<String>,
    rev: Option<String>,
    branch: Option<String>,
    version: Option<String>,
    name: Option<String>,
    locked: bool,
    offline: bool,
    names: Vec<String>,
) -> PyResult<(Vec<String>, u8, Option<String>)> {
    use rudder_pkg::{Command, Reference};
    let missing = |what: &str| PyValueError::new_err(format!("plugin {action} needs {what}"));
    let cmd = match action {
        "add" => Command::Add {
            source: source.ok_or_else(|| missing("SOURCE"))?,
            reference: Reference {
                tag,
                rev,
                branch,
                version,
            },
            name,
        },
        "install" => Command::Install { locked, offline },
        "update" => Command::Update { names },
        "remove" => Command::Remove {
            name: name.ok_or_else(|| missing("NAME"))?,
        },
        "list" => Command::List,
        "verify" => Command::Verify,
        other => {
            return Err(PyValueError::new_err(format!(
                "no plugin command {other:?}"
            )));
        }
    };
    Ok(match py.detach(|| rudder_pkg::run(&cmd)) {
        Ok(out) => {
            let failure = out.failure().map(String::from);
            (out.lines, out.exit, failure)
        }
        Err(e) => (Vec::new(), e.exit, Some(e.message)),
    })
}
