//! What rudder tells people: counts in words (`1 epoch`), a finished run that a
//! resume would not change, `-q` on every command, `policy test` with nothing to
//! test, the numbers of lr-find and sweeps, a sweep's trials in LR order.

use super::{jsonl, rudder, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn one_epoch_is_singular() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // lr/constant x 0 never improves val_loss after the first epoch: patience 1
    // stops it one epoch later.
    let o = rudder(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "6",
            "--policy",
            "lr/constant",
            "--policy",
            "stop/early_stop",
            "--param",
            "factor=0",
            "--param",
            "patience=1",
            "--out",
            "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let events = jsonl(&d.join("r/events.jsonl"));
    let stop = events.iter().find(|e| e["kind"] == "stop").expect("a stop");
    let reason = stop["reason"].as_str().unwrap();
    assert!(
        reason.contains("did not improve for 1 epoch (best"),
        "{reason}"
    );
}

#[test]
fn a_finished_run_is_not_resumed_without_more_epochs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let o = rudder(d, &["train", "-q", "--epochs", "2", "--out", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let events = std::fs::read(d.join("r/events.jsonl")).unwrap();
    for args in [
        &["train", "--resume", "r"][..],
        &["train", "--resume", "r", "--epochs", "2"],
        &["train", "--resume", "r", "--epochs", "1", "--lr", "0.2"],
    ] {
        let o = rudder(d, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim_end(),
            "error: --resume r: the run finished all 2 epochs, so there is nothing to resume; to train it longer, resume with --epochs N (N > 2)",
            "{args:?}"
        );
        assert_eq!(
            std::fs::read(d.join("r/events.jsonl")).unwrap(),
            events,
            "untouched"
        );
    }
    let o = rudder(d, &["train", "-q", "--resume", "r", "--epochs", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 3);

    // A run a policy stopped says why.
    let o = rudder(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "6",
            "--policy",
            "lr/constant",
            "--policy",
            "stop/early_stop",
            "--param",
            "factor=0",
            "--param",
            "patience=1",
            "--out",
            "s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let done = jsonl(&d.join("s/metrics.jsonl")).len();
    let o = rudder(d, &["train", "--resume", "s"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let want = format!("the run stopped after epoch {done}: val_loss did not improve for 1 epoch");
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

#[test]
fn quiet_means_quiet_for_every_command() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let o = rudder(d, &["train", "--epochs", "1", "--out", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rudder(
        d,
        &[
            "sweep",
            "-q",
            "--epochs",
            "1",
            "--multipliers",
            "2,0.5,1",
            "--out",
            "s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no trial lines, no table");
    for args in [
        &["report", "-q", "r"][..],
        &["-q", "report", "r"],
        &["lr-find", "-q", "--steps", "10", "--out", "lf"],
        &["policy", "test", "-q", "--std", "lr/step"],
        &["plugin", "new", "-q", "mine"],
    ] {
        let o = rudder(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    // Errors still say what is wrong.
    let o = rudder(d, &["report", "-q", "nothere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));

    // The sweep's table and report list the trials from the smallest LR up.
    let o = rudder(
        d,
        &[
            "sweep",
            "--epochs",
            "1",
            "--multipliers",
            "2,0.5,1",
            "--out",
            "s2",
        ],
    );
    let err = stderr(&o);
    let rows: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with('x'))
        .collect();
    assert_eq!(rows, ["x0.5", "x1", "x2"], "{err}");
    let page = std::fs::read_to_string(d.join("s2/report.html")).unwrap();
    let at = |k: &str| {
        page.find(&format!("</i>{k} lr"))
            .unwrap_or_else(|| panic!("{k}"))
    };
    assert!(at("x0.5") < at("x1") && at("x1") < at("x2"));
    assert!(
        err.contains("rudder sweep: 3 trials of 1 epoch (lr 0.1"),
        "{err}"
    ); // `rudder report` of a sweep's folder too: x2 before x16 (by name, x16 came first).
    let o = rudder(
        d,
        &[
            "sweep",
            "-q",
            "--epochs",
            "1",
            "--multipliers",
            "16,2",
            "--out",
            "s3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rudder(d, &["report", "-q", "s3", "--out", "s3.html"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(d.join("s3.html")).unwrap();
    let at = |k: &str| {
        page.find(&format!("</i>{k}</span>"))
            .unwrap_or_else(|| panic!("{k}"))
    };
    assert!(at("x2") < at("x16"), "trials from the smallest LR up");
}

#[test]
fn policy_test_with_nothing_to_test_says_so() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let o = rudder(d, &["policy", "test"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no test files here"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "no `0 passed, 0 failed`");
    let o = rudder(d, &["policy", "test", "--allow-empty"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The standard library's tests are in the binary: all of them, or one policy's.
    let o = rudder(d, &["policy", "test", "--std"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    let passed: usize = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        passed >= 900 && last.ends_with(" passed, 0 failed"),
        "{last}"
    );
    let o = rudder(d, &["policy", "test", "lr/cosine"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).ends_with(" passed, 0 failed\n"));
}

#[test]
fn lr_find_prints_numbers_as_people_read_them() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let o = rudder(
        d,
        &[
            "lr-find",
            "--steps",
            "30",
            "--end-lr",
            "0.6135907273413176",
            "--out",
            "lf",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("from 1e-7 to 0.6136"), "{err}");
    let line = err.lines().find(|l| l.starts_with("lr-find:")).unwrap();
    for word in line.split([' ', ',', ';']) {
        let digits = word.chars().filter(char::is_ascii_digit).count();
        assert!(digits <= 6, "{word} in {line}");
    }
}
