//! `--param [POLICY.]KEY=VALUE`: one override of a policy parameter, VALUE as JSON.

use serde_json::Value;

/// One `--param [POLICY.]KEY=VALUE`, VALUE as JSON. A VALUE that is not JSON is kept
/// as a string with `bare` set: it is taken only where the declared default is a
/// string (`--param mode=max`).
///
/// ```
/// use rudder_core::Param;
/// let p: Param = "lr/cosine.eta_min=0.001".parse().unwrap();
/// assert_eq!(p, Param::new("eta_min", 0.001).of("lr/cosine"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Param {
    /// The policy it is for (its name, the last part of its name, or its file's
    /// stem); `None`: every policy that declares `key`.
    pub policy: Option<String>,
    /// The parameter's name, as `fn params()` declares it.
    pub key: String,
    /// The value, parsed as JSON (or a bare string, see `bare`).
    pub value: Value,
    /// VALUE was not JSON and is taken as a bare string.
    pub bare: bool,
}

/// A `--param` that is not `[POLICY.]KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// No `=` in it.
    #[error("{0:?}: expected [POLICY.]KEY=VALUE")]
    NoValue(String),
    /// Nothing between the policy's dot (or the start) and the `=`.
    #[error("{0:?}: empty key")]
    EmptyKey(String),
}

impl ParamError {
    /// The `--param` as given.
    pub fn input(&self) -> &str {
        match self {
            ParamError::NoValue(s) | ParamError::EmptyKey(s) => s,
        }
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        match self {
            ParamError::NoValue(_) => "expected [POLICY.]KEY=VALUE",
            ParamError::EmptyKey(_) => "empty key",
        }
    }
}

impl Param {
    /// `key` = `value` for every policy that declares `key`.
    pub fn new(key: &str, value: impl Into<Value>) -> Param {
        Param {
            policy: None,
            key: key.to_string(),
            value: value.into(),
            bare: false,
        }
    }

    /// The same, for policy `policy` only.
    pub fn of(mut self, policy: &str) -> Param {
        self.policy = Some(policy.to_string());
        self
    }

    /// VALUE as the user wrote it.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(s) if self.bare => s.clone(),
            v => v.to_string(),
        }
    }
}

impl std::str::FromStr for Param {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Param, ParamError> {
        let (lhs, value) = s
            .split_once('=')
            .ok_or_else(|| ParamError::NoValue(s.to_string()))?;
        let (value, bare) = match serde_json::from_str(value) {
            Ok(v) => (v, false),
            Err(_) => (Value::String(value.to_string()), true),
        };
        let (policy, key) = match lhs.rsplit_once('.') {
            Some((p, k)) => (Some(p.to_string()), k.to_string()),
            None => (None, lhs.to_string()),
        };
        if key.is_empty() {
            return Err(ParamError::EmptyKey(s.to_string()));
        }
        Ok(Param {
            policy,
            key,
            value,
            bare,
        })
    }
}
