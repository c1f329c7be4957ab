//! Parameters: `fn params()` declares a policy's parameters with their defaults; a
//! [`Param`] (`--param [POLICY.]KEY=VALUE`) overrides one, typed against its default.

use rhai::Dynamic;
use serde_json::Value;

pub use rudder_core::Param;

use crate::errors::LoadError;
use crate::script::convert;
use crate::script::policy::Policy;

/// Merges `--param` values into the policies' `params()` defaults; a warning for each
/// unprefixed one that reaches more than one policy.
pub(crate) fn apply_params(
    policies: &mut [Policy],
    params: &[Param],
) -> Result<Vec<String>, LoadError> {
    let mut warnings = Vec::new();
    for p in params {
        let key = crate::text::clip(&p.key);
        let targets: Vec<&mut Policy> = policies
            .iter_mut()
            .filter(|pol| match &p.policy {
                Some(name) => names_match(name, pol),
                None => pol.params.contains_key(p.key.as_str()),
            })
            .collect();
        if targets.is_empty() {
            let whose = p.policy.as_deref().map_or("no policy".to_string(), |n| {
                format!("no policy named {:?}", crate::text::clip(n))
            });
            let declared: Vec<&str> = policies
                .iter()
                .filter(|pol| p.policy.as_deref().is_none_or(|n| names_match(n, pol)))
                .flat_map(|pol| pol.params.keys().map(|k| k.as_str()))
                .collect();
            let near = crate::text::nearest(&p.key, declared)
                .map(|n| format!("; did you mean {n}?"))
                .unwrap_or_default();
            return Err(LoadError::param(format!(
                "{key}: {whose} declares {key:?} in fn params(){near}"
            )));
        }
        if p.policy.is_none() && targets.len() > 1 {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            warnings.push(format!(
                "--param {key}={} sets {key} in {} policies ({}); write {}.{key}=... to set one",
                crate::text::clip(&p.value_text()),
                names.len(),
                names.join(", "),
                names[0]
            ));
        }
        for pol in targets {
            if !pol.params.contains_key(p.key.as_str()) {
                let near = crate::text::nearest(&p.key, pol.params.keys().map(|k| k.as_str()))
                    .map(|n| format!("; did you mean {n}?"))
                    .unwrap_or_default();
                return Err(LoadError::param(format!(
                    "{key}: policy {} declares no parameter {key:?}{near}",
                    pol.name
                )));
            }
            let default = &pol.params[p.key.as_str()];
            let value = typed(p, default).map_err(|why| {
                LoadError::param(format!(
                    "{key}={}: {why} (policy {} declares {key} = {})",
                    crate::text::clip(&p.value_text()),
                    pol.name,
                    crate::text::clip(&json_text(default))
                ))
            })?;
            let mut merged = pol.params.clone();
            merged.insert(p.key.as_str().into(), value);
            pol.set_params(merged);
        }
    }
    Ok(warnings)
}

/// A declared default as JSON, as `--param` takes it (`()` is `null`).
fn json_text(v: &Dynamic) -> String {
    serde_json::to_string(&convert::to_json(v)).unwrap_or_else(|_| v.to_string())
}

/// `--param`'s value as a script value of its declared default's type: a number
/// (finite; a whole one where the default is an integer), a string (a bare word
/// too), a bool, an array or a map. A `()` default (`T_max: ()`, "the run's own")
/// takes any JSON value.
fn typed(p: &Param, default: &Dynamic) -> Result<Dynamic, String> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    };
    if p.bare && !default.is_string() {
        return Err("not valid JSON".into());
    }
    let v = &p.value;
    let want = if default.is_unit() {
        return Ok(convert::from_json(v));
    } else if default.is_int() {
        match v.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
                return Ok(Dynamic::from_int(x as rhai::INT));
            }
            Some(x) => return Err(format!("must be a whole number, got {x}")),
            None => "a whole number",
        }
    } else if default.is_float() {
        match v.as_f64() {
            Some(x) if x.is_finite() => return Ok(Dynamic::from_float(x)),
            _ => "a finite number",
        }
    } else if default.is_string() {
        match v {
            Value::String(s) => return Ok(s.as_str().into()),
            _ => "a string",
        }
    } else if default.is_bool() {
        match v {
            Value::Bool(b) => return Ok((*b).into()),
            _ => "true or false",
        }
    } else if default.is_array() {
        match v {
            Value::Array(_) => return Ok(convert::from_json(v)),
            _ => "an array",
        }
    } else if default.is_map() {
        match v {
            Value::Object(_) => return Ok(convert::from_json(v)),
            _ => "a map",
        }
    } else {
        return Ok(convert::from_json(v));
    };
    Err(format!("must be {want}, got {}", kind(v)))
}

pub(crate) fn names_match(name: &str, p: &Policy) -> bool {
    name == p.name
        || p.name.rsplit('/').next() == Some(name)
        || p.file.file_stem().is_some_and(|s| s == name)
}
