//! The native `sched` module sweep policies share: numpy's percentile, Optuna's
//! successive-halving promotion rule, and zlib's CRC-32 (Hyperband's brackets), so
//! that the standard library's schedulers match Optuna's number for number.

use rhai::{Array, Dynamic, EvalAltResult, Module};

/// A number from a script: integer or float.
pub(crate) fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// `values`' numbers (`()` and NaN left out), sorted.
fn finite_sorted(values: &Array) -> Vec<f64> {
    let mut v: Vec<f64> = values
        .iter()
        .filter_map(number)
        .filter(|x| !x.is_nan())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// numpy's `nanpercentile(values, q)` with its default linear method (and its
/// rounding: from the upper neighbour when the fraction is 0.5 or more); NaN when no
/// value is a number.
pub(crate) fn percentile(values: &Array, q: f64) -> f64 {
    let v = finite_sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = q.clamp(0.0, 100.0) / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = rank - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Optuna's `_is_trial_promotable_to_next_rung`: whether `value` is among the best
/// `1 / rf` of `competing` (which includes it); with fewer than `rf` values, whether
/// it is the best so far.
fn promotable(value: f64, competing: &Array, rf: i64, max: bool) -> bool {
    let v = finite_sorted(competing);
    if v.is_empty() {
        return true;
    }
    let idx = (v.len() as i64 / rf.max(1) - 1).max(0) as usize;
    if max {
        value >= v[v.len() - 1 - idx.min(v.len() - 1)]
    } else {
        value <= v[idx.min(v.len() - 1)]
    }
}

/// A number argument of a native function, or an error naming it.
pub(crate) fn arg(v: &Dynamic, name: &str) -> Result<f64, Box<EvalAltResult>> {
    number(v).ok_or_else(|| format!("{name} must be a number, got {}", v.type_name()).into())
}

fn mode_max(mode: &str) -> Result<bool, Box<EvalAltResult>> {
    match mode {
        "min" => Ok(false),
        "max" => Ok(true),
        other => Err(format!("mode must be \"min\" or \"max\", got {other:?}").into()),
    }
}

/// `sched::percentile(values, q)`, `sched::promotable(value, competing, rf, mode)`,
/// `sched::crc32(text)`.
pub(crate) fn module() -> Module {
    let mut m = Module::new();
    m.set_native_fn("percentile", |values: Array, q: Dynamic| {
        Ok(percentile(&values, arg(&q, "q")?))
    });
    m.set_native_fn(
        "promotable",
        |value: Dynamic, competing: Array, rf: i64, mode: &str| {
            Ok(promotable(
                arg(&value, "value")?,
                &competing,
                rf,
                mode_max(mode)?,
            ))
        },
    );
    m.set_native_fn("crc32", |text: &str| {
        Ok(crc32fast::hash(text.as_bytes()) as rhai::INT)
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(v: &[f64]) -> Array {
        v.iter().map(|x| Dynamic::from_float(*x)).collect()
    }

    #[test]
    fn percentiles_are_numpys() {
        // numpy.nanpercentile([3, 1, nan, 2, 10], q): 50 -> 2.5, 25 -> 1.75, 90 -> 7.9
        let v = arr(&[3.0, 1.0, f64::NAN, 2.0, 10.0]);
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 25.0), 1.75);
        assert!((percentile(&v, 90.0) - 7.9).abs() < 1e-12);
        assert!(percentile(&arr(&[f64::NAN]), 50.0).is_nan());
    }

    #[test]
    fn promotion_keeps_the_best_quarter() {
        let v = arr(&[0.5, 0.1, 0.3, 0.2, 0.9, 0.4, 0.8, 0.7]);
        // 8 values, rf 4: the best two are promotable.
        assert!(promotable(0.2, &v, 4, false));
        assert!(!promotable(0.3, &v, 4, false));
        assert!(promotable(0.8, &v, 4, true));
        assert!(!promotable(0.7, &v, 4, true));
        // Fewer than rf: only the best so far.
        assert!(promotable(0.1, &arr(&[0.1, 0.3]), 4, false));
        assert!(!promotable(0.3, &arr(&[0.1, 0.3]), 4, false));
    }

    #[test]
    fn crc32_is_zlibs() {
        // The CRC-32 check value (zlib, binascii.crc32(b"123456789")).
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }
}
