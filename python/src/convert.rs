//! Between Python values and JSON.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rudder_policy::Decision;
use serde_json::{Map, Value, json};

/// A Python value as JSON: None, bool, int, float, str, list, tuple, dict (str keys),
/// or anything `float()` takes (a numpy or torch scalar).
pub(crate) fn to_json(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(json!(i));
        }
        return Ok(json!(v.extract::<f64>()?));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, x) in d.iter() {
            let key: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("dict keys must be str"))?;
            m.insert(key, to_json(&x)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    let x: f64 = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "cannot be JSON: {}",
            v.get_type().name().map_or("?".into(), |n| n.to_string())
        ))
    })?;
    Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
}

/// JSON as Python values.
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => i.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(to_py(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// A decision as the dict a hook returns: a schedule's `lr` and `momentum` (the
/// decision at most steps) directly, any other through its JSON form.
pub(crate) fn decision_to_py<'py>(py: Python<'py>, d: &Decision) -> PyResult<Bound<'py, PyDict>> {
    if d.is_empty() || d.is_schedule() {
        let out = PyDict::new(py);
        if let Some(lr) = d.lr {
            out.set_item(pyo3::intern!(py, "lr"), lr)?;
        }
        if let Some(m) = d.momentum {
            out.set_item(pyo3::intern!(py, "momentum"), m)?;
        }
        return Ok(out);
    }
    let v = serde_json::to_value(d).unwrap_or(Value::Null);
    Ok(to_py(py, &v)?
        .cast_into::<PyDict>()
        .unwrap_or_else(|_| PyDict::new(py)))
}
