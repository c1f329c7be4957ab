//! Input files and options written to break a run: every reader checks sizes before
//! it allocates, an empty split or an impossible model is exit 2 naming the flag or
//! file, and an error quotes at most 80 characters of what it was given.

use std::io::Write;
use std::path::Path;

use super::{rudder, write};

#[path = "../common/idx.rs"]
mod idx;

/// The four IDX files of a data set in `dir` with `n` training and 10 validation
/// images of 4x4 (training images given as `train_images`, raw bytes).
fn idx_set(dir: &Path, train_images: &[u8], n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |count: u32| idx::images(count, 4, 4);
    let labels = |count: u32| idx::labels(count, 2);
    let w = |name: &str, b: &[u8]| std::fs::write(dir.join(name), b).unwrap();
    if train_images.is_empty() {
        w("train-images-idx3-ubyte", &images(n));
    } else {
        w("train-images-idx3-ubyte", train_images);
    }
    w("train-labels-idx1-ubyte", &labels(n));
    w("t10k-images-idx3-ubyte", &images(10));
    w("t10k-labels-idx1-ubyte", &labels(10));
}

#[test]
fn an_idx_set_with_no_images_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    idx_set(&d.join("empty"), &[], 0);
    for cmd in ["train", "lr-find", "sweep"] {
        rudder(
            d,
            &[
                cmd,
                "--data",
                "mnist",
                "--data-dir",
                "empty",
                "--epochs",
                "1",
                "--out",
                cmd,
            ],
        )
        .refused(cmd, &["train-images-idx3-ubyte: no images"]);
    }
}

#[test]
fn a_gzip_bomb_is_inflated_no_further_than_its_header_promises() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A header promising 1,000 images of 4x4, then 512 MiB of zeros: 0.5 MB gzipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut head = vec![0, 0, 8, 3];
    for v in [1000u32, 4, 4] {
        head.extend(v.to_be_bytes());
    }
    gz.write_all(&head).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    idx_set(&d.join("bomb"), &[], 1000);
    std::fs::remove_file(d.join("bomb/train-images-idx3-ubyte")).unwrap();
    std::fs::write(d.join("bomb/train-images-idx3-ubyte.gz"), bomb).unwrap();
    let r = rudder(
        d,
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "bomb",
            "--out",
            "r",
        ],
    );
    r.refused(
        "bomb",
        &["train-images-idx3-ubyte.gz: trailing bytes: 16001 data bytes, the header promises 16000"],
    );
    assert!(r.max_rss_kb < 128 << 10, "peak RSS {} KiB", r.max_rss_kb);
}

#[test]
fn a_csv_with_a_byte_order_mark_keeps_its_first_row() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: String = (0..40)
        .map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 5, i % 2))
        .collect();
    write(d, "bom.csv", &format!("\u{feff}{rows}"));
    let r = rudder(
        d,
        &["train", "--epochs", "1", "--data", "bom.csv", "--out", "r"],
    );
    r.ok("bom");
    // 40 rows: 36 to train, 4 to validate (none lost to a "header").
    assert!(r.stderr.contains("(36 train / 4 val"), "{}", r.stderr);
}

#[test]
fn a_model_too_large_is_refused_before_it_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rudder(
        tmp.path(),
        &["train", "--hidden", "100000,100000", "--out", "r"],
    );
    r.refused(
        "hidden",
        &["--hidden 100000,100000: the model would have 10007600010 parameters, more than the 268435456 (2^28)"],
    );
    assert!(r.max_rss_kb < 256 << 10, "peak RSS {} KiB", r.max_rss_kb);
}

#[test]
fn config_files_are_bounded_objects_and_errors_quote_little() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let long = "x".repeat(300_000);
    write(
        d,
        "big.json",
        &format!("{{\"data\": \"{}\"}}", "y".repeat(2 << 20)),
    );
    rudder(d, &["train", "--config", "big.json"]).refused(
        "big",
        &["--config big.json: ", "a config file is at most 1024 KiB"],
    );
    write(d, "array.json", "[0.1, 0.9, 64]");
    rudder(d, &["train", "--config", "array.json"])
        .refused("array", &["--config array.json: must be a JSON object"]);
    write(d, "long.json", &format!("{{\"lr\": \"{long}\"}}"));
    let r = rudder(d, &["train", "--config", "long.json"]);
    r.refused(
        "long value",
        &["long.json:1:", "invalid type: string \"xxx"],
    );
    assert!(
        r.stderr.len() < 300,
        "{} bytes: {}",
        r.stderr.len(),
        r.stderr
    );
    write(d, "bad.csv", &format!("1,2,0\n2,{long},1\n"));
    let r = rudder(d, &["train", "--data", "bad.csv"]);
    r.refused("csv field", &["bad.csv:2:2: not a finite number"]);
    assert!(r.stderr.len() < 300, "{} bytes", r.stderr.len());
}

#[test]
fn param_values_are_json_of_the_declared_type() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (param, says) in [
        ("patience=1x", "patience=1x: not valid JSON"),
        ("patience=[1,", "patience=[1,: not valid JSON"),
        ("patience=1e400", "patience=1e400: not valid JSON"),
        ("patience=NaN", "patience=NaN: not valid JSON"),
        (
            "patience=2.5",
            "patience=2.5: must be a whole number, got 2.5",
        ),
        (
            "patience=\"3\"",
            "patience=\"3\": must be a whole number, got a string",
        ),
        (
            "patience=true",
            "patience=true: must be a whole number, got a bool",
        ),
    ] {
        rudder(d, &["train", "--param", param]).refused(
            param,
            &[
                &format!("--param {says}"),
                "(policy default declares patience = 5)",
            ],
        );
    }
    // A string default takes a bare word; a number default takes a JSON number.
    write(
        d,
        "p.rhai",
        "fn params() { #{ mode: \"min\", factor: 0.5 } }\nfn on_epoch_end(ctx) { #{ log: `${ctx.params.mode} ${ctx.params.factor}` } }\n",
    );
    let r = rudder(
        d,
        &[
            "train", "--epochs", "1", "--policy", "p.rhai", "--param", "mode=max", "--param",
            "factor=1", "--out", "r",
        ],
    );
    r.ok("typed");
    assert!(r.stderr.contains("max 1.0"), "{}", r.stderr);
}

#[test]
fn small_files_cannot_ask_for_large_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Two images of 20000x20000 promised by a header: refused from the header.
    let mut head = vec![0, 0, 8, 3];
    for v in [2u32, 20000, 20000] {
        head.extend(v.to_be_bytes());
    }
    idx_set(&d.join("huge"), &head, 2);
    let r = rudder(
        d,
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "huge",
            "--out",
            "r",
        ],
    );
    r.refused(
        "huge images",
        &["images of 20000x20000: rudder takes at most 1048576 values"],
    );
    assert!(r.max_rss_kb < 128 << 10, "peak RSS {} KiB", r.max_rss_kb);
    // One CSV line of 2 million columns.
    let wide: String = "1,".repeat(2_000_000) + "0\n";
    write(d, "wide.csv", &format!("{wide}{wide}"));
    let r = rudder(d, &["train", "--data", "wide.csv", "--out", "r"]);
    r.refused("wide csv", &["wide.csv:1:1: 2000001 columns"]);
    assert!(r.max_rss_kb < 128 << 10, "peak RSS {} KiB", r.max_rss_kb);
    // A label of a million: a million classes.
    let rows: String = (0..20).map(|i| format!("{i},{}\n", i % 2)).collect();
    write(d, "classes.csv", &format!("{rows}3,1000000\n"));
    rudder(d, &["train", "--data", "classes.csv", "--out", "r"]).refused(
        "classes",
        &["has a label of 1000000: rudder trains at most 100000 classes"],
    );
}

#[test]
fn options_and_config_files_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = rudder(d, &["train", "--config", "/dev/zero"]);
    r.refused("/dev/zero", &["--config /dev/zero: not a regular file"]);
    assert!(r.max_rss_kb < 64 << 10, "peak RSS {} KiB", r.max_rss_kb);
    write(d, "tail.json", "{\"epochs\": 1} garbage");
    rudder(d, &["train", "--config", "tail.json"])
        .refused("trailing", &["tail.json:1:15: text after the JSON object"]);
    write(d, "own.json", "{\"resumes\": []}");
    rudder(d, &["train", "--config", "own.json"])
        .refused("resumes", &["resumes: is a run's own record"]);
    rudder(d, &["train", "--epochs", "1000000000000000000"])
        .refused("epochs", &["--epochs: must be at most 1000000000"]);
    let key = "k".repeat(100_000);
    let r = rudder(d, &["train", "--param", &format!("{key}=1")]);
    r.refused("long key", &["--param "]);
    assert!(r.stderr.len() < 400, "{} bytes", r.stderr.len());
    let big = format!("milestones=[{}]", vec!["1"; 40_000].join(","));
    rudder(d, &["train", "--param", &big])
        .refused("big param", &["more than the 64 KiB a --param may have"]);
    rudder(d, &["sweep", "--multipliers", "1,1.0", "--out", "sw"])
        .refused("twice", &["--multipliers: 1 is given twice"]);
}
