//! Hot reload through a real `rudder train` process whose policy files are edited while
//! it runs, in every way editors save (the book's Policy API page,
//! docs/src/reference/policy-api.md). Waits poll the run directory with a generous
//! deadline; nothing asserts on time.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::live::Live;

type Run = Live;

/// A run steered by `steer.rhai` for as long as it is told, watching it in `watch`.
fn start(dir: &Path, watch: &str) -> Live {
    let args = [
        "-q",
        "--epochs",
        "100000",
        "--batch-size",
        "8",
        "--policy",
        "steer.rhai",
        "--watch",
        watch,
        "--out",
        "r",
    ];
    Live::start(dir, &args)
}

trait Reloads {
    fn wait_reload(&self, n: usize, lr: f64);
}

impl Reloads for Live {
    /// Waits for the `n`-th reload and then for an epoch trained at `lr`.
    fn wait_reload(&self, n: usize, lr: f64) {
        self.wait(&format!("reload {n}"), |r| r.kinds("reload").len() >= n);
        self.wait(&format!("an epoch at lr {lr}"), |r| {
            r.metrics().iter().any(|m| m["lr"].as_f64() == Some(lr))
        });
    }
}

fn policy(lr: f64) -> String {
    format!(
        "import \"common\" as c;\nfn on_epoch_start(ctx) {{\n    this.n = (this.n ?? 0) + 1;\n    #{{ lr: {lr} * c::scale(), metrics: #{{ n: this.n }} }}\n}}\n"
    )
}

fn module(scale: f64) -> String {
    format!("fn scale() {{ {scale} }}\n")
}

/// Every epoch is there once, `this.n` counted all of them across reloads, and the
/// LRs came in the order of the saves.
fn check_run(run: &Run, lrs: &[f64]) {
    let m = run.metrics();
    for (i, r) in m.iter().enumerate() {
        assert_eq!(r["epoch"], i, "no epoch missing or repeated");
        assert_eq!(r["policy"]["n"], (i + 1) as f64, "this survives reloads");
    }
    let mut seen: Vec<f64> = m.iter().map(|r| r["lr"].as_f64().unwrap()).collect();
    seen.dedup();
    assert_eq!(seen, lrs, "each version's LR, in order");
    for e in run.kinds("reload") {
        assert_eq!(
            e["version"].as_str().map(str::len),
            Some(12),
            "a reload names its hash: {e}"
        );
    }
}

fn stop(dir: &Path) {
    fs::write(
        dir.join("steer.rhai"),
        "fn on_epoch_start(ctx) { #{ stop: true, reason: \"done\" } }\n",
    )
    .unwrap();
}

#[test]
fn every_save_style_reloads_natively() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("common.rhai"), module(1.0)).unwrap();
    fs::write(dir.join("steer.rhai"), policy(0.01)).unwrap();
    let mut run = start(dir, "auto");
    run.wait("two epochs", |r| r.metrics().len() >= 2);

    // In place.
    fs::write(dir.join("steer.rhai"), policy(0.02)).unwrap();
    run.wait_reload(1, 0.02);
    // Temp file renamed over (vim, VS Code).
    fs::write(dir.join(".steer.rhai.swp"), policy(0.03)).unwrap();
    fs::rename(dir.join(".steer.rhai.swp"), dir.join("steer.rhai")).unwrap();
    run.wait_reload(2, 0.03);
    // Delete, then create.
    fs::remove_file(dir.join("steer.rhai")).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    fs::write(dir.join("steer.rhai"), policy(0.04)).unwrap();
    run.wait_reload(3, 0.04);
    // 20 saves within 100 ms: the last one wins.
    for k in 0..20 {
        fs::write(dir.join("steer.rhai"), policy(0.05 + k as f64 * 0.0001)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    run.wait("the last of 20 saves", |r| {
        r.metrics().iter().any(|m| m["lr"].as_f64() == Some(0.0519))
    });
    // An imported module.
    let reloads = run.kinds("reload").len();
    fs::write(dir.join("common.rhai"), module(2.0)).unwrap();
    run.wait_reload(reloads + 1, 0.1038);
    // A broken save keeps the running version; the fix is picked up.
    fs::write(
        dir.join("steer.rhai"),
        "fn on_epoch_start(ctx) {\n    #{ lr: 0.3 + }\n}\n",
    )
    .unwrap();
    run.wait("reload_failed", |r| !r.kinds("reload_failed").is_empty());
    let failed = &run.kinds("reload_failed")[0];
    assert_eq!(
        (failed["line"].as_u64(), failed["column"].as_u64()),
        (Some(2), Some(18)),
        "{failed}"
    );
    let reloads = run.kinds("reload").len();
    fs::write(dir.join("steer.rhai"), policy(0.06)).unwrap();
    run.wait_reload(reloads + 1, 0.12);
    stop(dir);
    run.wait("the end of the run", |r| !r.kinds("run_end").is_empty());
    let _ = run.child.0.wait();

    // The LRs of the 20 quick saves in between may or may not have had an epoch each.
    let mut lrs: Vec<f64> = run
        .metrics()
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    lrs.dedup();
    lrs.retain(|lr| !(0.0499..0.0519).contains(lr));
    assert_eq!(lrs, [0.01, 0.02, 0.03, 0.04, 0.0519, 0.1038, 0.12]);
    let m = run.metrics();
    for (i, r) in m.iter().enumerate() {
        assert_eq!(r["epoch"], i, "no epoch missing or repeated");
        assert_eq!(r["policy"]["n"], (i + 1) as f64, "this survives reloads");
    }
}

#[test]
fn polling_reloads_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("common.rhai"), module(1.0)).unwrap();
    fs::write(dir.join("steer.rhai"), policy(0.01)).unwrap();
    let mut run = start(dir, "poll");
    run.wait("two epochs", |r| r.metrics().len() >= 2);
    fs::write(dir.join("steer.rhai"), policy(0.02)).unwrap();
    run.wait_reload(1, 0.02);
    fs::write(dir.join("steer.rhai.tmp"), policy(0.03)).unwrap();
    fs::rename(dir.join("steer.rhai.tmp"), dir.join("steer.rhai")).unwrap();
    run.wait_reload(2, 0.03);
    fs::write(
        dir.join("steer.rhai"),
        "fn on_epoch_start(ctx) { #{ lr: } }\n",
    )
    .unwrap();
    run.wait("reload_failed", |r| !r.kinds("reload_failed").is_empty());
    // Restored to the running text: nothing to swap, and the error is cleared.
    fs::write(dir.join("steer.rhai"), policy(0.03)).unwrap();
    run.wait("the error cleared", |r| r.kinds("reload").len() >= 3);
    let cleared = &run.kinds("reload")[2];
    assert_eq!(cleared["message"], "v3 (error cleared)", "{cleared}");
    fs::write(dir.join("steer.rhai"), policy(0.04)).unwrap();
    run.wait_reload(4, 0.04);
    stop(dir);
    run.wait("the end of the run", |r| !r.kinds("run_end").is_empty());
    let _ = run.child.0.wait();
    check_run(&run, &[0.01, 0.02, 0.03, 0.04]);
}
