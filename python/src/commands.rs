//! `python -m rudder policy list | doc | check | test`: the runtime's commands as
//! functions.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rudder_policy::{Param, SearchPath, library, testing};

use crate::load_error;

pub(crate) fn search(path: Option<Vec<PathBuf>>) -> SearchPath {
    path.map_or_else(SearchPath::from_env, SearchPath::new)
}

/// `policy list`: one aligned line per name on the search path and in the library.
#[pyfunction]
#[pyo3(signature = (path=None))]
pub(crate) fn policy_list(py: Python<'_>, path: Option<Vec<PathBuf>>) -> Vec<String> {
    py.detach(|| library::list_lines(&search(path)))
}

/// `policy doc NAME`: its doc, hooks and parameters.
#[pyfunction]
#[pyo3(signature = (name, path=None))]
pub(crate) fn policy_doc(
    py: Python<'_>,
    name: &str,
    path: Option<Vec<PathBuf>>,
) -> PyResult<String> {
    py.detach(|| library::doc(name, &search(path)))
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
    let (lines, failed) = py.detach(|| library::check(&names, &params, &search(path)));
    Ok((lines, failed.map(|e| e.to_string())))
}

/// `policy test [WHICH...]` under `root`: (passed, failed, failures).
#[pyfunction]
#[pyo3(signature = (root=PathBuf::from("."), which=vec![], path=None))]
pub(crate) fn policy_test(
    py: Python<'_>,
    root: PathBuf,
    which: Vec<String>,
    path: Option<Vec<PathBuf>>,
) -> PyResult<(usize, usize, Vec<String>)> {
    let out = py
        .detach(|| testing::run(&root, &which, &search(path)))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((out.passed, out.failed, out.failures))
}
