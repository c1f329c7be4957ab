//! The dashboard's figures for BENCHMARKS.md, run by hand (they print, they assert
//! nothing about time):
//!
//! ```sh
//! cargo test --release --test it serve::bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `latency`: an epoch's line appearing in `metrics.jsonl` (seen by a 1 ms poll)
//!   against its point drawn on a connected page (the page's own clock).
//! - `memory`: the server's resident memory with 100 runs in the folder, after the
//!   list and every run's page were asked for.
//! - `throughput`: training samples/s alone, and with the server and 50 pages' live
//!   streams connected to it, alternated.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::browser::Browser;
use super::{Server, until};
use crate::{Reaped, bin, lines_so_far, rudder};

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn train(dir: &Path, out: &str, extra: &[&str], pace: Option<&str>) -> Reaped {
    let mut c = Command::new(bin());
    c.args(["train", "-q", "--out", out])
        .args(extra)
        .current_dir(dir);
    if let Some(p) = pace {
        c.env("RUDDER_FAULT", format!("pace:{p}"));
    }
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rudder train starts");
    Reaped(child)
}

fn quantiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "median {:.0} ms, p90 {:.0} ms, max {:.0} ms over {} epochs",
        q(0.5),
        q(0.9),
        q(1.0),
        v.len()
    )
}

#[test]
#[ignore = "a benchmark: prints figures"]
fn latency() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("runs")).unwrap();
    let server = Server::start(dir, &["runs"]);
    let _run = train(
        dir,
        "runs/r",
        &["--epochs", "40", "--batch-size", "32"],
        Some("8"),
    );
    until("the run", || dir.join("runs/r/config.json").exists());
    b.goto(&server.url);
    b.goto(&format!("{}/#/run/0%2Fr", server.base));
    b.until(
        "the run's page",
        "return !!document.querySelector('svg[data-title=\"loss\"]')",
    );
    let path = dir.join("runs/r/metrics.jsonl");
    let mut seen: Vec<f64> = Vec::new();
    let t = Instant::now();
    while seen.len() < 25 && t.elapsed() < Duration::from_secs(300) {
        let n = fs::read_to_string(&path)
            .unwrap_or_default()
            .matches('\n')
            .count();
        while seen.len() < n {
            seen.push(now_ms());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    let drawn = b.js("return window.rudderDrawn", vec![]);
    let lat: Vec<f64> = drawn
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| Some(d["t"].as_f64()? - seen.get(d["epoch"].as_u64()? as usize)?))
        .collect();
    println!(
        "serve latency, epoch end to its point on the page: {}",
        quantiles(lat)
    );
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

fn get(server: &Server, path: &str) -> String {
    let mut s = TcpStream::connect(server.host()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.host(),
        server.token
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".lock" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &to.join(&name));
        } else {
            fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
#[ignore = "a benchmark: prints figures"]
fn memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = rudder(
        dir,
        &[
            "train",
            "-q",
            "--epochs",
            "20",
            "--log-steps",
            "--out",
            "one",
        ],
    );
    assert!(o.status.success());
    for i in 0..100 {
        copy(&dir.join("one"), &dir.join(format!("runs/r{i:03}")));
    }
    let server = Server::start(dir, &["runs"]);
    let pid = server.pid();
    let idle = rss_kib(pid, "VmRSS:");
    let list = get(&server, "/api/list");
    assert!(list.contains("r099"));
    for i in 0..100 {
        let page = get(&server, &format!("/api/run?id=0/r{i:03}"));
        assert!(page.contains("\"metrics\""));
    }
    let _ = get(&server, "/api/list");
    println!(
        "serve memory, 100 runs of 20 epochs ({} steps each logged): started {} KiB, after the list and every page {} KiB resident, peak {} KiB",
        lines_so_far(&dir.join("one/steps.jsonl")).len(),
        idle,
        rss_kib(pid, "VmRSS:"),
        rss_kib(pid, "VmHWM:")
    );
}

/// 50 pages' live streams on run `id`: connections that read what they are sent.
fn pages(server: &Server, id: &str) -> Vec<std::thread::JoinHandle<()>> {
    (0..50)
        .map(|_| {
            let (host, token, id) = (server.host().to_string(), server.token.clone(), id.to_string());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&host).unwrap();
                write!(s, "GET /api/live/run?id={id} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
                let mut buf = [0u8; 65536];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            })
        })
        .collect()
}

fn median_samples(path: &Path) -> f64 {
    let mut v: Vec<f64> = lines_so_far(path)
        .iter()
        .skip(1)
        .filter_map(|m| m["samples_per_s"].as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: prints figures"]
fn throughput() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("runs")).unwrap();
    let args = ["--epochs", "30", "--log-steps", "--threads", "1"];
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let out = format!("runs/alone{round}");
        let mut run = train(dir, &out, &args, None);
        run.0.wait().unwrap();
        alone.push(median_samples(&dir.join(&out).join("metrics.jsonl")));
        let server = Server::start(dir, &["runs"]);
        let out = format!("runs/watched{round}");
        let mut run = train(dir, &out, &args, None);
        until("the run", || dir.join(&out).join("config.json").exists());
        let _streams = pages(&server, &format!("0/watched{round}"));
        run.0.wait().unwrap();
        watched.push(median_samples(&dir.join(&out).join("metrics.jsonl")));
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, w) = (med(alone.clone()), med(watched.clone()));
    println!(
        "serve throughput (digits MLP, --threads 1, median samples/s of epochs 2-30, 3 alternated rounds): alone {alone:.0?} -> {a:.0}; with the server and 50 live pages {watched:.0?} -> {w:.0} (x{:.3})",
        w / a
    );
}
