//! What a policy's engine puts over rhai's standard package: the built-ins that could
//! build a result far larger than their inputs, or block the thread, replaced by
//! checked versions that fail before they allocate, and the blob constructors refused
//! (a policy has no bytes to handle, so the blob limit holds by construction). The
//! standard package itself stays rhai's own (marked standard, so the optimizer and
//! the fast operators know no operator is overridden); this module is registered after
//! it and wins for the functions it holds.
//!
//! Audited against rhai 1.27's packages: `pad` (strings, arrays), `+`/`+=` on strings
//! and arrays, `split*`, `to_chars`, `chars`, `to_upper`/`to_lower`, `parse_json`,
//! `to_json`, `map`/`filter` and ranges already check their result's size before
//! building it, or cannot exceed the inputs by more than a small factor (then rhai's
//! check after the call applies). Three do not: `replace`, whose result can be the
//! product of its inputs' sizes; array `pad`, which copies its item up to 100,000
//! times and whose own check counts neither map keys nor memory; and `sleep`, which
//! blocks the thread.

use rhai::{Array, Dynamic, EvalAltResult, FLOAT, INT, ImmutableString, Map, Module};

use crate::limits::{MAX_ARRAY, MAX_MEMORY, MAX_STRING};

/// The module of checked built-ins every policy engine shares.
pub(crate) fn overrides() -> Module {
    let mut m = Module::new();
    checked(&mut m);
    m.build_index();
    m
}

fn too_large(what: &str, bytes: usize) -> Box<EvalAltResult> {
    format!(
        "{what}: the result would be {bytes} bytes, more than the {MAX_STRING}-byte string limit"
    )
    .into()
}

/// `string.replace(find, with)`, its size computed before it is built.
fn replace(s: &mut ImmutableString, find: &str, with: &str) -> Result<(), Box<EvalAltResult>> {
    if s.is_empty() {
        return Ok(());
    }
    // An empty pattern matches before every character and at the end.
    let count = if find.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(find).count()
    };
    let size = (s.len() - count * find.len()).saturating_add(count.saturating_mul(with.len()));
    if size > MAX_STRING {
        return Err(too_large("replace", size));
    }
    if count > 0 {
        *s = s.replace(find, with).into();
    }
    Ok(())
}

/// About the bytes `v` takes in memory, counting map keys; stops counting past
/// `limit`.
fn deep_bytes(v: &Dynamic, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![v.clone()];
    while let Some(v) = stack.pop() {
        total += std::mem::size_of::<Dynamic>();
        if total > limit {
            break;
        }
        if let Some(s) = v.read_lock::<ImmutableString>() {
            total += s.len();
        } else if let Some(a) = v.read_lock::<Array>() {
            stack.extend(a.iter().cloned());
        } else if let Some(m) = v.read_lock::<Map>() {
            for (k, x) in m.iter() {
                total += k.len() + 32;
                stack.push(x.clone());
            }
        }
    }
    total
}

/// `array.pad(len, item)`: rhai's semantics, refused before it copies when the
/// copies would pass the array or the memory limit.
fn pad(array: &mut Array, len: INT, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    if len <= array.len() {
        return Ok(());
    }
    let copies = len - array.len();
    if len > MAX_ARRAY {
        return Err(
            format!("pad: {len} items, more than the {MAX_ARRAY} an array may hold").into(),
        );
    }
    let each = deep_bytes(&item, MAX_MEMORY as usize);
    if each.saturating_mul(copies) > MAX_MEMORY as usize {
        return Err(format!(
            "pad: {copies} copies of a value of about {each} bytes would pass the {} MiB a call may allocate",
            MAX_MEMORY >> 20
        )
        .into());
    }
    array.resize(len, item);
    Ok(())
}

fn no_sleep() -> Result<(), Box<EvalAltResult>> {
    Err("sleep is not available to a policy: a hook call has a time budget of its own".into())
}

fn no_blob() -> Result<Dynamic, Box<EvalAltResult>> {
    Err("blobs are not available to a policy".into())
}

/// `fmt(x)`: a number as people read it in a message: at most 4 decimals, trailing
/// zeros dropped, an exponent for the very small and very large (`0.0898`, `1e-5`, `2.5e-5`).
pub(crate) fn fmt(x: FLOAT) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    crate::text::fmt_num(x)
}

fn checked(m: &mut Module) {
    m.set_native_fn("fmt", |x: FLOAT| Ok(fmt(x)));
    m.set_native_fn("fmt", |x: INT| Ok(x.to_string()));
    m.set_native_fn("plural", |n: INT, noun: &str| {
        Ok(crate::text::plural(n, noun))
    });
    m.set_native_fn(
        "replace",
        |s: &mut ImmutableString, find: &str, with: &str| replace(s, find, with),
    );
    m.set_native_fn(
        "replace",
        |s: &mut ImmutableString, find: &str, with: char| {
            replace(s, find, with.encode_utf8(&mut [0; 4]))
        },
    );
    m.set_native_fn(
        "replace",
        |s: &mut ImmutableString, find: char, with: &str| {
            replace(s, find.encode_utf8(&mut [0; 4]), with)
        },
    );
    m.set_native_fn(
        "replace",
        |s: &mut ImmutableString, find: char, with: char| {
            replace(
                s,
                find.encode_utf8(&mut [0; 4]),
                with.encode_utf8(&mut [0; 4]),
            )
        },
    );
    m.set_native_fn("pad", pad);
    m.set_native_fn("sleep", |_: INT| no_sleep());
    m.set_native_fn("sleep", |_: FLOAT| no_sleep());
    m.set_native_fn("blob", no_blob);
    m.set_native_fn("blob", |_: INT| no_blob());
    m.set_native_fn("blob", |_: INT, _: INT| no_blob());
    m.set_native_fn("to_blob", |_: &str| no_blob());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_matches_std_and_refuses_before_building() {
        for (s, find, with) in [
            ("abcabc", "b", "XYZ"),
            ("abc", "", "-"),
            ("aaaa", "aa", "b"),
            ("", "a", "b"),
            ("héé", "é", "e"),
        ] {
            let mut r: ImmutableString = s.into();
            replace(&mut r, find, with).unwrap();
            assert_eq!(r.as_str(), s.replace(find, with), "{s} {find} {with}");
        }
        let mut big: ImmutableString = "a".repeat(MAX_STRING).into();
        let with = "b".repeat(2);
        let e = replace(&mut big, "a", &with).unwrap_err().to_string();
        assert!(e.contains("131072 bytes"), "{e}");
        assert_eq!(big.len(), MAX_STRING, "unchanged");
    }
}
