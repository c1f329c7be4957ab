//! The newer surfaces attacked: plugin manifests that are huge or carry escape
//! sequences or take a library namespace, a file that shadows a library policy,
//! sweep multipliers and LR ramps that overflow, TensorBoard folders with links
//! planted under the names rudder will use, and a candle path that must agree with
//! the engine on tied maxima.

use std::path::Path;

use super::{jsonl, rudder, write};

/// A manifest named `name` declaring `policies` (name -> file).
fn manifest(name: &str, policies: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = policies
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
        .collect();
    serde_json::json!({"name": name, "version": "1.0.0", "description": "d", "api": 1,
        "policies": map, "license": "MIT"})
    .to_string()
}

#[test]
fn manifests_are_bounded_and_names_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 200 policies (under the cap): listed, and a mistyped name answered, in one
    // read of the manifest each.
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("p{i}"), format!("p{i}.rhai")))
        .collect();
    for (_, f) in &many {
        write(
            d,
            &format!("plugins/big/{f}"),
            "//! One.\nfn on_step(ctx) { () }\n",
        );
    }
    write(d, "plugins/big/plugin.json", &manifest("big", &many));
    let list = rudder(d, &["policy", "list"]);
    list.ok("200 policies");
    assert_eq!(
        list.stdout
            .lines()
            .filter(|l| l.starts_with("big/p"))
            .count(),
        200
    );
    rudder(d, &["train", "--policy", "big/p2000"])
        .refused("mistyped", &["plugin big has no policy \"p2000\""]);
    // 1,000: past the cap, the plugin is invalid (listed as such), not slow.
    let more: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("p{i}"), "p1.rhai".to_string()))
        .collect();
    write(d, "plugins/big/plugin.json", &manifest("big", &more));
    let list = rudder(d, &["policy", "list"]);
    list.ok("1000 policies");
    assert!(
        list.stdout
            .contains("invalid plugin: plugins/big/plugin.json"),
        "{}",
        list.stdout
    );
    rudder(d, &["train", "--policy", "big/p1"])
        .refused("1000", &["1000 policies; a plugin declares at most 256"]);
    // An escape sequence in a policy's name never reaches the terminal.
    let red = vec![("\u{1b}[31mred".to_string(), "p1.rhai".to_string())];
    write(d, "plugins/big/plugin.json", &manifest("big", &red));
    let list = rudder(d, &["policy", "list"]);
    list.ok("escape");
    assert!(!list.stdout.contains('\u{1b}') && !list.stderr.contains('\u{1b}'));
    let doc = rudder(d, &["policy", "doc", "big/p1"]);
    doc.refused("doc", &["a policy's name", "may have only letters, digits"]);
    assert!(!doc.stderr.contains('\u{1b}'), "{}", doc.stderr);
    // A plugin may not take a namespace of the standard library.
    rudder(d, &["plugin", "new", "lr"])
        .refused("plugin new lr", &["is a namespace of the standard library"]);
    let one = vec![("cosine".to_string(), "cosine.rhai".to_string())];
    write(
        d,
        "plugins/lr/cosine.rhai",
        "fn on_epoch_start(ctx) { #{ lr: 7.0 } }\n",
    );
    write(d, "plugins/lr/plugin.json", &manifest("lr", &one));
    let ran = one_epoch_of_cosine(d);
    ran.refused("lr plugin", &["is a namespace of the standard library"]);
}

/// One epoch with `--policy lr/cosine` into `d/r`, however that name resolves there.
fn one_epoch_of_cosine(d: &Path) -> super::Ran {
    rudder(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--policy",
            "lr/cosine",
            "--out",
            "r",
        ],
    )
}

#[test]
fn a_file_that_shadows_a_library_policy_is_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "scripts/lr/cosine.rhai",
        "fn on_epoch_start(ctx) { #{ lr: 0.05 } }\n",
    );
    let ran = one_epoch_of_cosine(d);
    ran.ok("shadowed");
    assert!(
        ran.stderr.contains(
            "warning: --policy lr/cosine is scripts/lr/cosine.rhai, not the standard library's"
        ),
        "{}",
        ran.stderr
    );
    let events = jsonl(&d.join("r/events.jsonl"));
    let e = super::event(&events, "shadowed", "shadowed");
    assert_eq!(e["policy"], "lr/cosine");
    assert_eq!(e["path"], "scripts/lr/cosine.rhai");
    assert_eq!(events[0]["kind"], "run_start");
}

#[test]
fn every_lr_a_sweep_or_a_ramp_derives_is_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    rudder(
        d,
        &[
            "sweep",
            "--lr",
            "10",
            "--multipliers",
            "1,1e308",
            "--out",
            "s",
        ],
    )
    .refused(
        "inf trial",
        &["--multipliers: 1e308 x --lr 10 gives LR inf, not a finite number > 0"],
    );
    assert!(!d.join("s").exists());
    rudder(d, &["lr-find", "--steps", "1000000000", "--out", "l"]).refused(
        "steps",
        &["--steps: must be from 2 to 100000, got 1000000000"],
    );
    let ran = rudder(
        d,
        &[
            "lr-find",
            "--start-lr",
            "1e-308",
            "--end-lr",
            "1e308",
            "--steps",
            "8",
            "--out",
            "l",
        ],
    );
    ran.ok("wide ramp");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("l/lr_find.json")).unwrap()).unwrap();
    for lr in report["lrs"].as_array().unwrap() {
        let lr = lr.as_f64().unwrap_or(f64::NAN);
        assert!(lr.is_finite() && lr > 0.0, "{report}");
    }
    // A tiny multiplier trains and prints a few digits, not 320.
    let ran = rudder(
        d,
        &[
            "sweep",
            "--epochs",
            "1",
            "--multipliers",
            "1e-320",
            "--out",
            "t",
        ],
    );
    ran.ok("tiny multiplier");
    for w in ran
        .stdout
        .split_whitespace()
        .chain(ran.stderr.split_whitespace())
    {
        assert!(w.len() < 40 || w.contains('/'), "a long word: {w}");
    }
}

/// The event files under `dir`.
fn event_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("tfevents"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn tensorboard_files_are_created_new_and_runs_keep_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Links planted in the folder a run named `r` uses, under the names of the next
    // two minutes, claimed as its own: none is followed.
    std::fs::create_dir_all(d.join("tb/r")).unwrap();
    std::fs::create_dir_all(d.join("a")).unwrap();
    let run = std::fs::canonicalize(d.join("a")).unwrap().join("r");
    std::fs::write(d.join("tb/r/.rudder-run"), run.display().to_string()).unwrap();
    for s in now..now + 120 {
        let name = format!("events.out.tfevents.{s}.{host}.rudder");
        std::os::unix::fs::symlink(d.join(format!("outside-{s}")), d.join("tb/r").join(name))
            .unwrap();
    }
    let train = |cwd: &Path, args: &[&str]| {
        let mut all = vec!["train", "-q", "--epochs", "1", "--tensorboard"];
        all.extend(args);
        rudder(cwd, &all)
    };
    train(&d.join("a"), &["../tb", "--out", "r"]).ok("planted links");
    let outside: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("outside-"))
        .collect();
    assert!(outside.is_empty(), "a file was created through a link");
    let ours: Vec<_> = event_files(&d.join("tb/r"))
        .into_iter()
        .filter(|p| !p.is_symlink())
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    // Another run of the same name: a folder of its own.
    std::fs::create_dir_all(d.join("b")).unwrap();
    train(&d.join("b"), &["../tb", "--out", "r"]).ok("second run named r");
    assert_eq!(event_files(&d.join("tb/r-2")).len(), 1);
    // The first one resumed goes back to its own folder.
    rudder(
        &d.join("a"),
        &["train", "-q", "--resume", "r", "--epochs", "2"],
    )
    .ok("resume a");
    let ours = event_files(&d.join("tb/r"))
        .into_iter()
        .filter(|p| !p.is_symlink())
        .count();
    assert_eq!(ours, 2);
    assert_eq!(event_files(&d.join("tb/r-2")).len(), 1);
    // A folder that cannot be made: an event, and the run goes on.
    write(d, "file", "x");
    let ran = train(d, &["file/tb", "--out", "c"]);
    ran.ok("tensorboard under a file");
    assert!(
        ran.stderr.contains("no TensorBoard events for this run"),
        "{}",
        ran.stderr
    );
    let events = jsonl(&d.join("c/events.jsonl"));
    let e = super::event(&events, "sink_error", "tensorboard");
    assert_eq!(e["sink"], "tensorboard");
    assert_eq!(events[0]["kind"], "run_start");
}

#[test]
fn tied_maxima_train_the_same_on_the_engine_and_on_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // ReLU's zeros and the digits' flat regions make ties in most pool windows.
    write(
        d,
        "pool.json",
        r#"[{"type":"conv2d","out":4,"kernel":3},{"type":"relu"},{"type":"maxpool2d"},{"type":"flatten"},{"type":"linear"}]"#,
    );
    for kernels in ["rudder", "candle"] {
        rudder(
            d,
            &[
                "train",
                "-q",
                "--model",
                "pool.json",
                "--epochs",
                "2",
                "--kernels",
                kernels,
                "--out",
                kernels,
            ],
        )
        .ok(kernels);
    }
    let (a, b) = (
        jsonl(&d.join("rudder/metrics.jsonl")),
        jsonl(&d.join("candle/metrics.jsonl")),
    );
    for (x, y) in a.iter().zip(&b) {
        for k in ["train_loss", "val_loss"] {
            let (x, y) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{k}: engine {x}, candle {y}"
            );
        }
    }
}

#[test]
fn reports_are_bounded_whatever_the_logs_hold() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    rudder(d, &["train", "-q", "--epochs", "1", "--out", "r"]).ok("run");
    // An epoch of 2^64 - 1 in both logs, and 50,000 events at distinct epochs with
    // 1 KiB messages.
    let metrics = std::fs::read_to_string(d.join("r/metrics.jsonl")).unwrap();
    let mut last: serde_json::Value =
        serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    last["epoch"] = u64::MAX.into();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("r/metrics.jsonl"))
        .unwrap();
    writeln!(f, "{last}").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("r/events.jsonl"))
        .unwrap();
    let pad = "x".repeat(1000);
    for e in (0..50_000u64).chain([u64::MAX]) {
        let line = serde_json::json!({"time": "2026-12-02T00:00:00.000Z", "epoch": e, "step": e,
            "kind": "log", "hook": "on_step", "message": format!("{e} {pad}")});
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let ran = rudder(d, &["report", "r", "--out", "page.html"]);
    ran.ok("report");
    let page = std::fs::metadata(d.join("page.html")).unwrap().len();
    assert!(page < 2 << 20, "page of {page} bytes");
    let events = std::fs::metadata(d.join("r/events.jsonl")).unwrap().len();
    assert!(
        (ran.max_rss_kb as u64) * 1024 < 2 * events,
        "{} KiB for {events} bytes",
        ran.max_rss_kb
    );
    let html = std::fs::read_to_string(d.join("page.html")).unwrap();
    assert!(html.contains("epochs 1-"), "merged ranges");
}
