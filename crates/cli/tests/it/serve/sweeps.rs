//! A sweep steered through `rudder serve`: a trial paused from the sweep's page
//! frees its slot for the next, is resumed and finishes its epochs from its
//! checkpoint; a control the coordinator cannot carry out is recorded as invalid.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{Server, until};
use crate::{Reaped, bin, lines_so_far};

fn post(server: &Server, path: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let mut s = TcpStream::connect(server.host()).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {h}\r\nOrigin: http://{h}\r\nX-Rudder-Token: {t}\r\nContent-Type: application/json\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{body}",
        h = server.host(),
        t = server.token,
        n = body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

fn record(dir: &std::path::Path) -> Value {
    fs::read_to_string(dir.join("runs/s/sweep.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn status(dir: &std::path::Path, i: usize) -> String {
    record(dir)["trials"][i]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_trial_paused_and_resumed_from_the_sweeps_page_finishes_its_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("runs")).unwrap();
    let server = Server::start(dir, &["runs"]);
    let mut sweep = Reaped(
        Command::new(bin())
            .args([
                "sweep",
                "-q",
                "--multipliers",
                "0.5,1,2",
                "--epochs",
                "6",
                "--jobs",
                "1",
            ])
            .args(["--batch-size", "32", "--out", "runs/s"])
            .current_dir(dir)
            .env("RUDDER_FAULT", "pace:10")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until("the sweep's record", || status(dir, 0) == "running");
    let names: Vec<String> = record(dir)["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dir"].as_str().unwrap().to_string())
        .collect();
    let first = dir.join("runs/s").join(&names[0]).join("metrics.jsonl");
    until("the first trial's first epoch", || {
        !lines_so_far(&first).is_empty()
    });
    let path = "/api/sweep/control?id=0/s";
    let (code, out) = post(&server, path, &json!({"pause": names[0]}));
    assert_eq!(code, 200, "{out}");
    let (code, _) = post(&server, path, &json!({"pause": "no-such-trial"}));
    assert_eq!(code, 400);
    until("the pause", || status(dir, 0) == "paused");
    until("the next trial in its slot", || status(dir, 1) == "running");
    // A resume of a trial that is not paused is the coordinator's to refuse.
    let (code, _) = post(&server, path, &json!({"resume": names[2]}));
    assert_eq!(code, 200);
    let (code, out) = post(&server, path, &json!({"resume": [names[0]]}));
    assert_eq!(code, 200, "{out}");
    assert!(sweep.0.wait().unwrap().success());
    let end = record(dir);
    for (i, t) in end["trials"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            (i, t["status"].as_str(), t["epochs_run"].as_u64()),
            (i, Some("done"), Some(6)),
            "{t}"
        );
    }
    let events = lines_so_far(&dir.join("runs/s/events.jsonl"));
    let console: Vec<&Value> = events.iter().filter(|e| e["policy"] == "console").collect();
    let kinds: Vec<(&str, String)> = console
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["decision"].to_string()))
        .collect();
    assert_eq!(kinds.len(), 3, "{console:#?}");
    assert_eq!(
        kinds[0],
        ("decision", json!({"pause": [names[0]]}).to_string())
    );
    assert_eq!(kinds[1].0, "invalid_decision");
    assert!(
        console[1]["message"].as_str().unwrap().contains("pending"),
        "{}",
        console[1]
    );
    assert_eq!(
        kinds[2],
        ("decision", json!({"resume": [names[0]]}).to_string())
    );
    assert!(
        console
            .iter()
            .all(|e| e["asked"].is_string() && e["id"].is_string())
    );
    // The paused trial went on from its checkpoint: its epochs are 0..6, each once.
    let m = lines_so_far(&dir.join("runs/s").join(&names[0]).join("metrics.jsonl"));
    let epochs: Vec<u64> = m.iter().filter_map(|r| r["epoch"].as_u64()).collect();
    assert_eq!(epochs, [0, 1, 2, 3, 4, 5]);
}
