//! A run folder's control channel: `control.jsonl`, one JSON decision per line,
//! appended by whoever may write the folder (`rudder ctl`, a sweep's scheduler, a
//! person with `echo >>`) and read by the trainer's rank 0 between steps. This module
//! reads the new complete lines within bounds and appends one line whole; what a
//! line means is the trainer's business.
//!
//! Architecture Invariant: a reader never blocks, never follows a link, never holds
//! more than [`MAX_READ`] bytes, and never takes a line that has no newline yet (a
//! write in progress is read once it is whole). A hostile file (a link, a FIFO, a
//! 1 GB line, bytes that are not UTF-8, a file cut shorter) becomes [`Line`]s whose
//! text is an error, never a failure of the run.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The channel's file name in a run folder.
pub const CONTROL_FILE: &str = "control.jsonl";
/// Where the trainer keeps how far it has read the channel (written atomically after
/// each read that consumed something), so that a resumed run, whichever checkpoint
/// it resumes from, never applies a line again.
pub const POSITION_FILE: &str = "control.read.json";
/// The longest line taken (64 KiB); a longer one is skipped to its newline.
pub const MAX_LINE: usize = 64 * 1024;
/// The most bytes one read takes (1 MiB); the rest waits for the next boundary.
pub const MAX_READ: usize = 1 << 20;
/// The most lines one read takes; the rest waits for the next boundary.
pub const MAX_LINES: usize = 64;

/// How far the channel has been read: bytes and lines consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Bytes consumed.
    pub offset: u64,
    /// Lines consumed (the next line is `line + 1`, counting from 1).
    pub line: u64,
}

/// One line read: its number (from 1), the byte offset just after it, and its text
/// or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based; 0 for a fault of the file rather than of a line.
    pub number: u64,
    /// The offset after the line's newline (where the next read starts).
    pub end: u64,
    /// The line without its newline, or why it cannot be taken.
    pub text: Result<String, String>,
}

/// Reads `control.jsonl` from a [`Position`] on.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    pos: Position,
    /// Inside a line longer than [`MAX_LINE`] (already reported): bytes are dropped
    /// to its newline.
    skipping: bool,
    /// The last read stopped at [`MAX_READ`] or [`MAX_LINES`]: more is there (a torn
    /// line waiting for its newline is not).
    more: bool,
    /// The file is not a regular file (reported once; looked at again when it is).
    refused: bool,
    /// Where the position is kept after each read ([`POSITION_FILE`]), if anywhere.
    keep: Option<PathBuf>,
}

impl Reader {
    /// A reader of `dir`'s channel from `pos` on, whose position its caller keeps (it
    /// writes none).
    pub fn new(dir: &Path, pos: Position) -> Reader {
        Reader {
            path: dir.join(CONTROL_FILE),
            pos,
            skipping: false,
            more: false,
            refused: false,
            keep: None,
        }
    }

    /// The trainer's reader of `dir`'s channel: from where [`POSITION_FILE`] says
    /// an earlier start of the run had read to (the start, if it says nothing
    /// readable), keeping its position there after each read.
    pub fn open(dir: &Path) -> Reader {
        let keep = dir.join(POSITION_FILE);
        let pos = rudder_core::input::read(&keep, 4096)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Reader {
            keep: Some(keep),
            ..Reader::new(dir, pos)
        }
    }

    /// How far it has read.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Whether the last read stopped at its bounds with more lines waiting.
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether there may be something new: the last read left lines, or the file's
    /// length (a `stat`, not following a link) is not the offset read to.
    pub fn changed(&self) -> bool {
        self.more || std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.len() != self.pos.offset)
    }

    /// The new complete lines, at most [`MAX_LINES`] of them and [`MAX_READ`] bytes;
    /// blank lines are passed over.
    pub fn read(&mut self) -> Vec<Line> {
        let before = self.pos;
        let lines = self.read_lines();
        if let Some(keep) = &self.keep
            && self.pos != before
            && let Ok(text) = serde_json::to_vec(&self.pos)
        {
            // Best effort: a position not kept means a line read again after a
            // resume, which is what a run without this file would do.
            let _ = crate::files::write_atomic(keep, &text);
        }
        lines
    }

    fn read_lines(&mut self) -> Vec<Line> {
        self.more = false;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => return self.refuse(format!("cannot be opened ({e}); not read")),
        };
        let len = match file.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return self.refuse("is not a regular file; not read".into()),
            Err(e) => return self.refuse(format!("cannot be read ({e}); not read")),
        };
        self.refused = false;
        let mut out = Vec::new();
        if len < self.pos.offset {
            out.push(self.fault(format!(
                "shrank from {} to {len} bytes; reading on from its end",
                self.pos.offset
            )));
            self.pos.offset = len;
            self.skipping = false;
            return out;
        }
        let want = (len - self.pos.offset).min(MAX_READ as u64);
        let mut buf = Vec::with_capacity(want as usize);
        let read = file
            .seek(SeekFrom::Start(self.pos.offset))
            .and_then(|_| file.take(want).read_to_end(&mut buf));
        if let Err(e) = read {
            out.push(self.fault(format!("cannot be read ({e})")));
            return out;
        }
        // Cut at MAX_READ: the rest is read at the next boundary. A torn line at the
        // end is not "more": it is read when a write completes it (an event, a poll).
        self.more = want < len - self.pos.offset;
        self.split(&buf, &mut out);
        out
    }

    /// Takes the complete lines of `buf` (read from the offset on).
    fn split(&mut self, buf: &[u8], out: &mut Vec<Line>) {
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            if out.len() == MAX_LINES {
                self.more = true;
                return;
            }
            let bytes = &buf[start..start + i];
            self.pos.offset += i as u64 + 1;
            start += i + 1;
            if std::mem::take(&mut self.skipping) {
                self.pos.line += 1;
                continue;
            }
            self.pos.line += 1;
            let text = if bytes.len() > MAX_LINE {
                Err(too_long())
            } else {
                match std::str::from_utf8(bytes) {
                    Ok(t) if t.trim().is_empty() => continue,
                    Ok(t) => Ok(t.trim_end_matches('\r').to_string()),
                    Err(_) => Err("is not UTF-8 text".to_string()),
                }
            };
            out.push(Line {
                number: self.pos.line,
                end: self.pos.offset,
                text,
            });
        }
        // What is left has no newline yet: a write in progress, taken once whole,
        // unless it is already too long to be taken at all.
        let rest = buf.len() - start;
        if self.skipping || rest > MAX_LINE {
            self.pos.offset += rest as u64;
            if !std::mem::replace(&mut self.skipping, true) {
                out.push(Line {
                    number: self.pos.line + 1,
                    end: self.pos.offset,
                    text: Err(too_long()),
                });
            }
        }
    }

    /// A fault of the file, reported once until the file is a regular one again.
    fn refuse(&mut self, why: String) -> Vec<Line> {
        if std::mem::replace(&mut self.refused, true) {
            return Vec::new();
        }
        vec![self.fault(why)]
    }

    fn fault(&self, why: String) -> Line {
        Line {
            number: 0,
            end: self.pos.offset,
            text: Err(format!("{CONTROL_FILE} {why}")),
        }
    }
}

fn too_long() -> String {
    format!("is longer than {} KiB; skipped", MAX_LINE / 1024)
}

/// Appends `line` (one line, no newline in it, at most [`MAX_LINE`] bytes) to `dir`'s
/// channel in one write, creating the file if needed and never through a link.
/// Lines appended by several writers at once
/// do not interleave: each is one `O_APPEND` write.
pub fn append(dir: &Path, line: &str) -> std::io::Result<()> {
    if line.contains('\n') || line.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a control line is one line of at most {} KiB",
                MAX_LINE / 1024
            ),
        ));
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(CONTROL_FILE))?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{CONTROL_FILE} is not a regular file"
        )));
    }
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)
}

#[cfg(test)]
mod tests;
