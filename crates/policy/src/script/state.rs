//! A policy's `this`: what may be kept in it (the book's Limits page,
//! docs/src/reference/limits.md: JSON values only, nested at most 32 deep, at most 1
//! MiB as compact JSON), checked after every call, and its JSON form for checkpoints,
//! in which NaN and the infinities survive as `{"$float": "NaN" | "inf" | "-inf"}` (the
//! key `$float` is reserved for it).

use rhai::{Array, Dynamic, Map};
use serde_json::{Number, Value};

use crate::limits::{MAX_THIS_BYTES as MAX_JSON_BYTES, MAX_THIS_DEPTH as MAX_DEPTH};
/// The reserved key of a non-finite float.
pub(crate) const FLOAT_TAG: &str = "$float";

/// Why `this` cannot be kept, naming the key path (`this.history[3].t: ...`).
pub(crate) fn check(this: &Dynamic) -> Result<(), String> {
    let mut size = 0usize;
    walk(this, 0, &mut size).map_err(|f| f.at("this"))?;
    if size > MAX_JSON_BYTES {
        return Err(format!(
            "this: {size} bytes as JSON, more than the {} KiB it may keep",
            MAX_JSON_BYTES >> 10
        ));
    }
    Ok(())
}

/// What cannot be kept, and where: the key path is built on the way out of the walk
/// (innermost first), so a walk that finds nothing allocates nothing.
struct Fault {
    path: Vec<String>,
    what: String,
}

impl Fault {
    fn new(what: String) -> Fault {
        Fault {
            path: Vec::new(),
            what,
        }
    }

    fn inside(mut self, segment: String) -> Fault {
        self.path.push(segment);
        self
    }

    fn at(self, root: &str) -> String {
        let path: String = self.path.iter().rev().map(String::as_str).collect();
        format!("{root}{path}: {}", self.what)
    }
}

/// Counts the bytes serde_json writes, without keeping them.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `v` as serde_json writes it.
fn json_len<T: serde::Serialize + ?Sized>(v: &T) -> usize {
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn walk(v: &Dynamic, depth: usize, size: &mut usize) -> Result<(), Fault> {
    if depth > MAX_DEPTH {
        return Err(Fault::new(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    // Stop measuring once over the limit: the rest cannot make it fit.
    if *size > MAX_JSON_BYTES {
        return Ok(());
    }
    if v.is_unit() {
        *size += 4;
    } else if let Ok(b) = v.as_bool() {
        *size += if b { 4 } else { 5 };
    } else if let Ok(i) = v.as_int() {
        *size += json_len(&i);
    } else if let Ok(f) = v.as_float() {
        *size += if f.is_finite() {
            json_len(&f)
        } else {
            // {"$float":"-inf"}
            FLOAT_TAG.len() + 12
        };
    } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        *size += json_len(s.as_str());
    } else if let Some(a) = v.read_lock::<Array>() {
        *size += 2 + a.len().saturating_sub(1);
        for (i, x) in a.iter().enumerate() {
            walk(x, depth + 1, size).map_err(|f| f.inside(format!("[{i}]")))?;
        }
    } else if let Some(m) = v.read_lock::<Map>() {
        *size += 2 + m.len().saturating_sub(1);
        for (k, x) in m.iter() {
            if k.as_str() == FLOAT_TAG {
                return Err(Fault::new(format!("the key {FLOAT_TAG} is reserved")));
            }
            *size += json_len(k.as_str()) + 1;
            walk(x, depth + 1, size).map_err(|f| f.inside(format!(".{k}")))?;
        }
    } else {
        let what = match v.type_name() {
            "char" => "a char cannot be saved (use a string)".to_string(),
            t => format!("{} cannot be saved", t.rsplit("::").next().unwrap_or(t)),
        };
        return Err(Fault::new(what));
    }
    Ok(())
}

/// The compact JSON size of any script value, if it is JSON-representable, at most
/// `MAX_DEPTH` deep and at most `limit` bytes.
pub(crate) fn measure(v: &Dynamic, limit: usize) -> Option<usize> {
    let mut size = 0usize;
    walk(v, 0, &mut size).ok()?;
    (size <= limit).then_some(size)
}

/// `this` as JSON (after `check` passed); non-finite floats tagged.
pub(crate) fn to_json(v: &Dynamic) -> Value {
    if let Ok(b) = v.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = v.as_int() {
        Value::from(i)
    } else if let Ok(f) = v.as_float() {
        Number::from_f64(f).map_or_else(
            || {
                let name = if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                serde_json::json!({ FLOAT_TAG: name })
            },
            Value::Number,
        )
    } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        Value::String(s.to_string())
    } else if let Some(a) = v.read_lock::<Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = v.read_lock::<Map>() {
        Value::Object(m.iter().map(|(k, x)| (k.to_string(), to_json(x))).collect())
    } else {
        Value::Null
    }
}

/// JSON back to `this`; tagged floats become NaN and the infinities.
pub(crate) fn from_json(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Dynamic::from_int(i),
            _ => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        Value::Object(m) => {
            if m.len() == 1
                && let Some(Value::String(name)) = m.get(FLOAT_TAG)
            {
                return Dynamic::from_float(match name.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    _ => f64::NAN,
                });
            }
            Dynamic::from_map(
                m.iter()
                    .map(|(k, x)| (k.as_str().into(), from_json(x)))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(levels: usize) -> Dynamic {
        let mut v = Dynamic::from_int(1);
        for _ in 0..levels {
            let mut m = Map::new();
            m.insert("d".into(), v);
            v = Dynamic::from_map(m);
        }
        v
    }

    #[test]
    fn depth_32_is_kept_33_is_refused_by_path() {
        // `this` itself is level 0: 32 maps nest the number 32 deep.
        assert!(check(&nest(32)).is_ok());
        let e = check(&nest(33)).unwrap_err();
        assert!(
            e.starts_with(&format!("this{}: nested deeper", ".d".repeat(33))),
            "{e}"
        );
    }

    #[test]
    fn the_size_is_the_compact_json_length() {
        let v = from_json(&serde_json::json!({
            "a": [1, -20, 0.1, 1e300, "q\"\n\u{1}é", true, null, {"b": []}],
            "long key": 123456789
        }));
        let mut size = 0;
        assert!(walk(&v, 0, &mut size).is_ok());
        assert_eq!(size, serde_json::to_string(&to_json(&v)).unwrap().len());
        let big = Dynamic::from_array(vec![Dynamic::from_float(0.125); 200_000]);
        assert!(
            check(&big)
                .unwrap_err()
                .contains("bytes as JSON, more than the 1024 KiB")
        );
    }

    #[test]
    fn nan_and_infinities_round_trip() {
        let arr = vec![
            Dynamic::from_float(f64::NAN),
            Dynamic::from_float(f64::INFINITY),
            Dynamic::from_float(f64::NEG_INFINITY),
            Dynamic::from_float(2.5),
            Dynamic::from_int(3),
        ];
        let back = from_json(&to_json(&Dynamic::from_array(arr)));
        let a = back.into_array().unwrap();
        assert!(a[0].as_float().unwrap().is_nan());
        assert_eq!(a[1].as_float().unwrap(), f64::INFINITY);
        assert_eq!(a[2].as_float().unwrap(), f64::NEG_INFINITY);
        assert_eq!(a[3].as_float().unwrap(), 2.5);
        assert_eq!(a[4].as_int().unwrap(), 3);
    }

    #[test]
    fn values_outside_json_are_named() {
        let mut m = Map::new();
        m.insert("c".into(), Dynamic::from_char('x'));
        let e = check(&Dynamic::from_map(m)).unwrap_err();
        assert_eq!(e, "this.c: a char cannot be saved (use a string)");
    }
}
