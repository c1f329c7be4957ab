//! A per-rank record for the tests of many processes: with `RUDDER_RANK_LOG=DIR`
//! each rank appends to `DIR/rank-R.jsonl` the LR and batch size it applied at each
//! step, and a digest of its weights after each epoch. Unset, a call costs one load.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

fn file() -> Option<&'static Mutex<std::fs::File>> {
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::var_os("RUDDER_RANK_LOG")?;
        let path = std::path::Path::new(&dir).join(format!("rank-{}.jsonl", super::world().rank()));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    })
    .as_ref()
}

/// Whether the record is on (callers skip computing what it would hold).
pub fn on() -> bool {
    file().is_some()
}

/// Appends `line` (one JSON object) to this rank's record.
pub fn write(line: &serde_json::Value) {
    if let Some(f) = file() {
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{line}");
    }
}

/// A digest of `values` (their bits, in order): equal digests, equal weights.
pub fn digest(values: impl IntoIterator<Item = f32>) -> String {
    // FNV-1a over the bytes: stable across runs and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
