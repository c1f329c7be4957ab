use std::io::Write;

use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(d: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(d.join(CONTROL_FILE))
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn texts(lines: &[Line]) -> Vec<(u64, Result<String, String>)> {
    lines.iter().map(|l| (l.number, l.text.clone())).collect()
}

#[test]
fn complete_lines_only_and_numbered_from_one() {
    let d = dir();
    let mut r = Reader::new(d.path(), Position::default());
    assert!(r.read().is_empty(), "no file is nothing to read");
    write(d.path(), b"{\"lr\": 0.1}\n\n{\"sto");
    assert!(r.changed());
    let got = r.read();
    assert_eq!(texts(&got), [(1, Ok("{\"lr\": 0.1}".to_string()))]);
    assert_eq!(got[0].end, 12);
    // The blank line is consumed, the torn one waits for its newline.
    assert_eq!(
        r.position(),
        Position {
            offset: 13,
            line: 2
        }
    );
    assert!(r.changed(), "the torn line is still there to read");
    assert!(
        !r.has_more(),
        "a torn line is no reason to read again at every step: its write will say"
    );
    assert!(r.read().is_empty());
    write(d.path(), b"p\": true}\r\n");
    let got = r.read();
    assert_eq!(texts(&got), [(3, Ok("{\"stop\": true}".to_string()))]);
    assert!(!r.changed());
}

#[test]
fn a_resumed_reader_goes_on_from_its_position() {
    let d = dir();
    write(d.path(), b"{\"lr\": 1}\n{\"lr\": 2}\n");
    let mut r = Reader::new(d.path(), Position::default());
    let first = r.read();
    let mid = Position {
        offset: first[0].end,
        line: 1,
    };
    let mut again = Reader::new(d.path(), mid);
    assert_eq!(texts(&again.read()), [(2, Ok("{\"lr\": 2}".to_string()))]);
}

#[test]
fn an_over_long_line_is_reported_once_and_skipped_to_its_newline() {
    let d = dir();
    let mut r = Reader::new(d.path(), Position::default());
    // Written in pieces, as a hostile or runaway writer would: 3 MiB with no newline.
    let chunk = vec![b'x'; MAX_READ];
    let mut reported = Vec::new();
    for _ in 0..3 {
        write(d.path(), &chunk);
        reported.extend(r.read());
        assert!(r.position().offset <= (3 * MAX_READ) as u64);
    }
    write(d.path(), b"xxx\n{\"lr\": 0.5}\n");
    while r.changed() {
        reported.extend(r.read());
    }
    assert_eq!(
        texts(&reported),
        [(1, Err(too_long())), (2, Ok("{\"lr\": 0.5}".to_string()))]
    );
}

#[test]
fn a_long_line_whole_in_one_read_is_reported_with_its_number() {
    let d = dir();
    let mut long = vec![b'7'; MAX_LINE + 1];
    long.push(b'\n');
    write(d.path(), &long);
    write(d.path(), b"{}\n");
    let mut r = Reader::new(d.path(), Position::default());
    assert_eq!(
        texts(&r.read()),
        [(1, Err(too_long())), (2, Ok("{}".to_string()))]
    );
}

#[test]
fn reads_are_bounded_and_the_rest_comes_next_time() {
    let d = dir();
    let many: String = (0..MAX_LINES + 5)
        .map(|i| format!("{{\"lr\": {i}}}\n"))
        .collect();
    write(d.path(), many.as_bytes());
    let mut r = Reader::new(d.path(), Position::default());
    assert_eq!(r.read().len(), MAX_LINES);
    assert!(r.changed());
    let rest = r.read();
    assert_eq!(rest.len(), 5);
    assert_eq!(rest[4].number, (MAX_LINES + 5) as u64);
}

#[test]
fn hostile_files_are_faults_not_failures() {
    let d = dir();
    let mut r = Reader::new(d.path(), Position::default());
    write(d.path(), b"\xff\xfe\n");
    assert_eq!(
        texts(&r.read()),
        [(1, Err("is not UTF-8 text".to_string()))]
    );
    // Cut shorter than what was read: reported, then read on from the new end.
    std::fs::write(d.path().join(CONTROL_FILE), b"").unwrap();
    let got = r.read();
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .text
            .as_ref()
            .unwrap_err()
            .contains("shrank from 3 to 0 bytes")
    );
    write(d.path(), b"{\"lr\": 3}\n");
    assert_eq!(texts(&r.read()), [(2, Ok("{\"lr\": 3}".to_string()))]);
    // A link is not followed (reported once), nor written through.
    std::fs::remove_file(d.path().join(CONTROL_FILE)).unwrap();
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"{\"stop\": true}\n").unwrap();
    std::os::unix::fs::symlink(&secret, d.path().join(CONTROL_FILE)).unwrap();
    let mut fresh = Reader::new(d.path(), Position::default());
    let got = fresh.read();
    assert_eq!(got.len(), 1);
    assert!(got[0].text.is_err(), "{got:?}");
    assert!(fresh.read().is_empty(), "reported once");
    assert!(append(d.path(), "{\"lr\": 1}").is_err());
    assert_eq!(std::fs::read(&secret).unwrap(), b"{\"stop\": true}\n");
}

#[test]
fn a_fifo_never_blocks_the_reader() {
    let d = dir();
    let path = d.path().join(CONTROL_FILE);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let mut r = Reader::new(d.path(), Position::default());
    let got = r.read();
    assert_eq!(
        texts(&got),
        [(
            0,
            Err(format!("{CONTROL_FILE} is not a regular file; not read"))
        )]
    );
    assert!(
        append(d.path(), "{}").is_err(),
        "no reader: not written, not blocked"
    );
}

#[test]
fn append_writes_one_whole_line() {
    let d = dir();
    append(d.path(), "{\"lr\": 0.1}").unwrap();
    append(d.path(), "{\"stop\": true}").unwrap();
    assert!(append(d.path(), "{}\n{}").is_err());
    assert!(append(d.path(), &"x".repeat(MAX_LINE + 1)).is_err());
    assert_eq!(
        std::fs::read_to_string(d.path().join(CONTROL_FILE)).unwrap(),
        "{\"lr\": 0.1}\n{\"stop\": true}\n"
    );
}

#[test]
fn the_trainers_reader_keeps_its_place_across_starts() {
    let d = dir();
    write(d.path(), b"{\"lr\": 1}\n{\"lr\": 2}\n");
    let mut r = Reader::open(d.path());
    assert_eq!(r.read().len(), 2);
    drop(r);
    let mut again = Reader::open(d.path());
    assert!(again.read().is_empty(), "read once in the run's whole life");
    write(d.path(), b"{\"lr\": 3}\n");
    assert_eq!(texts(&again.read()), [(3, Ok("{\"lr\": 3}".to_string()))]);
    // A position file that says nothing readable is the start.
    std::fs::write(d.path().join(POSITION_FILE), b"{\"offset\": \"x\"}").unwrap();
    assert_eq!(Reader::open(d.path()).read().len(), 3);
}
