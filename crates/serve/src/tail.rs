//! Reading a run's JSONL files as they grow: the complete lines after a byte offset,
//! the first and the last line, each read bounded, only from a regular file inside
//! the run's folder. A line that is not JSON (a write in progress has no newline yet,
//! so it is not read) is skipped.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::scan;

/// The most bytes one read of new lines takes (the rest comes at the next look).
pub(crate) const CHUNK: u64 = 4 << 20;

/// The most bytes a whole-file read takes from its end (older lines are left out).
pub(crate) const WHOLE: u64 = 32 << 20;

/// New lines of a file since an offset.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// The lines, parsed.
    pub(crate) values: Vec<Value>,
    /// Where the next read starts.
    pub(crate) end: u64,
    /// The file is shorter than the offset (a resume cut it back).
    pub(crate) cut: bool,
}

/// The complete lines of `dir/name` after byte `from`, at most `limit` bytes of them.
pub(crate) fn read_from(dir: &Path, name: &str, from: u64, limit: u64) -> Lines {
    let mut out = Lines {
        end: from,
        ..Lines::default()
    };
    let Some(path) = scan::inside(dir, name) else {
        return out;
    };
    let Ok(mut file) = rudder_core::input::open(&path) else {
        return out;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    if len < from {
        out.cut = true;
        return out;
    }
    if len == from || file.seek(SeekFrom::Start(from)).is_err() {
        return out;
    }
    let mut bytes = Vec::new();
    if file
        .take(limit.min(len - from))
        .read_to_end(&mut bytes)
        .is_err()
    {
        return out;
    }
    let Some(last) = bytes.iter().rposition(|&b| b == b'\n') else {
        return out;
    };
    out.end = from + last as u64 + 1;
    out.values = bytes[..last]
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    out
}

/// Every complete line of `dir/name` (the newest [`WHOLE`] bytes of a larger file),
/// with the offset after them.
pub(crate) fn read_all(dir: &Path, name: &str) -> Lines {
    let len = scan::inside(dir, name)
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let from = len.saturating_sub(WHOLE);
    let mut lines = read_from(dir, name, from, WHOLE);
    if from > 0 && !lines.values.is_empty() {
        // The first line read may be the tail of one cut in the middle.
        lines.values.remove(0);
    }
    lines
}

/// The first line of `dir/name`.
pub(crate) fn first(dir: &Path, name: &str) -> Option<Value> {
    read_from(dir, name, 0, 64 << 10).values.into_iter().next()
}

/// The last complete line of `dir/name`.
pub(crate) fn last(dir: &Path, name: &str) -> Option<Value> {
    let len = scan::inside(dir, name)
        .and_then(|p| std::fs::metadata(p).ok())?
        .len();
    let from = len.saturating_sub(64 << 10);
    read_from(dir, name, from, 64 << 10).values.pop()
}

/// `dir/name` as JSON, if it is a regular file inside the folder of at most `limit`
/// bytes.
pub(crate) fn json_file(dir: &Path, name: &str, limit: u64) -> Option<Value> {
    let path = scan::inside(dir, name)?;
    let bytes = rudder_core::input::read(&path, limit).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_only_and_a_cut_is_seen() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.jsonl"),
            "{\"a\":1}\nnot json\n{\"a\":2}\n{\"a\":",
        )
        .unwrap();
        let l = read_from(d.path(), "m.jsonl", 0, CHUNK);
        assert_eq!(
            l.values,
            [serde_json::json!({"a": 1}), serde_json::json!({"a": 2})]
        );
        assert_eq!(l.end, 25);
        let again = read_from(d.path(), "m.jsonl", l.end, CHUNK);
        assert!(again.values.is_empty() && again.end == 25 && !again.cut);
        std::fs::write(d.path().join("m.jsonl"), "{\"a\":1}\n").unwrap();
        assert!(read_from(d.path(), "m.jsonl", 25, CHUNK).cut);
        assert_eq!(last(d.path(), "m.jsonl"), Some(serde_json::json!({"a": 1})));
        assert_eq!(
            first(d.path(), "m.jsonl"),
            Some(serde_json::json!({"a": 1}))
        );
        assert!(
            read_from(d.path(), "../m.jsonl", 0, CHUNK)
                .values
                .is_empty()
        );
    }
}
