//! IDX files for tests: images of `rows x cols` bytes with a fixed pattern, and
//! labels cycling through `classes`. Shared by `tests/fuzz.rs` and
//! `tests/adversarial/inputs.rs`.

/// An IDX image file (magic 0x803) of `count` images.
pub(crate) fn images(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [count, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    b.extend((0..count * rows * cols).map(|i| (i * 37 % 256) as u8));
    b
}

/// An IDX label file (magic 0x801) of `count` labels `0, 1, .., classes - 1, 0, ..`.
pub(crate) fn labels(count: u32, classes: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend(count.to_be_bytes());
    b.extend((0..count).map(|i| (i % classes) as u8));
    b
}
