//! What a sweep searches: the cross product of `--grid` axes, or `--samples`
//! configurations drawn from `--space` distributions (from the seed), each crossed
//! with `--multipliers`; a trial is its settings over the command's own options, its
//! LR carried from the command's batch size to its own by `--lr-scaling`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use rudder_core::TrainOptions;
use rudder_core::config::ConfigError;
use rudder_run::report::fmt_num;

/// The train options a grid or a space may vary: those a trial can take without the
/// sweep's data set changing. Any other key is a policy parameter `[POLICY.]PARAM`.
pub(crate) const OPTION_KEYS: &[&str] = &[
    "lr",
    "batch_size",
    "momentum",
    "weight_decay",
    "accumulation",
    "optimizer",
    "hidden",
    "channels",
    "dropout",
    "nesterov",
    "seed",
    "epochs",
];

/// Options a trial may not change (they would change the data, the folder, or the
/// sweep itself).
const FIXED_KEYS: &[&str] = &[
    "config",
    "data",
    "data_dir",
    "val_fraction",
    "model",
    "task",
    "targets",
    "device",
    "threads",
    "kernels",
    "out",
    "resume",
    "watch",
    "policy",
    "param",
    "quiet",
    "tensorboard",
    "lr_scaling",
];

/// Mixed into the seed for `--samples`' draws, so they are not the data order's.
const SAMPLE_SALT: u64 = 0x5a3b_1e5e;

/// One `--grid` axis: a key and its values, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    pub(crate) key: String,
    pub(crate) values: Vec<Value>,
}

/// One `--space` distribution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dist {
    /// `log(A,B)`: log-uniform on [A, B) (Optuna's `log=True`, Ray Tune's `loguniform`).
    Log(f64, f64),
    /// `uniform(A,B)`: uniform on [A, B).
    Uniform(f64, f64),
    /// `int(A,B)`: a whole number from A to B, both included (Optuna's `suggest_int`).
    Int(i64, i64),
    /// `choice(V,...)`: one of the values, each as likely.
    Choice(Vec<Value>),
}

/// One trial's place in the search: its settings (in the axes' order) and its LR
/// multiplier.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub(crate) settings: Vec<(String, Value)>,
    pub(crate) multiplier: f64,
}

/// `KEY=V1,V2,...`: the values split at commas outside brackets and quotes, each JSON
/// if it reads as JSON (`0.1`, `[64,32]`, `true`), else a string (`adamw`).
pub(crate) fn parse_grid(arg: &str) -> Result<Axis, ConfigError> {
    let at = |m: String| ConfigError::invalid(format!("--grid {}", clip(arg)), m);
    let (key, values) = arg
        .split_once('=')
        .ok_or_else(|| at("is not KEY=V1,V2,... (batch_size=32,64,128)".into()))?;
    let key = check_key(key.trim()).map_err(at)?;
    let values: Vec<Value> = split(values).iter().map(|v| value(v)).collect();
    if values.iter().any(|v| v.as_str() == Some("")) || values.is_empty() {
        return Err(at("needs at least one value, and no empty one".into()));
    }
    let mut shown: Vec<String> = values.iter().map(show).collect();
    shown.sort();
    if let Some(w) = shown.windows(2).find(|w| w[0] == w[1]) {
        return Err(at(format!("{} is given twice", w[0])));
    }
    Ok(Axis { key, values })
}

/// `KEY=log(A,B)|uniform(A,B)|int(A,B)|choice(V,...)`.
pub(crate) fn parse_space(arg: &str) -> Result<(String, Dist), ConfigError> {
    let at = |m: String| ConfigError::invalid(format!("--space {}", clip(arg)), m);
    let usage = "is not KEY=log(A,B), uniform(A,B), int(A,B) or choice(V,...)";
    let (key, dist) = arg.split_once('=').ok_or_else(|| at(usage.into()))?;
    let key = check_key(key.trim()).map_err(at)?;
    let dist = dist.trim();
    let (name, inner) = dist
        .strip_suffix(')')
        .and_then(|d| d.split_once('('))
        .ok_or_else(|| at(usage.into()))?;
    let args: Vec<String> = split(inner);
    let nums = || -> Result<(f64, f64), ConfigError> {
        match args
            .iter()
            .map(|a| a.trim().parse::<f64>())
            .collect::<Vec<_>>()[..]
        {
            [Ok(a), Ok(b)] if a.is_finite() && b.is_finite() && a < b => Ok((a, b)),
            _ => Err(at(format!("{name}(A,B) needs two finite numbers, A < B"))),
        }
    };
    let d = match name.trim() {
        "log" => {
            let (a, b) = nums()?;
            if a <= 0.0 {
                return Err(at("log(A,B) needs A > 0".into()));
            }
            Dist::Log(a, b)
        }
        "uniform" => {
            let (a, b) = nums()?;
            Dist::Uniform(a, b)
        }
        "int" => {
            let (a, b) = nums()?;
            if a.fract() != 0.0 || b.fract() != 0.0 || a.abs() > 1e15 || b.abs() > 1e15 {
                return Err(at("int(A,B) needs whole numbers".into()));
            }
            Dist::Int(a as i64, b as i64)
        }
        "choice" if !args.is_empty() => Dist::Choice(args.iter().map(|v| value(v)).collect()),
        _ => return Err(at(usage.into())),
    };
    Ok((key, d))
}

/// A key a trial may vary: a train option of [`OPTION_KEYS`] (`batch-size` is
/// `batch_size`), or a policy parameter (checked when the policies load).
pub(crate) fn check_key(key: &str) -> Result<String, String> {
    let k = key.replace('-', "_");
    if OPTION_KEYS.contains(&k.as_str()) {
        return Ok(k);
    }
    if FIXED_KEYS.contains(&k.as_str()) {
        return Err(format!(
            "{key} is the same for every trial of a sweep; the keys a trial may vary are {} and policy parameters ([POLICY.]PARAM)",
            OPTION_KEYS.join(", ")
        ));
    }
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!(
            "{key:?} is neither a train option ({}) nor a policy parameter ([POLICY.]PARAM)",
            OPTION_KEYS.join(", ")
        ))
    }
}

/// `s` split at the commas outside brackets, braces and quotes.
fn split(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// A value as JSON if it reads as JSON, else as a string.
fn value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// A value as a name shows it: numbers as people read them, arrays joined by `x`.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or(n.to_string(), fmt_num),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join("x"),
        other => other.to_string(),
    }
}

fn clip(s: &str) -> String {
    rudder_core::text::clip(s)
}

/// Every point of the grid: the axes' cross product (the first axis slowest), each
/// with every multiplier (fastest).
pub(crate) fn grid(axes: &[Axis], multipliers: &[f64]) -> Vec<Point> {
    let mut points: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis.key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    cross(points, multipliers)
}

/// `n` configurations drawn from `space`, reproducible from `seed` (ChaCha8, each
/// configuration's keys drawn in the order given), each with every multiplier.
pub(crate) fn samples(
    space: &[(String, Dist)],
    n: usize,
    seed: u64,
    multipliers: &[f64],
) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SAMPLE_SALT);
    let points = (0..n)
        .map(|_| {
            space
                .iter()
                .map(|(k, d)| (k.clone(), draw(d, &mut rng)))
                .collect()
        })
        .collect();
    cross(points, multipliers)
}

fn draw(d: &Dist, rng: &mut ChaCha8Rng) -> Value {
    match d {
        Dist::Log(a, b) => {
            let u: f64 = rng.random();
            Value::from((a.ln() + u * (b.ln() - a.ln())).exp())
        }
        Dist::Uniform(a, b) => {
            let u: f64 = rng.random();
            Value::from(a + u * (b - a))
        }
        Dist::Int(a, b) => Value::from(rng.random_range(*a..=*b)),
        Dist::Choice(vs) => vs[rng.random_range(0..vs.len())].clone(),
    }
}

fn cross(points: Vec<Vec<(String, Value)>>, multipliers: &[f64]) -> Vec<Point> {
    points
        .into_iter()
        .flat_map(|settings| {
            multipliers.iter().map(move |&m| Point {
                settings: settings.clone(),
                multiplier: m,
            })
        })
        .collect()
}

/// The trial's options: the command's, with the point's train options set and its
/// policy parameters added after the command's `--param`s (so they win).
pub(crate) fn options(base: &TrainOptions, p: &Point) -> Result<TrainOptions, ConfigError> {
    let mut v =
        serde_json::to_value(base).map_err(|e| ConfigError::invalid("--grid", e.to_string()))?;
    let Some(m) = v.as_object_mut() else {
        return Err(ConfigError::invalid("--grid", "options are not an object"));
    };
    let mut params: Vec<Value> = match m.remove("param") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    for (k, val) in &p.settings {
        if OPTION_KEYS.contains(&k.as_str()) {
            m.insert(k.clone(), option_value(k, val));
        } else {
            params.push(Value::String(format!("{k}={val}")));
        }
    }
    if !params.is_empty() {
        m.insert("param".into(), Value::Array(params));
    }
    serde_json::from_value(v).map_err(|e| {
        ConfigError::invalid(
            format!("--grid/--space {}", describe(&p.settings)),
            format!("a trial's option does not take this value: {e}"),
        )
    })
}

/// A value as the option takes it: a number of layers' widths may be one number.
fn option_value(key: &str, v: &Value) -> Value {
    match (key, v) {
        ("hidden" | "channels", Value::Number(_)) => Value::Array(vec![v.clone()]),
        _ => v.clone(),
    }
}

/// `batch_size 64, lr 0.1`.
pub(crate) fn describe(settings: &[(String, Value)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k} {}", show(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trial's folder name: its settings (`batch_size-64_lr-0.1`), or `sNNN` for a
/// sampled one, and `_xM` for its multiplier when there are several; only
/// `[A-Za-z0-9._-]`.
pub(crate) fn name(p: &Point, index: usize, sampled: bool, one_multiplier: bool) -> String {
    let mut parts: Vec<String> = if sampled {
        vec![format!("s{index:03}")]
    } else {
        p.settings
            .iter()
            .map(|(k, v)| format!("{k}-{}", show(v)))
            .collect()
    };
    if !one_multiplier || parts.is_empty() {
        parts.push(super::trial_name(p.multiplier));
    }
    let joined = parts.join("_");
    let safe: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    safe.chars().take(120).collect()
}

/// The JSON of a trial's settings, for `sweep.json`.
pub(crate) fn settings_json(settings: &[(String, Value)]) -> Value {
    Value::Object(settings.iter().cloned().collect::<Map<String, Value>>())
}

#[cfg(test)]
mod tests;
