//! Policy libraries from git: `rudder plugin add | install | update | remove | list |
//! verify` against repositories each test builds with real git, fetched over
//! `file://` and over `git daemon` on 127.0.0.1, each test with its own cache
//! (`$RUDDER_HOME`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{bin, jsonl, repo};

/// Runs git in `dir` with no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `rudder ARGS` in `dir` with the cache `home`.
fn run(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("RUDDER_HOME", home)
        .env_remove("RUDDER_PATH")
        .env_remove("RUDDER_DATA")
        .output()
        .expect("rudder runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and expects exit `code`; returns stdout and stderr.
fn expect(dir: &Path, home: &Path, args: &[&str], code: i32) -> (String, String) {
    let o = run(dir, home, args);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "rudder {args:?}\nstdout: {out}\nstderr: {err}"
    );
    (out, err)
}

/// A working repository at `dir/NAME-src` (its manifest named `name`, one policy
/// `schedule` and one helper module) and a bare clone of it at `dir/NAME.git`.
struct Repo {
    work: PathBuf,
    bare: PathBuf,
}

const POLICY: &str = "//! Halves the LR once at epoch 2.\nfn on_epoch_end(ctx) {\n    if ctx.epoch == 2 { #{ lr: ctx.lr * 0.5, reason: \"half\" } } else { #{} }\n}\n";

fn manifest(name: &str, version: &str, extra: &str) -> String {
    format!(
        r#"{{"name": "{name}", "version": "{version}", "description": "test", "api": 1, "policies": {{"schedule": "schedule.rhai"}}, "license": "MIT"{extra}}}"#
    )
}

impl Repo {
    fn new(dir: &Path, name: &str) -> Repo {
        let work = dir.join(format!("{name}-src"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        let r = Repo {
            work,
            bare: dir.join(format!("{name}.git")),
        };
        r.write("schedule.rhai", POLICY);
        r.write("README.md", "a test plugin\n");
        r
    }

    fn write(&self, file: &str, body: &str) {
        let p = self.work.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// Commits everything as `version` (its manifest says so) and tags `vVERSION`.
    fn release(&self, name: &str, version: &str, extra: &str) -> String {
        self.write("plugin.json", &manifest(name, version, extra));
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-qm", version]);
        git(&self.work, &["tag", &format!("v{version}")]);
        self.publish();
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn publish(&self) {
        if !self.bare.exists() {
            git(
                self.work.parent().unwrap(),
                &[
                    "clone",
                    "-q",
                    "--bare",
                    self.work.to_str().unwrap(),
                    self.bare.to_str().unwrap(),
                ],
            );
        } else {
            git(
                &self.work,
                &[
                    "push",
                    "-q",
                    "-f",
                    "--tags",
                    self.bare.to_str().unwrap(),
                    "HEAD:main",
                ],
            );
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// `git daemon` serving `base` on 127.0.0.1, stopped when dropped.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("git")
                .args([
                    "daemon",
                    "--export-all",
                    "--reuseaddr",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", base.display()),
                    &base.display().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("git daemon starts");
            // Ready when it accepts a connection (or gone if the port was taken).
            for _ in 0..500 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Daemon { child, port };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rudder train --epochs EPOCHS -q --policy POLICY --out OUT`, expecting `code`.
fn train(
    dir: &Path,
    home: &Path,
    epochs: &str,
    policy: &str,
    out: &str,
    code: i32,
) -> (String, String) {
    expect(
        dir,
        home,
        &[
            "train", "--epochs", epochs, "-q", "--policy", policy, "--out", out,
        ],
        code,
    )
}

/// A run's `config.json`.
fn config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

fn lock_of(project: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(project.join("rudder.lock")).unwrap()).unwrap()
}

fn locked<'a>(lock: &'a toml::Value, name: &str) -> &'a toml::Value {
    lock["plugin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{name} is not in the lock: {lock}"))
}

fn project(tmp: &Path, name: &str) -> PathBuf {
    let p = tmp.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn add_install_update_over_file_and_git_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("cache");
    let r = Repo::new(t, "goyal");
    let v100 = r.release("goyal", "1.0.0", "");
    let v110 = r.release("goyal", "1.1.0", "");
    r.release("goyal", "2.0.0", "");

    // add over file:// with a requirement: the newest 1.x.
    let a = project(t, "a");
    let (out, _) = expect(
        &a,
        &home,
        &["plugin", "add", &r.url(), "--version", "^1.0"],
        0,
    );
    assert!(out.contains("added goyal"), "{out}");
    let toml_text = std::fs::read_to_string(a.join("rudder.toml")).unwrap();
    assert!(toml_text.contains("version = \"^1.0\""), "{toml_text}");
    let lock = lock_of(&a);
    let g = locked(&lock, "goyal");
    assert_eq!(g["version"].as_str(), Some("1.1.0"));
    assert_eq!(
        g["source"].as_str().unwrap(),
        format!("git+{}?tag=v1.1.0#{v110}", r.url())
    );
    let checksum = g["checksum"].as_str().unwrap().to_string();
    assert!(
        checksum.starts_with("sha256:") && checksum.len() == 71,
        "{checksum}"
    );
    let (out, _) = expect(&a, &home, &["plugin", "list"], 0);
    assert!(
        out.lines().any(|l| l.starts_with("goyal")
            && l.contains("1.1.0")
            && l.contains(&v110[..12])
            && l.ends_with("ok")),
        "{out}"
    );

    // A second project and a second machine (a fresh cache): the same bytes.
    let b = project(t, "b");
    std::fs::copy(a.join("rudder.toml"), b.join("rudder.toml")).unwrap();
    std::fs::copy(a.join("rudder.lock"), b.join("rudder.lock")).unwrap();
    let home2 = t.join("cache2");
    let (out, _) = expect(&b, &home2, &["plugin", "install", "--locked"], 0);
    assert!(
        out.contains(&format!(
            "installed goyal 1.1.0 ({}) {checksum}",
            &v110[..12]
        )),
        "{out}"
    );
    let (out, _) = expect(&b, &home2, &["plugin", "verify"], 0);
    assert_eq!(out.trim(), format!("goyal ok {checksum}"));
    assert_eq!(
        std::fs::read(b.join("rudder.lock")).unwrap(),
        std::fs::read(a.join("rudder.lock")).unwrap()
    );

    // update stays within ^1: 1.2.0 yes, 2.0.0 no.
    r.write("schedule.rhai", &format!("{POLICY}// 1.2\n"));
    let v120 = r.release("goyal", "1.2.0", "");
    let (out, _) = expect(&a, &home, &["plugin", "update"], 0);
    assert_eq!(
        out.trim(),
        format!("goyal 1.1.0 ({}) -> 1.2.0 ({})", &v110[..12], &v120[..12])
    );
    assert_eq!(
        locked(&lock_of(&a), "goyal")["version"].as_str(),
        Some("1.2.0")
    );
    let (out, _) = expect(&a, &home, &["plugin", "update", "goyal"], 0);
    assert!(out.contains("unchanged"), "{out}");

    // The same tag over git:// (a real network transport) has the same checksum as
    // over file://.
    let daemon = Daemon::start(t);
    let c = project(t, "c");
    expect(
        &c,
        &t.join("cache3"),
        &["plugin", "add", &daemon.url("goyal.git"), "--tag", "v1.0.0"],
        0,
    );
    let d = project(t, "d");
    expect(
        &d,
        &home,
        &["plugin", "add", &r.url(), "--tag", "v1.0.0"],
        0,
    );
    let over_git = lock_of(&c);
    let over_file = lock_of(&d);
    assert!(
        locked(&over_git, "goyal")["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?tag=v1.0.0#{v100}"))
    );
    assert_eq!(
        locked(&over_git, "goyal")["checksum"],
        locked(&over_file, "goyal")["checksum"]
    );

    // A branch: its head, moved by update.
    git(&r.work, &["checkout", "-q", "-b", "dev"]);
    r.write("extra.rhai", "fn helper() { 1 }\n");
    git(&r.work, &["add", "-A"]);
    git(&r.work, &["commit", "-qm", "dev"]);
    git(&r.work, &["push", "-q", r.bare.to_str().unwrap(), "dev"]);
    let dev1 = git(&r.work, &["rev-parse", "HEAD"]);
    let e = project(t, "e");
    expect(
        &e,
        &home,
        &["plugin", "add", &daemon.url("goyal.git"), "--branch", "dev"],
        0,
    );
    assert!(
        locked(&lock_of(&e), "goyal")["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?branch=dev#{dev1}"))
    );
    r.write("extra.rhai", "fn helper() { 2 }\n");
    git(&r.work, &["commit", "-qam", "dev2"]);
    git(&r.work, &["push", "-q", r.bare.to_str().unwrap(), "dev"]);
    let dev2 = git(&r.work, &["rev-parse", "HEAD"]);
    // install keeps the locked commit; update moves to the head.
    expect(&e, &home, &["plugin", "install"], 0);
    assert!(
        locked(&lock_of(&e), "goyal")["source"]
            .as_str()
            .unwrap()
            .ends_with(&dev1)
    );
    let (out, _) = expect(&e, &home, &["plugin", "update"], 0);
    assert!(out.contains(&dev2[..12]), "{out}");

    // remove takes the entry out of both files.
    let (out, _) = expect(&e, &home, &["plugin", "remove", "goyal"], 0);
    assert_eq!(out.trim(), "removed goyal");
    assert!(
        !std::fs::read_to_string(e.join("rudder.toml"))
            .unwrap()
            .contains("goyal")
    );
    assert!(lock_of(&e).get("plugin").is_none());
    let (_, err) = expect(&e, &home, &["plugin", "remove", "goyal"], 2);
    assert!(err.contains("no plugin goyal"), "{err}");
}

#[test]
fn the_lock_is_enforced_at_train_and_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("cache");
    let r = Repo::new(t, "goyal");
    let v1 = r.release("goyal", "1.0.0", "");
    let a = project(t, "a");
    expect(
        &a,
        &home,
        &["plugin", "add", &r.url(), "--version", "^1"],
        0,
    );
    let checksum = locked(&lock_of(&a), "goyal")["checksum"]
        .as_str()
        .unwrap()
        .to_string();

    // A run records what steered it: files with their hashes, the plugin's origin.
    train(&a, &home, "1", "goyal/schedule", "run", 0);
    let cfg = config(&a.join("run"));
    let p = &cfg["provenance"][0];
    assert_eq!(p["policy"], "goyal/schedule");
    assert_eq!(p["plugin"]["name"], "goyal");
    assert_eq!(p["plugin"]["version"], "1.0.0");
    assert_eq!(p["plugin"]["commit"], v1.as_str());
    assert_eq!(p["plugin"]["checksum"], checksum.as_str());
    let script = p["files"][0]["path"].as_str().unwrap();
    assert!(
        script.ends_with(&format!("plugins/goyal/{v1}/schedule.rhai")),
        "{script}"
    );
    let bytes = std::fs::read(script).unwrap();
    assert_eq!(
        p["files"][0]["sha256"].as_str().unwrap(),
        rudder_policy::checksum::sha256(&bytes)
    );
    let start = &jsonl(&a.join("run/events.jsonl"))[0];
    assert_eq!(start["kind"], "run_start");
    assert_eq!(start["provenance"], cfg["provenance"]);
    // The report's header, policy list and a sweep show it too.
    let shown = format!("policies goyal/schedule (plugin goyal 1.0.0 {})", &v1[..12]);
    let page = std::fs::read_to_string(a.join("run/report.html")).unwrap();
    assert!(page.contains(&shown), "the run's report shows {shown:?}");
    expect(&a, &home, &["report", "run", "--out", "page.html"], 0);
    assert!(
        std::fs::read_to_string(a.join("page.html"))
            .unwrap()
            .contains(&shown)
    );
    let (out, _) = expect(&a, &home, &["policy", "list"], 0);
    assert!(
        out.lines().any(|l| l.starts_with("goyal/schedule")
            && l.ends_with(&format!("(plugin goyal 1.0.0 {})", &v1[..12]))),
        "{out}"
    );
    expect(
        &a,
        &home,
        &[
            "sweep",
            "--multipliers",
            "1,2",
            "--epochs",
            "1",
            "-q",
            "--policy",
            "goyal/schedule",
            "--out",
            "sweep",
        ],
        0,
    );
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("sweep/sweep.json")).unwrap())
            .unwrap();
    assert_eq!(
        sweep["provenance"], cfg["provenance"],
        "a sweep records it once"
    );

    // An installed file edited: train refuses before anything runs, verify names it.
    let home_dir = home.join("plugins/goyal").join(&v1);
    let file = home_dir.join("schedule.rhai");
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    assert!(perms.readonly(), "installed files are read-only");
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).unwrap();
    std::fs::write(&file, format!("{POLICY}// tampered\n")).unwrap();
    let tampered = rudder_policy::checksum::sha256(&std::fs::read(&file).unwrap());
    let (_, err) = train(&a, &home, "1", "goyal/schedule", "run2", 2);
    assert!(
        err.contains("plugin goyal")
            && err.contains("schedule.rhai")
            && err.contains(&tampered)
            && err.contains(&checksum)
            && err.contains("rudder plugin install"),
        "{err}"
    );
    assert!(!a.join("run2").exists(), "nothing ran");
    let (out, _) = expect(&a, &home, &["plugin", "verify"], 1);
    assert!(
        out.contains("goyal modified") && out.contains(&format!("schedule.rhai: {tampered}")),
        "{out}"
    );
    let (out, _) = expect(&a, &home, &["plugin", "list"], 0);
    assert!(out.contains("modified"), "{out}");
    // install repairs it.
    let (out, _) = expect(&a, &home, &["plugin", "install"], 0);
    assert!(out.contains("(repaired)"), "{out}");
    expect(&a, &home, &["plugin", "verify"], 0);

    // A lock edited to another checksum: refused, and the cached folder (good for
    // every other project) left as it is.
    let lock_text = std::fs::read_to_string(a.join("rudder.lock")).unwrap();
    std::fs::write(
        a.join("rudder.lock"),
        lock_text.replace(&checksum, &format!("sha256:{}", "0".repeat(64))),
    )
    .unwrap();
    let (_, err) = expect(&a, &home, &["plugin", "install", "--locked"], 2);
    assert!(err.contains("the lock was edited"), "{err}");
    assert!(file.is_file(), "the cached plugin is kept");
    std::fs::write(a.join("rudder.lock"), &lock_text).unwrap();
    expect(&a, &home, &["plugin", "verify"], 0);

    // An entry of rudder.toml that the lock lacks: train says to install.
    let manifest = std::fs::read_to_string(a.join("rudder.toml")).unwrap();
    std::fs::write(
        a.join("rudder.toml"),
        format!("{manifest}extra = {{ path = \"../nowhere\" }}\n"),
    )
    .unwrap();
    let (_, err) = train(&a, &home, "1", "goyal/schedule", "run4", 2);
    assert!(
        err.contains("extra not in rudder.lock; run rudder plugin install"),
        "{err}"
    );
    // A rev that is no commit hash is refused where it is written.
    std::fs::write(
        a.join("rudder.toml"),
        format!(
            "{manifest}bad = {{ git = \"{}\", rev = \"36\" }}\n",
            r.url()
        ),
    )
    .unwrap();
    let (_, err) = expect(&a, &home, &["plugin", "install"], 2);
    assert!(
        err.contains("rudder.toml") && err.contains("rev \"36\" is not a commit hash"),
        "{err}"
    );
    std::fs::write(a.join("rudder.toml"), &manifest).unwrap();

    // --locked refuses a manifest the lock does not meet; plain install re-resolves.
    let v2 = r.release("goyal", "2.0.0", "");
    let manifest = std::fs::read_to_string(a.join("rudder.toml")).unwrap();
    std::fs::write(a.join("rudder.toml"), manifest.replace("\"^1\"", "\"^2\"")).unwrap();
    let (_, err) = expect(&a, &home, &["plugin", "install", "--locked"], 2);
    assert!(err.contains("--locked") && err.contains("goyal"), "{err}");
    expect(&a, &home, &["plugin", "install"], 0);
    assert!(
        locked(&lock_of(&a), "goyal")["source"]
            .as_str()
            .unwrap()
            .ends_with(&v2)
    );

    // A resume says the locked plugin changed.
    expect(
        &a,
        &home,
        &["train", "--resume", "run", "--epochs", "2", "-q"],
        0,
    );
    let resume = jsonl(&a.join("run/events.jsonl"))
        .into_iter()
        .find(|e| e["kind"] == "resume")
        .unwrap();
    let msg = resume["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "plugin goyal changed: 1.0.0 {} -> 2.0.0 {}",
            &v1[..12],
            &v2[..12]
        )),
        "{msg}"
    );

    // Offline: the cache is enough once installed, even with the repository gone.
    std::fs::remove_dir_all(&r.bare).unwrap();
    let b = project(t, "b");
    std::fs::copy(a.join("rudder.toml"), b.join("rudder.toml")).unwrap();
    std::fs::copy(a.join("rudder.lock"), b.join("rudder.lock")).unwrap();
    expect(
        &b,
        &home,
        &["plugin", "install", "--offline", "--locked"],
        0,
    );
    train(&b, &home, "1", "goyal/schedule", "run", 0);
    let (_, err) = expect(&b, &t.join("empty"), &["plugin", "install", "--offline"], 2);
    assert!(err.contains("not in the cache"), "{err}");
}

#[test]
fn dependencies_conflicts_and_cycles() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("cache");
    let common = Repo::new(t, "common");
    common.write("util.rhai", "fn factor() { 0.5 }\n");
    common.release("common", "1.0.0", "");
    common.write("util.rhai", "fn factor() { 0.25 }\n");
    common.release("common", "2.0.0", "");
    let edge = Repo::new(t, "edge");
    edge.write("schedule.rhai", "import \"common/util\" as u;\nfn on_epoch_end(ctx) { #{ lr: ctx.lr * u::factor(), reason: \"dep\" } }\n");
    let deps = format!(
        r#", "dependencies": {{"common": {{"git": "{}", "version": "^1"}}}}"#,
        common.url()
    );
    edge.release("edge", "1.0.0", &deps);

    // A dependency is resolved, locked and importable from the plugin that declares it.
    let a = project(t, "a");
    let (out, _) = expect(&a, &home, &["plugin", "add", &edge.url()], 0);
    assert!(
        out.contains("installed common 1.0.0") && out.contains("installed edge 1.0.0"),
        "{out}"
    );
    let lock = lock_of(&a);
    assert_eq!(
        locked(&lock, "edge")["dependencies"].as_array().unwrap()[0].as_str(),
        Some("common")
    );
    expect(
        &a,
        &home,
        &[
            "train",
            "--epochs",
            "2",
            "-q",
            "--lr",
            "0.4",
            "--policy",
            "edge/schedule",
            "--out",
            "run",
        ],
        0,
    );
    let lrs: Vec<f64> = jsonl(&a.join("run/metrics.jsonl"))
        .iter()
        .map(|m| m["lr"].as_f64().unwrap())
        .collect();
    assert!(
        (lrs[1] - 0.2).abs() < 1e-6,
        "common 1.0.0's factor 0.5 applied: {lrs:?}"
    );

    // The project asking for common ^2 while edge needs ^1: no single version.
    let (_, err) = expect(
        &a,
        &home,
        &["plugin", "add", &common.url(), "--version", "^2"],
        2,
    );
    assert!(
        err.contains("plugin common")
            && err.contains("rudder.toml requires")
            && err.contains("version ^2")
            && err.contains("plugin edge requires")
            && err.contains("version ^1"),
        "{err}"
    );
    assert_eq!(lock_of(&a), lock, "a refused add leaves the lock as it was");

    // An import from a plugin not declared is refused, naming both.
    let sneak = Repo::new(t, "sneak");
    sneak.write(
        "schedule.rhai",
        "import \"common/util\" as u;\nfn on_epoch_end(ctx) { #{} }\n",
    );
    sneak.release("sneak", "1.0.0", "");
    expect(&a, &home, &["plugin", "add", &sneak.url()], 0);
    let (_, err) = train(&a, &home, "1", "sneak/schedule", "run3", 2);
    assert!(
        err.contains("plugin sneak does not declare a dependency on common"),
        "{err}"
    );

    // A cycle is refused, naming it.
    let x = Repo::new(t, "x");
    let y = Repo::new(t, "y");
    x.release("x", "1.0.0", "");
    y.release(
        "y",
        "1.0.0",
        &format!(r#", "dependencies": {{"x": {{"git": "{}"}}}}"#, x.url()),
    );
    x.release(
        "x",
        "1.1.0",
        &format!(r#", "dependencies": {{"y": {{"git": "{}"}}}}"#, y.url()),
    );
    let c = project(t, "c");
    let (_, err) = expect(&c, &home, &["plugin", "add", &x.url()], 2);
    assert!(err.contains("cycle: x -> y -> x"), "{err}");
    assert!(!c.join("rudder.lock").exists());
}

#[test]
fn hostile_repositories_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("cache");
    let a = project(t, "a");
    let refused = |r: &Repo, extra: &[&str], what: &str| {
        let mut args = vec!["plugin", "add"];
        let url = r.url();
        args.push(&url);
        args.extend_from_slice(extra);
        let (_, err) = expect(&a, &home, &args, 2);
        assert!(err.contains(what), "expected {what:?} in {err}");
        assert!(!a.join("rudder.lock").exists(), "nothing locked");
    };

    // A symlink out of the plugin.
    let r = Repo::new(t, "link");
    std::os::unix::fs::symlink("/etc/passwd", r.work.join("leak")).unwrap();
    r.release("link", "1.0.0", "");
    refused(
        &r,
        &[],
        "\"leak\" is a symlink to \"/etc/passwd\", outside the plugin",
    );
    let r = Repo::new(t, "updir");
    std::os::unix::fs::symlink("../../secret", r.work.join("up")).unwrap();
    r.release("updir", "1.0.0", "");
    refused(&r, &[], "outside the plugin");
    // Inside as written, outside through another link (a -> ., c -> a/../secret).
    let r = Repo::new(t, "chain");
    std::os::unix::fs::symlink(".", r.work.join("a")).unwrap();
    std::os::unix::fs::symlink("a/../secret", r.work.join("c")).unwrap();
    r.release("chain", "1.0.0", "");
    refused(
        &r,
        &[],
        "plugin chain: c is a broken symlink (to \"a/../secret\")",
    );

    // A manifest whose policy file climbs out, and one with a control character.
    let r = Repo::new(t, "climb");
    r.write("plugin.json", "");
    r.release("climb", "1.0.0", "");
    r.write("plugin.json", r#"{"name": "climb", "version": "1.0.1", "description": "x", "api": 1, "policies": {"p": "../../etc/passwd"}, "license": "MIT"}"#);
    git(&r.work, &["commit", "-qam", "climb"]);
    git(&r.work, &["tag", "evil"]);
    r.publish();
    refused(&r, &["--tag", "evil"], "must stay inside the plugin");

    // A name that differs from the entry's: refused unless --name says so.
    let r = Repo::new(t, "other");
    r.release("actual", "1.0.0", "");
    let (out, _) = expect(&a, &home, &["plugin", "add", &r.url(), "--name", "mine"], 0);
    assert!(out.contains("installed mine 1.0.0"), "{out}");
    let toml_text = std::fs::read_to_string(a.join("rudder.toml")).unwrap();
    assert!(toml_text.contains("package = \"actual\""), "{toml_text}");
    expect(&a, &home, &["policy", "check", "mine/schedule"], 0);
    std::fs::write(
        a.join("rudder.toml"),
        toml_text.replace("package = \"actual\"", ""),
    )
    .unwrap();
    let (_, err) = expect(&a, &home, &["plugin", "install"], 2);
    assert!(err.contains("named \"actual\", not \"mine\""), "{err}");
    std::fs::remove_file(a.join("rudder.toml")).unwrap();
    std::fs::remove_file(a.join("rudder.lock")).unwrap();

    // A rudder requirement this rudder does not meet names both versions.
    let r = Repo::new(t, "future");
    r.release("future", "1.0.0", r#", "rudder": ">=99""#);
    refused(&r, &[], "requires rudder >=99; this is rudder");

    // More files than a plugin may have.
    let r = Repo::new(t, "many");
    for i in 0..10_001 {
        std::fs::write(r.work.join(format!("f{i}")), "").unwrap();
    }
    r.release("many", "1.0.0", "");
    refused(&r, &[], "more than 10000 files");

    // More bytes than a plugin may have (incompressible, so the pack is big too).
    let r = Repo::new(t, "big");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..65 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(r.work.join("blob.bin"), bytes).unwrap();
    r.release("big", "1.0.0", "");
    refused(&r, &[], "more than 64 MiB of files");

    // A submodule is not followed and no filter runs (an LFS pointer stays a pointer).
    let r = Repo::new(t, "sub");
    let inner = Repo::new(t, "inner");
    inner.release("inner", "1.0.0", "");
    git(
        &r.work,
        &["submodule", "add", "-q", &inner.url(), "vendored"],
    );
    r.write(
        ".gitattributes",
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    );
    r.write(
        "weights.bin",
        "version https://git-lfs.github.com/spec/v1\noid sha256:0000\nsize 1\n",
    );
    r.release("sub", "1.0.0", "");
    let (out, _) = expect(&a, &home, &["plugin", "add", &r.url()], 0);
    assert!(out.contains("submodule vendored not followed"), "{out}");
    let commit = git(&r.work, &["rev-parse", "HEAD"]);
    let installed = home.join("plugins/sub").join(commit);
    assert!(
        std::fs::read_dir(installed.join("vendored")).is_err(),
        "the submodule is not fetched"
    );
    assert!(
        std::fs::read_to_string(installed.join("weights.bin"))
            .unwrap()
            .starts_with("version https://git-lfs")
    );

    // Bad names and URLs on the command line.
    let (_, err) = expect(
        &a,
        &home,
        &["plugin", "add", "ext::sh -c touch% /tmp/pwned"],
        2,
    );
    assert!(err.contains("neither a git URL nor a folder"), "{err}");
    let (_, err) = expect(&a, &home, &["plugin", "add", "ftp://example.org/x.git"], 2);
    assert!(err.contains("scheme ftp"), "{err}");
    let (_, err) = expect(
        &a,
        &home,
        &["plugin", "add", &inner.url(), "--name", "../x"],
        2,
    );
    assert!(err.contains("--name"), "{err}");

    // A dependency or a lock naming a transport rudder does not fetch from.
    let r = Repo::new(t, "sly");
    r.release(
        "sly",
        "1.0.0",
        r#", "dependencies": {"dep": {"git": "ext::sh -c touch% /tmp/pwned"}}"#,
    );
    let b = project(t, "b");
    let (_, err) = expect(&b, &home, &["plugin", "add", &r.url()], 2);
    assert!(err.contains("is not a git URL"), "{err}");
    // ssh with an option for a host: gitoxide refuses it, and nothing runs.
    std::fs::write(
        b.join("rudder.toml"),
        "[plugins]\nx = { git = \"ssh://-oProxyCommand=touch%20/tmp/pwned/x\" }\n",
    )
    .unwrap();
    std::fs::write(
        b.join("rudder.lock"),
        "version = 1\n\n[[plugin]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"git+ssh://-oProxyCommand=touch%20/tmp/pwned/x#0123456789abcdef0123456789abcdef01234567\"\nchecksum = \"sha256:00\"\n",
    )
    .unwrap();
    for args in [
        &["plugin", "install"][..],
        &["plugin", "install", "--locked"],
    ] {
        let (_, err) = expect(&b, &home, args, 2);
        assert!(err.contains("ProxyCommand"), "the URL is named: {err}");
    }
    assert!(!Path::new("/tmp/pwned").exists());
}

#[test]
fn a_killed_install_leaves_the_cache_whole_and_two_installs_do_not_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let r = Repo::new(t, "goyal");
    for i in 0..200 {
        r.write(&format!("data/f{i}.txt"), &format!("{i}\n").repeat(2000));
    }
    r.release("goyal", "1.0.0", "");
    let a = project(t, "a");
    let seed = t.join("seed");
    expect(&a, &seed, &["plugin", "add", &r.url()], 0);
    let lock_text = std::fs::read(a.join("rudder.lock")).unwrap();

    // kill -9 at many points of an install into a fresh cache: the cache's folder is
    // absent or complete, the lock as it was; the next install completes.
    let home = t.join("cache");
    for delay_us in [0u64, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000] {
        let mut child = Command::new(bin())
            .args(["plugin", "install"])
            .current_dir(&a)
            .env("RUDDER_HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(std::fs::read(a.join("rudder.lock")).unwrap(), lock_text);
        for d in std::fs::read_dir(home.join("plugins/goyal"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if d.path().is_dir() {
                // A folder in place is whole: its files hash to the lock's checksum.
                let entries = rudder_policy::checksum::listing(&d.path()).unwrap();
                let sum = rudder_policy::checksum::checksum(&entries);
                assert!(
                    String::from_utf8_lossy(&lock_text).contains(&sum),
                    "a half-installed folder"
                );
            }
        }
    }
    expect(&a, &home, &["plugin", "install"], 0);
    expect(&a, &home, &["plugin", "verify"], 0);

    // Two installs at once into one fresh cache: both succeed, one folder.
    let home = t.join("cache-two");
    let b = project(t, "b");
    std::fs::copy(a.join("rudder.toml"), b.join("rudder.toml")).unwrap();
    std::fs::copy(a.join("rudder.lock"), b.join("rudder.lock")).unwrap();
    let spawn = |dir: &Path| {
        Command::new(bin())
            .args(["plugin", "install", "--locked"])
            .current_dir(dir)
            .env("RUDDER_HOME", &home)
            .output()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| spawn(&a).unwrap());
        let y = s.spawn(|| spawn(&b).unwrap());
        (x.join().unwrap(), y.join().unwrap())
    });
    assert!(
        x.status.success() && y.status.success(),
        "{} {}",
        text(&x).1,
        text(&y).1
    );
    expect(&a, &home, &["plugin", "verify"], 0);
    expect(&b, &home, &["plugin", "verify"], 0);
    let folders = std::fs::read_dir(home.join("plugins/goyal"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(folders, 1);

    // Four adds at once into one project: every entry ends up in the lock.
    let names = ["p1", "p2", "p3", "p4"];
    let repos: Vec<Repo> = names
        .iter()
        .map(|n| {
            let r = Repo::new(t, n);
            r.release(n, "1.0.0", "");
            r
        })
        .collect();
    let c = project(t, "c");
    let home = t.join("cache-four");
    std::thread::scope(|s| {
        let runs: Vec<_> = repos
            .iter()
            .map(|r| {
                let (c, home) = (&c, &home);
                s.spawn(move || run(c, home, &["plugin", "add", &r.url()]))
            })
            .collect();
        for r in runs {
            let o = r.join().unwrap();
            assert!(o.status.success(), "{}", text(&o).1);
        }
    });
    let lock = lock_of(&c);
    for n in names {
        locked(&lock, n);
    }
    expect(&c, &home, &["plugin", "install", "--locked"], 0);
}

#[test]
fn the_shipped_plugins_install_from_a_path_and_from_git() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("cache");
    let a = project(t, "a");
    for name in ["goyal", "seed-rules"] {
        let src = repo().join("plugins").join(name);
        let (out, _) = expect(&a, &home, &["plugin", "add", src.to_str().unwrap()], 0);
        assert!(out.contains(&format!("added {name}")), "{out}");
    }
    let lock = lock_of(&a);
    let path_sum = locked(&lock, "seed-rules")["checksum"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        locked(&lock, "goyal")["source"]
            .as_str()
            .unwrap()
            .starts_with("path+")
    );
    let (out, _) = expect(&a, &home, &["plugin", "verify"], 0);
    assert!(
        out.contains("seed-rules path plugin (not enforced)"),
        "{out}"
    );
    expect(
        &a,
        &home,
        &[
            "policy",
            "check",
            "goyal/schedule",
            "seed-rules/correct",
            "seed-rules/rescale",
        ],
        0,
    );

    // The same folders as git repositories: the same checksums.
    let b = project(t, "b");
    for name in ["goyal", "seed-rules"] {
        let work = t.join(format!("{name}-src"));
        copy_dir(&repo().join("plugins").join(name), &work);
        git(&work, &["init", "-q"]);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "import"]);
        git(&work, &["tag", "v1.0.0"]);
        let bare = t.join(format!("{name}.git"));
        git(
            t,
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        expect(
            &b,
            &home,
            &[
                "plugin",
                "add",
                &format!("file://{}", bare.display()),
                "--version",
                "^1",
            ],
            0,
        );
    }
    let from_git = lock_of(&b);
    assert_eq!(
        locked(&from_git, "seed-rules")["checksum"]
            .as_str()
            .unwrap(),
        path_sum
    );
    assert_eq!(
        locked(&from_git, "goyal")["checksum"],
        locked(&lock, "goyal")["checksum"]
    );
    train(&b, &home, "1", "seed-rules/correct", "run", 0);
    let cfg = config(&b.join("run"));
    let files: Vec<&str> = cfg["provenance"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("correct.rhai"))
            && files.iter().any(|f| f.ends_with("common.rhai")),
        "the imported module is recorded: {files:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
