//! Reading a policy or module source: a regular file, no larger than a policy may
//! be, in UTF-8, read no further than that.

use std::io::Read;
use std::path::Path;

use crate::limits::MAX_SOURCE;

/// Reads a policy or module source: a regular file of at most `MAX_SOURCE` bytes, in
/// UTF-8. Errors name `shown` (the path as the user knows it).
pub(crate) fn read_source(path: &Path, shown: &Path) -> Result<String, String> {
    let at = shown.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{at}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{at}: not a regular file"));
    }
    if meta.len() > MAX_SOURCE {
        return Err(format!(
            "{at}: {} bytes, more than the {} KiB a policy file may have",
            meta.len(),
            MAX_SOURCE >> 10
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SOURCE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{at}: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{at}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}
