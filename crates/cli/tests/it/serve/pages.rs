//! The dashboard in a real browser against real runs: a new run appears in the list,
//! its chart gains a point when an epoch ends, set lr changes the next step's LR
//! (steps.jsonl), a policy edited to a syntax error shows the error at its line and
//! leaves the file alone, a fix is saved and reloaded (events.jsonl), stop ends the
//! run with reason `console`; hostile text from a run folder renders as text; a
//! sweep's page shows its trials.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::browser::Browser;
use super::{Server, until};
use crate::{Reaped, bin, lines_so_far, rudder};

/// `rudder train` in `dir` into `runs/r` with policy `p.rhai`, slowed so a person
/// could act on it (every step 4 ms longer), steps logged.
fn train(dir: &Path) -> Reaped {
    let child = Command::new(bin())
        .args([
            "train",
            "-q",
            "--batch-size",
            "16",
            "--epochs",
            "300",
            "--log-steps",
        ])
        .args(["--policy", "p.rhai", "--out", "runs/r"])
        .current_dir(dir)
        .env("RUDDER_FAULT", "pace:4")
        .env_remove("RUDDER_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rudder train starts");
    Reaped(child)
}

fn events(dir: &Path) -> Vec<Value> {
    lines_so_far(&dir.join("runs/r/events.jsonl"))
}

#[test]
fn a_running_run_is_watched_steered_and_its_policy_edited_from_the_browser() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("runs")).unwrap();
    let policy = "// steers nothing yet\nfn on_epoch_end(ctx) {\n    ()\n}\n";
    fs::write(dir.join("p.rhai"), policy).unwrap();
    let server = Server::start(dir, &["runs"]);
    b.goto(&server.url);
    b.until("the list", "return !!document.querySelector('#runs')");
    // A run that starts after the page opened appears in it, running.
    let _run = train(dir);
    b.until("the new run in the list", "const r = document.querySelector('tr[data-id=\"0/r\"] .status'); return !!r && r.dataset.status === 'running';");
    b.click("tr[data-id=\"0/r\"] a");
    b.until("the run's page", "return !!document.querySelector('#controls') && !!document.querySelector('svg[data-title=\"loss\"]')");
    // A chart gains a point when an epoch ends: the LR chart (one point an epoch)
    // comes to show more epochs than had ended when we looked.
    let epochs = lines_so_far(&dir.join("runs/r/metrics.jsonl")).len() as u64;
    b.until("a new point on the LR chart", &format!("return Number(document.querySelector('svg[data-title=\"learning rate\"]').dataset.points) > {epochs}"));
    let both = b.js(
        "const n = (t) => Number(document.querySelector(`svg[data-title=\"${t}\"]`).dataset.points); return [n('learning rate'), n('loss')];",
        vec![],
    );
    let shown = both[0].as_u64().unwrap();
    assert!(lines_so_far(&dir.join("runs/r/metrics.jsonl")).len() as u64 >= shown);
    assert_eq!(
        both[1].as_u64(),
        Some(2 * shown),
        "train and validation loss, a point each an epoch"
    );
    // Set lr: the run takes it at a step boundary; the next steps train with it.
    b.fill("#ctl-lr", "0.0123");
    b.click("#apply");
    b.until(
        "the run's answer",
        "return document.querySelector('#answer').textContent.includes('applied at step')",
    );
    let d = events(dir)
        .into_iter()
        .find(|e| e["kind"] == "decision" && e["policy"] == "console")
        .expect("a decision from console");
    assert_eq!(
        (d["hook"].clone(), d["decision"]["lr"].clone()),
        (json!("control"), json!(0.0123))
    );
    assert!(d["asked"].as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
    let at = d["step"].as_u64().unwrap();
    until("the step after it", || {
        lines_so_far(&dir.join("runs/r/steps.jsonl"))
            .iter()
            .any(|s| s["step"].as_u64() > Some(at))
    });
    let steps = lines_so_far(&dir.join("runs/r/steps.jsonl"));
    let next = steps
        .iter()
        .find(|s| s["step"].as_u64() == Some(at + 1))
        .expect("the next step");
    assert_eq!(next["lr"], json!(0.0123), "{next}");
    let prev = steps
        .iter()
        .find(|s| s["step"].as_u64() == Some(at))
        .expect("the step before");
    assert_ne!(prev["lr"], json!(0.0123));
    // The editor: a syntax error is shown at its line, and the file keeps its text.
    b.click("button.edit");
    b.until("the policy's text", "const e = document.querySelector('#editor'); return !!e && e.value.includes('steers nothing')");
    let broken = "// steers nothing yet\nfn on_epoch_end(ctx) {\n    let x = ;\n}\n";
    b.js(
        "document.querySelector('#editor').value = arguments[0];",
        vec![json!(broken)],
    );
    b.click("#check");
    b.until(
        "the check's problems",
        "return document.querySelectorAll('#problems li').length > 0",
    );
    let problem = b.text("#problems li");
    assert!(problem.contains("p.rhai:3:"), "{problem}");
    b.click("#save-policy");
    b.until(
        "the refusal",
        "return document.querySelector('#edit-answer').className.includes('bad')",
    );
    assert_eq!(fs::read_to_string(dir.join("p.rhai")).unwrap(), policy);
    // A fix passes, is saved, and the run reloads it.
    let fixed =
        "// steers nothing yet\nfn on_epoch_end(ctx) {\n    #{ log: \"v2 from the browser\" }\n}\n";
    b.js(
        "document.querySelector('#editor').value = arguments[0];",
        vec![json!(fixed)],
    );
    b.click("#save-policy");
    b.until(
        "the save",
        "return document.querySelector('#edit-answer').textContent.startsWith('saved')",
    );
    assert_eq!(fs::read_to_string(dir.join("p.rhai")).unwrap(), fixed);
    until("the reload in events.jsonl", || {
        events(dir)
            .iter()
            .any(|e| e["kind"] == "reload" && e["policy"] == "p")
    });
    until("the new version's log", || {
        events(dir)
            .iter()
            .any(|e| e["kind"] == "log" && e["message"] == "v2 from the browser")
    });
    b.until("the reload on the page", "return [...document.querySelectorAll('#events tr')].some(r => r.dataset.kind === 'reload')");
    // Stop: the run ends with reason console, and the page says so.
    b.click("#stop");
    until("the run's end", || {
        events(dir).iter().any(|e| e["kind"] == "run_end")
    });
    let end = events(dir)
        .into_iter()
        .find(|e| e["kind"] == "run_end")
        .unwrap();
    assert_eq!(end["reason"], "console", "{end}");
    b.until("the stopped status", "const s = document.querySelector('#status .status'); return !!s && s.dataset.status === 'stopped';");
}

#[test]
fn hostile_text_from_a_run_folder_is_shown_as_text_and_sweeps_show_their_trials() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let evil = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";
    let policy = format!(
        "fn on_epoch_end(ctx) {{\n    #{{ log: {evil:?}, stop: ctx.epoch >= 1, reason: {evil:?} }}\n}}\n"
    );
    fs::write(dir.join("evil.rhai"), policy).unwrap();
    let o = rudder(
        dir,
        &[
            "train",
            "-q",
            "--epochs",
            "4",
            "--policy",
            "evil.rhai",
            "--out",
            "runs/evil",
        ],
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let o = rudder(
        dir,
        &[
            "sweep",
            "-q",
            "--multipliers",
            "0.5,1,2",
            "--epochs",
            "2",
            "--out",
            "runs/sweep",
        ],
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let server = Server::start(dir, &["runs"]);
    b.goto(&server.url);
    b.until(
        "the list",
        "return !!document.querySelector('tr[data-id=\"0/evil\"]')",
    );
    assert!(
        b.text("tr[data-id=\"0/evil\"]").contains("<img src=x"),
        "the reason as text"
    );
    b.goto(&format!("{}/#/run/0%2Fevil", server.base));
    b.until(
        "the events",
        "return document.querySelectorAll('#events tr').length > 3",
    );
    assert!(b.text("#events").contains(evil), "{}", b.text("#events"));
    let injected = b.js("return [window.pwned === undefined, document.querySelectorAll('main img, main script').length]", vec![]);
    assert_eq!(injected, json!([true, 0]));
    b.goto(&format!("{}/#/sweep/0%2Fsweep", server.base));
    b.until(
        "the trials",
        "return document.querySelectorAll('#trials tr[data-trial]').length === 3",
    );
    b.goto(&format!(
        "{}/#/compare/0%2Fevil,0%2Fsweep%2F{}",
        server.base,
        first_trial(dir)
    ));
    b.until("two runs overlaid", "const c = document.querySelector('svg[data-title=\"val_loss\"]'); return !!c && c.querySelectorAll('path').length === 2");
}

/// The folder of the sweep's first trial.
fn first_trial(dir: &Path) -> String {
    let s: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("runs/sweep/sweep.json")).unwrap())
            .unwrap();
    s["trials"][0]["dir"].as_str().unwrap().to_string()
}

/// The book's pictures of the dashboard (`docs/src/images/dashboard-*.png`), from
/// scenes worth looking at: a finished ASHA sweep, a finished run and a running one
/// steered from the page.
///
/// ```sh
/// RUDDER_SCREENSHOTS=$PWD/docs/src/images cargo test --release --test it serve::pages::screenshots -- --ignored
/// ```
#[test]
#[ignore = "writes the book's pictures"]
fn screenshots() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = rudder(
        dir,
        &[
            "sweep",
            "-q",
            "--multipliers",
            "0.25,0.5,1,2,4",
            "--epochs",
            "9",
            "--scheduler",
            "sweep/asha",
            "--jobs",
            "5",
            "--out",
            "runs/asha",
        ],
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let o = rudder(
        dir,
        &["train", "-q", "--epochs", "12", "--out", "runs/baseline"],
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let policy = "// a note when the loss has flattened\nfn on_epoch_end(ctx) {\n    if ctx.epoch == 3 {\n        #{ log: \"epoch 4: val_loss flat, keeping the LR\" }\n    }\n}\n";
    fs::write(dir.join("p.rhai"), policy).unwrap();
    let _run = Reaped(
        Command::new(bin())
            .args([
                "train",
                "-q",
                "--batch-size",
                "32",
                "--epochs",
                "60",
                "--log-steps",
                "--policy",
                "p.rhai",
                "--out",
                "runs/long",
            ])
            .current_dir(dir)
            .env("RUDDER_FAULT", "pace:6")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let epochs = |n: usize| move || lines_so_far(&dir.join("runs/long/metrics.jsonl")).len() >= n;
    until("six epochs", epochs(6));
    let server = Server::start(dir, &["runs"]);
    b.goto(&server.url);
    b.until(
        "the list",
        "return document.querySelectorAll('#runs tr').length > 6",
    );
    b.screenshot("dashboard-list");
    b.goto(&format!("{}/#/run/0%2Flong", server.base));
    b.until(
        "the run's page",
        "return !!document.querySelector('#controls')",
    );
    b.fill("#ctl-lr", "0.02");
    b.click("#apply");
    b.until(
        "the answer",
        "return document.querySelector('#answer').textContent.includes('applied')",
    );
    until("four more epochs", epochs(10));
    std::thread::sleep(std::time::Duration::from_millis(500));
    b.screenshot("dashboard-run");
    b.click("button.edit");
    b.until(
        "the policy's text",
        "const e = document.querySelector('#editor'); return !!e && e.value.includes('flattened')",
    );
    let broken = policy.replace("ctx.epoch == 3", "ctx.epoch == ");
    b.js(
        "document.querySelector('#editor').value = arguments[0];",
        vec![json!(broken)],
    );
    b.click("#check");
    b.until(
        "the problems",
        "return document.querySelectorAll('#problems li').length > 0",
    );
    b.js(
        "document.querySelector('#policies').scrollIntoView();",
        vec![],
    );
    b.screenshot("dashboard-editor");
    b.goto(&format!("{}/#/sweep/0%2Fasha", server.base));
    b.until(
        "the trials",
        "return document.querySelectorAll('#trials tr[data-trial]').length === 5",
    );
    b.screenshot("dashboard-sweep");
}
