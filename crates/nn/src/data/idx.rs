//! Reader for the IDX files of MNIST and Fashion-MNIST, raw or gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images of one IDX file: `count` images of `rows x cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// The pixels, 0 to 255, image after image.
    pub pixels: Vec<u8>,
}

/// The most bytes an input file (a CSV, an IDX body) may hold, inflated: 2 GiB, which
/// are 8 GiB as f32 tensors.
pub const MAX_INPUT: u64 = 2 << 30;

/// `path` opened for reading, inflating it when it starts with the gzip magic; and
/// whether it did. Errors of the returned reader are gzip's when it is one.
fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, bool), DataError> {
    use std::io::BufRead;
    let file = rudder_core::input::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let gz = reader
        .fill_buf()
        .map_err(|e| DataError::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        (Box::new(flate2::read::GzDecoder::new(reader)), true)
    } else {
        (Box::new(reader), false)
    })
}

/// The error of a read from [`open_maybe_gz`].
fn read_fault(path: &Path, gz: bool, e: std::io::Error) -> DataError {
    if gz {
        DataError::bad(path, format!("not a valid gzip file: {e}"))
    } else {
        DataError::io(path, e)
    }
}

/// A file's bytes, inflated when it starts with the gzip magic, reading at most
/// [`MAX_INPUT`] bytes (raw or inflated) and failing past it, before allocating more.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let (src, gz) = open_maybe_gz(path)?;
    let mut out = Vec::new();
    let read = src
        .take(MAX_INPUT + 1)
        .read_to_end(&mut out)
        .map_err(|e| read_fault(path, gz, e))?;
    if read as u64 > MAX_INPUT {
        return Err(DataError::bad(
            path,
            format!("more than {MAX_INPUT} bytes (inflated); rudder reads input files up to 2 GiB"),
        ));
    }
    Ok(out)
}

/// Inflates `raw` when it starts with the gzip magic, at most to [`MAX_INPUT`];
/// `path` names it in errors.
pub fn inflate_maybe(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let n = flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_INPUT + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::bad(path, format!("not a valid gzip file: {e}")))?;
        if n as u64 > MAX_INPUT {
            return Err(DataError::bad(path, "inflates past 2 GiB".into()));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file (raw or gzipped) whose header has `words` 32-bit words: the
/// header first, then at most the body it promises plus one byte, so a file that
/// inflates past its promise is refused after reading no more than that.
pub fn read_idx(path: &Path, words: usize) -> Result<Vec<u8>, DataError> {
    let (mut src, gz) = open_maybe_gz(path)?;
    let gzip_fault = |e: std::io::Error| read_fault(path, gz, e);
    let mut head = Vec::new();
    (&mut src)
        .take(4 * words as u64)
        .read_to_end(&mut head)
        .map_err(gzip_fault)?;
    let h = header(&head, path, words)?;
    // An image bigger than a model can take, or a set bigger than memory can hold as
    // f32, is refused from its header.
    if words == 4 && (h[2] as u64) * (h[3] as u64) > super::MAX_FEATURES as u64 {
        return Err(DataError::bad(
            path,
            format!(
                "images of {}x{}: rudder takes at most {} values per example",
                h[2],
                h[3],
                super::MAX_FEATURES
            ),
        ));
    }
    let body = h[1..]
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .filter(|&n| n <= MAX_INPUT && n <= super::MAX_VALUES as u64)
        .ok_or_else(|| {
            DataError::bad(
                path,
                format!(
                    "the header promises {} bytes; rudder reads IDX files up to 2 GiB",
                    h[1..].iter().map(|&d| d as u128).product::<u128>()
                ),
            )
        })?;
    let mut bytes = head;
    src.take(body + 1)
        .read_to_end(&mut bytes)
        .map_err(gzip_fault)?;
    Ok(bytes)
}

fn header(bytes: &[u8], path: &Path, words: usize) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 4 * words {
        return Err(DataError::bad(
            path,
            format!(
                "truncated IDX header: {} bytes, expected at least {}",
                bytes.len(),
                4 * words
            ),
        ));
    }
    Ok(bytes[..4 * words]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn check_magic(path: &Path, got: u32, want: u32, what: &str) -> Result<(), DataError> {
    if got != want {
        return Err(DataError::bad(
            path,
            format!("bad IDX magic 0x{got:08x}, expected 0x{want:08x} ({what})"),
        ));
    }
    Ok(())
}

fn check_len(path: &Path, body: usize, want: usize) -> Result<(), DataError> {
    if body != want {
        let how = if body < want {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(DataError::bad(
            path,
            format!("{how}: {body} data bytes, the header promises {want}"),
        ));
    }
    Ok(())
}

/// Parses an IDX image file (magic 0x803) from its bytes; `path` names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let h = header(bytes, path, 4)?;
    check_magic(path, h[0], IMAGES_MAGIC, "unsigned bytes, 3 dimensions")?;
    let (count, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    if count == 0 {
        return Err(DataError::bad(path, "no images (the header says 0)".into()));
    }
    if rows == 0 || cols == 0 {
        return Err(DataError::bad(
            path,
            format!("bad image size {rows}x{cols}"),
        ));
    }
    let want = count
        .checked_mul(rows * cols)
        .ok_or_else(|| DataError::bad(path, "dimensions overflow".to_string()))?;
    check_len(path, bytes.len() - 16, want)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: bytes[16..].to_vec(),
    })
}

/// Parses an IDX label file (magic 0x801) from its bytes; `path` names it in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    let h = header(bytes, path, 2)?;
    check_magic(path, h[0], LABELS_MAGIC, "unsigned bytes, 1 dimension")?;
    check_len(path, bytes.len() - 8, h[1] as usize)?;
    Ok(bytes[8..].to_vec())
}

/// Finds `stem` or `stem.gz` in `dir`.
pub fn locate(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::bad(
        &raw,
        "missing (nor is there a .gz beside it); see the README for how to fetch it".to_string(),
    ))
}

/// Reads one split (`train` or `t10k`) of an IDX data set from `dir`.
pub fn read_split(dir: &Path, prefix: &str) -> Result<(IdxImages, Vec<u8>), DataError> {
    let ipath = locate(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lpath = locate(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = parse_images(&read_idx(&ipath, 4)?, &ipath)?;
    let labels = parse_labels(&read_idx(&lpath, 2)?, &lpath)?;
    if images.count != labels.len() {
        return Err(DataError::bad(
            &lpath,
            format!(
                "{} labels for {} images in {}",
                labels.len(),
                images.count,
                ipath.display()
            ),
        ));
    }
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_file(count: u32, rows: u32, cols: u32, body: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(7u8, body));
        v
    }

    #[test]
    fn parses_a_well_formed_file() {
        let img = parse_images(&image_file(2, 2, 3, 12), Path::new("x")).unwrap();
        assert_eq!(
            (img.count, img.rows, img.cols, img.pixels.len()),
            (2, 2, 3, 12)
        );
    }

    #[test]
    fn refuses_truncated_and_foreign_files() {
        let e = parse_images(&image_file(2, 2, 3, 11), Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("truncated: 11 data bytes"), "{e}");
        let e = parse_images(&image_file(2, 2, 3, 13), Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("trailing bytes"), "{e}");
        let e = parse_labels(&image_file(2, 2, 3, 12), Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("bad IDX magic 0x00000803"), "{e}");
        let e = parse_images(&[0, 0, 8], Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("truncated IDX header"), "{e}");
    }
}
