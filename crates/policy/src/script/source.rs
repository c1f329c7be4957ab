//! Reading a policy or module source: a regular file, no larger than a policy may
//! be, in UTF-8, read no further than that.

use std::path::Path;

use crate::limits::MAX_SOURCE;

/// Reads a policy or module source: a regular file of at most `MAX_SOURCE` bytes, in
/// UTF-8. Errors name `shown` (the path as the user knows it).
pub(crate) fn read_source(path: &Path, shown: &Path) -> Result<String, String> {
    let at = shown.display();
    let bytes = rudder_core::input::read(path, MAX_SOURCE).map_err(|e| match e {
        rudder_core::input::ReadError::TooLarge(n) => format!(
            "{at}: {n} bytes, more than the {} KiB a policy file may have",
            MAX_SOURCE >> 10
        ),
        rudder_core::input::ReadError::Io(e) => format!("{at}: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{at}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}
