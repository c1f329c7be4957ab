//! Opening an input file (a model file, data, a config, a policy, a plugin manifest,
//! a checkpoint): only a regular file, told apart without blocking. `open(2)` of a
//! FIFO waits for a writer, and a read of `/dev/zero` never ends, so the file is
//! opened with `O_NONBLOCK` (which a FIFO's open returns at once under) and its
//! type is read from the open descriptor, not from the path, so nothing can be
//! swapped in between. On a regular file `O_NONBLOCK` changes nothing.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why an input file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read, or is not a regular file.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// It holds more than the limit: its size in bytes (at least the limit plus one).
    #[error("{0} bytes")]
    TooLarge(u64),
}

/// `path` opened for reading if it is a regular file (links followed); a FIFO, a
/// device, a socket or a folder is an error reading "not a regular file".
pub fn open(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The bytes of the regular file `path`, reading at most `limit + 1` of them: a file
/// larger than `limit` (or one that grows past it while read) is
/// [`ReadError::TooLarge`] and never read whole.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(ReadError::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open_and_none_blocks() {
        let tmp = std::env::temp_dir().join(format!("rudder-input-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let fifo = tmp.join("f");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = open(&fifo).unwrap_err();
            assert_eq!(e.to_string(), "not a regular file");
        }
        for p in [Path::new("/dev/zero"), tmp.as_path()] {
            assert_eq!(open(p).unwrap_err().to_string(), "not a regular file");
        }
        let f = tmp.join("a.txt");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read(&f, 5).unwrap(), b"12345");
        assert!(matches!(read(&f, 4), Err(ReadError::TooLarge(5))));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
