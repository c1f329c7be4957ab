//! Model files, input files and numbers written to break a run: every size in a
//! model file is bounded before any arithmetic (nothing wraps), an input that is not
//! a regular file (a FIFO, a device) is refused without blocking, a resume checks its
//! model file as it checks its data, and regression metrics follow scikit-learn's
//! definitions at any scale of the targets.

use std::path::Path;

use super::{jsonl, rudder, write};

/// A FIFO at `dir/name` (nobody ever writes to it).
fn fifo(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    p
}

#[test]
fn model_file_sizes_are_bounded_before_any_arithmetic() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let conv = |padding: &str| {
        format!(r#"{{"type":"conv2d","out":1,"kernel":1,"padding":{padding},"bias":false}}"#)
    };
    let cases = [
        (
            format!(r#"[{},{{"type":"flatten"}},{{"type":"linear"}}]"#, conv("4611686018427387904")),
            "layer 1 (conv2d): padding 4611686018427387904 is more than 65536 (2^16)",
        ),
        (
            format!(
                r#"[{},{{"type":"maxpool2d"}},{{"type":"flatten"}},{{"type":"linear"}}]"#,
                conv("4611686018427387904")
            ),
            "layer 1 (conv2d): padding 4611686018427387904 is more than 65536 (2^16)",
        ),
        (
            format!(r#"[{},{{"type":"flatten"}},{{"type":"linear"}}]"#, conv("9223372036854775808")),
            "layer 1 (conv2d): padding 9223372036854775808 is more than 65536 (2^16)",
        ),
        (
            r#"[{"type":"avgpool2d","kernel":4611686018427387906},{"type":"flatten"},{"type":"linear"}]"#
                .to_string(),
            "layer 1 (avgpool2d): kernel 4611686018427387906 is more than 65536 (2^16)",
        ),
        (
            r#"[{"type":"conv2d","out":3,"stride":70000},{"type":"flatten"},{"type":"linear"}]"#
                .to_string(),
            "layer 1 (conv2d): stride 70000 is more than 65536 (2^16)",
        ),
        (
            r#"[{"type":"flatten"},{"type":"linear","out":1099511627776},{"type":"linear"}]"#
                .to_string(),
            "layer 2 (linear): out 1099511627776 is more than 536870912 (2^29)",
        ),
        (
            // 65536 channels of 64x64 from an 8x8 image: 2^28 values, then 2^30.
            r#"[{"type":"conv2d","out":65536,"kernel":1,"padding":28},{"type":"conv2d","out":4,"kernel":1,"padding":30000},{"type":"flatten"},{"type":"linear"}]"#
                .to_string(),
            "layer 2 (conv2d): gives 4x60064x60064, more than 536870912 (2^29) values per example",
        ),
    ];
    for (spec, message) in &cases {
        write(d, "m.json", spec);
        for kernels in ["rudder", "candle"] {
            rudder(
                d,
                &[
                    "train",
                    "--model",
                    "m.json",
                    "--kernels",
                    kernels,
                    "--epochs",
                    "1",
                    "--out",
                    "r",
                ],
            )
            .refused(
                &format!("{message} ({kernels})"),
                &["--model m.json", message],
            );
        }
    }
}

#[test]
fn a_resume_checks_its_model_file_and_finds_it_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good =
        r#"[{"type":"flatten"},{"type":"linear","out":16},{"type":"relu"},{"type":"linear"}]"#;
    write(d, "m.json", good);
    rudder(
        d,
        &[
            "train", "-q", "--model", "m.json", "--epochs", "1", "--out", "r",
        ],
    )
    .ok("first epoch");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r/config.json")).unwrap()).unwrap();
    let real = std::fs::canonicalize(d.join("m.json")).unwrap();
    assert_eq!(config["model"], real.display().to_string());
    assert_eq!(config["model_sha256"].as_str().unwrap().len(), 64);
    // From another folder: the recorded real path is read, not ./m.json.
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    rudder(
        &d.join("elsewhere"),
        &["train", "-q", "--resume", "../r", "--epochs", "2"],
    )
    .ok("resume from elsewhere");
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 2);
    // Swapped for another file (a hostile one), or for a FIFO: refused unread.
    write(
        d,
        "m.json",
        r#"[{"type":"conv2d","out":1,"kernel":1,"padding":4611686018427387904,"bias":false},{"type":"maxpool2d"},{"type":"flatten"},{"type":"linear"}]"#,
    );
    rudder(d, &["train", "--resume", "r", "--epochs", "3"]).refused(
        "swapped",
        &[
            "--resume r: --model",
            "not the model file this run was built from",
        ],
    );
    write(d, "m.json", &good.replace("16", "17"));
    rudder(d, &["train", "--resume", "r", "--epochs", "3"])
        .refused("edited", &["not the model file this run was built from"]);
    std::fs::remove_file(d.join("m.json")).unwrap();
    fifo(d, "m.json");
    rudder(d, &["train", "--resume", "r", "--epochs", "3"])
        .refused("fifo", &["m.json: not a regular file"]);
    // A user's --config may not set the run's own records.
    write(d, "own.json", "{\"model_sha256\": \"00\"}");
    rudder(d, &["train", "--config", "own.json"])
        .refused("model_sha256", &["model_sha256: is a run's own record"]);
    write(d, "own.json", "{\"data_sha256\": \"00\"}");
    rudder(d, &["train", "--config", "own.json"])
        .refused("data_sha256", &["data_sha256: is a run's own record"]);
}

#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fifo(d, "f.json");
    fifo(d, "f.csv");
    fifo(d, "f.rhai");
    let cases: [(&[&str], &str); 5] = [
        (
            &["train", "--model", "f.json"],
            "--model f.json: not a regular file",
        ),
        (&["train", "--data", "f.csv"], "f.csv: not a regular file"),
        (
            &["train", "--config", "f.json"],
            "--config f.json: not a regular file",
        ),
        (
            &["train", "--policy", "f.rhai"],
            "f.rhai: not a regular file",
        ),
        (&["policy", "check", "f.rhai"], "f.rhai: not a regular file"),
    ];
    for (args, message) in cases {
        rudder(d, args).refused(message, &[message]);
    }
    rudder(d, &["train", "--data", "/dev/zero"]).refused("/dev/zero", &["not a regular file"]);
    // A plugin whose manifest is a FIFO is not a plugin: listing does not block.
    std::fs::create_dir_all(d.join("plugins/p")).unwrap();
    fifo(&d.join("plugins/p"), "plugin.json");
    rudder(d, &["policy", "list"]).ok("list beside a FIFO manifest");
}

/// A regression CSV of `n` rows: two features, then the target `target(i)`.
fn regression_csv(d: &Path, name: &str, n: usize, target: impl Fn(usize) -> String) {
    let rows: String = (0..n)
        .map(|i| {
            let (a, b) = ((i % 7) as f64 / 7.0, (i % 5) as f64 / 5.0);
            format!("{a},{b},{}\n", target(i))
        })
        .collect();
    write(d, name, &format!("a,b,y\n{rows}"));
}

fn regress(d: &Path, data: &str, out: &str) -> super::Ran {
    rudder(
        d,
        &[
            "train",
            "--task",
            "regression",
            "--data",
            data,
            "--epochs",
            "3",
            "--out",
            out,
        ],
    )
}

#[test]
fn regression_numbers_follow_scikit_learn_at_any_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A constant target: scikit-learn's r2_score(force_finite=True) gives 0.0 for a
    // prediction that is not exact.
    regression_csv(d, "const.csv", 200, |_| "5".into());
    regress(d, "const.csv", "c").ok("constant");
    for m in jsonl(&d.join("c/metrics.jsonl")) {
        assert_eq!(m["val_r2"], 0.0, "{m}");
    }
    // Targets of scale 1e-37 are standardised like any other: R^2 stays a number
    // of order 1, and the errors are in the targets' units.
    regression_csv(d, "tiny.csv", 200, |i| {
        format!("{:e}", ((i % 7) as f64 + 2.0 * (i % 5) as f64) * 1e-37)
    });
    regress(d, "tiny.csv", "t").ok("tiny");
    let last = jsonl(&d.join("t/metrics.jsonl")).pop().unwrap();
    let r2 = last["val_r2"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&r2), "{last}");
    assert!(last["val_rmse"].as_f64().unwrap() < 1e-35, "{last}");
    // Targets near f32's largest: every number on the progress lines is short.
    regression_csv(d, "huge.csv", 200, |i| {
        if i % 2 == 0 {
            "3.4e38".into()
        } else {
            "-3.4e38".into()
        }
    });
    let ran = regress(d, "huge.csv", "h");
    ran.sane("huge");
    for line in ran.stderr.lines().filter(|l| l.contains("r2")) {
        assert!(
            line.split_whitespace().all(|w| w.len() <= 24),
            "a long number in {line:?}"
        );
    }
    // 1e308 overflows f32: said so.
    regression_csv(d, "over.csv", 20, |i| {
        if i == 3 { "1e308".into() } else { "1".into() }
    });
    regress(d, "over.csv", "o").refused("overflow", &["over.csv:5:3: 1e308 is past f32's range"]);
}
