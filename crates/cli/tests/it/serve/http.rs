//! The server's rules, by hand-made requests: no token, a wrong one, the cookie alone
//! for a change, another origin, another host name, `../` and links out of the
//! served folders, a policy file named by a hostile run folder, bodies and headers
//! past their bounds, a client that never finishes its headers.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::Server;
use crate::rudder;

/// One request (closing the connection): status, headers, body.
fn send(server: &Server, raw: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(server.host()).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // A server that refuses a body may hang up before it is all written.
    let _refused = s.write_all(raw.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn get(server: &Server, path: &str, headers: &str) -> (u16, String, String) {
    send(
        server,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}\r\n",
            server.host()
        ),
    )
}

fn post(server: &Server, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    send(
        server,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
            server.host(),
            body.len()
        ),
    )
}

/// A finished run in `dir/runs/done` whose policy is `dir/p.rhai`, and beside it a run
/// folder outside the served one, a link to it, and a hostile run that names files
/// outside as its policy's.
fn runs(dir: &std::path::Path) {
    fs::create_dir_all(dir.join("runs")).unwrap();
    fs::write(dir.join("p.rhai"), "fn on_epoch_end(ctx) { () }\n").unwrap();
    let o = rudder(
        dir,
        &[
            "train",
            "-q",
            "--epochs",
            "1",
            "--policy",
            "p.rhai",
            "--out",
            "runs/done",
        ],
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    fs::create_dir_all(dir.join("outside")).unwrap();
    fs::write(dir.join("outside/config.json"), "{}").unwrap();
    fs::write(dir.join("outside/secret.rhai"), "// secret\n").unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), dir.join("runs/link")).unwrap();
    fs::create_dir_all(dir.join("runs/hostile")).unwrap();
    let cfg = json!({"provenance": [{"policy": "x", "files": [
        {"path": dir.join("outside/secret.rhai").display().to_string(), "sha256": ""},
        {"path": "/etc/passwd", "sha256": ""}]}]});
    fs::write(dir.join("runs/hostile/config.json"), cfg.to_string()).unwrap();
    std::os::unix::fs::symlink(
        dir.join("outside/secret.rhai"),
        dir.join("runs/done/link.rhai"),
    )
    .unwrap();
}

#[test]
fn the_token_the_origin_and_the_served_folders_bound_every_request() {
    let tmp = tempfile::tempdir().unwrap();
    runs(tmp.path());
    let server = Server::start(tmp.path(), &["runs"]);
    let t = &server.token;
    let bearer = format!("Authorization: Bearer {t}\r\n");
    // No token, a wrong one (same length), an unknown page: 401, nothing else said.
    assert_eq!(get(&server, "/api/list", "").0, 401);
    assert_eq!(get(&server, "/", "").0, 401);
    assert_eq!(get(&server, "/nothing", "").0, 401);
    let wrong = format!("Authorization: Bearer {}\r\n", "0".repeat(t.len()));
    assert_eq!(get(&server, "/api/list", &wrong).0, 401);
    assert_eq!(get(&server, &format!("/api/list?token={}x", t), "").0, 401);
    // The URL's token once: a cookie that scripts cannot read and other sites never send.
    let (code, head, _) = get(&server, &format!("/?token={t}"), "");
    assert_eq!(code, 303);
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = format!("Cookie: rudder_token={t}\r\n");
    let (code, head, page) = get(&server, "/", &jar);
    assert_eq!(code, 200);
    assert!(page.contains("rudder"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy"),
        "{head}"
    );
    let (code, _, list) = get(&server, "/api/list", &bearer);
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["0/done", "0/hostile"], "the link out is not listed");
    // Another host name (a rebinding page) gets nothing, token or not.
    let rebound = send(
        &server,
        &format!(
            "GET /api/list HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n{bearer}\r\n"
        ),
    );
    assert_eq!(rebound.0, 403);
    // A change: the token in a header and this server's origin, or 403.
    let origin = format!("Origin: http://{}\r\n", server.host());
    let stop = r#"{"stop": true}"#;
    let path = "/api/control?id=0/done";
    assert_eq!(
        post(&server, path, &format!("{jar}{origin}"), stop).0,
        403,
        "the cookie alone"
    );
    assert_eq!(
        post(
            &server,
            path,
            &format!("{bearer}Origin: http://evil.example\r\n"),
            stop
        )
        .0,
        403
    );
    assert_eq!(post(&server, path, &bearer, stop).0, 403, "no origin");
    assert_eq!(post(&server, "/api/control?id=0/done", "", stop).0, 401);
    // Past the guard: the run is not training, so nothing is appended.
    let (code, _, body) = post(&server, path, &format!("{bearer}{origin}"), stop);
    assert_eq!(code, 409, "{body}");
    assert!(!tmp.path().join("runs/done/control.jsonl").exists());
    let (code, _, body) = post(
        &server,
        path,
        &format!("{bearer}{origin}"),
        r#"{"log": "x"}"#,
    );
    assert_eq!(code, 400, "{body}");
    // Ids and paths that lead out of the served folder.
    for id in [
        "0/../outside",
        "0/link",
        "1/done",
        "0/./done",
        "0/done/..",
        "%2e%2e",
    ] {
        assert_eq!(
            get(&server, &format!("/api/run?id={id}"), &bearer).0,
            404,
            "{id}"
        );
    }
    for p in [
        "../../outside/secret.rhai",
        "link.rhai",
        "/etc/passwd",
        "p.rhai/../p.rhai",
    ] {
        let (code, _, body) = get(&server, &format!("/api/file?id=0/done&path={p}"), &bearer);
        assert_eq!(code, 403, "{p}: {body}");
    }
    for p in [
        tmp.path().join("outside/secret.rhai").display().to_string(),
        "/etc/passwd".into(),
    ] {
        let (code, _, body) = get(
            &server,
            &format!("/api/file?id=0/hostile&path={p}"),
            &bearer,
        );
        assert_eq!(code, 403, "{p}: {body}");
        assert!(!body.contains("secret") || body.contains("error"), "{body}");
    }
    // Nor written: the save names a file only a hostile run folder claims.
    let secret = tmp.path().join("outside/secret.rhai").display().to_string();
    let edit = json!({"path": secret, "source": "fn on_epoch_end(ctx) { () }\n", "sha256": ""})
        .to_string();
    let (code, _, body) = post(
        &server,
        "/api/policy/save?id=0/hostile",
        &format!("{bearer}{origin}"),
        &edit,
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("outside/secret.rhai")).unwrap(),
        "// secret\n"
    );
    let (code, _, body) = get(&server, "/api/file?id=0/done&path=p.rhai", &bearer);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("on_epoch_end"));
    // The standard library's sources are built in: shown, never read from a file.
    let (code, _, body) = get(
        &server,
        "/api/file?id=0/done&path=%3Cembedded%3E/lr/cosine.rhai",
        &bearer,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"readonly\":true"), "{body}");
    // A text the run never loaded is not opened (the run folder cannot vouch for it).
    fs::write(
        tmp.path().join("p.rhai"),
        "// changed behind the run's back\n",
    )
    .unwrap();
    let (code, _, body) = get(&server, "/api/file?id=0/done&path=p.rhai", &bearer);
    assert_eq!(code, 403, "{body}");
    // Bounds: a body past 3 MiB, headers past 64 KiB, a client that never ends its
    // headers (the server hangs up on it; the test waits on its read timeout).
    let big = format!(
        "{{\"path\": \"p.rhai\", \"source\": \"{}\"}}",
        "a".repeat(4 << 20)
    );
    let (code, _, _) = post(
        &server,
        "/api/policy/check?id=0/done",
        &format!("{bearer}{origin}"),
        &big,
    );
    assert!(code == 413 || code == 0, "{code}");
    let long = format!("X-Long: {}\r\n", "b".repeat(80 << 10));
    let (code, _, _) = get(&server, "/api/list", &format!("{bearer}{long}"));
    assert!(code == 431 || code == 0, "{code}");
    let mut slow = TcpStream::connect(server.host()).unwrap();
    slow.write_all(b"GET /api/list HTTP/1.1\r\nHost: x")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let n = slow.read_to_end(&mut buf);
    assert!(
        n.is_ok(),
        "the server closes a connection whose headers never end"
    );
    // And the server still answers.
    assert_eq!(get(&server, "/api/list", &bearer).0, 200);
}

#[test]
fn another_address_warns_and_a_missing_folder_is_exit_2() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let o = rudder(tmp.path(), &["serve", "nope", "--port", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = crate::stderr(&o);
    assert!(err.contains("nope: cannot be served"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let mut child = crate::Reaped(
        std::process::Command::new(crate::bin())
            .args(["serve", "--host", "0.0.0.0", "--port", "0"])
            .current_dir(tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with(
            "rudder: warning: --host 0.0.0.0: the dashboard can be reached from other machines"
        ),
        "{line}"
    );
    assert!(
        tmp.path().join("runs").is_dir(),
        "the default folder is made"
    );
}
