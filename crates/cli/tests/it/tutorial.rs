//! The book's tutorial quotes what its commands print: `tools/tutorial.sh
//! --figures-only` reruns them with this build and writes each table row and quoted
//! figure as measured, and each must be in `docs/src/guide/tutorial.md` word for word.

use super::{bin, data_path, repo};
use std::process::Command;

#[test]
fn the_tutorials_figures_are_what_its_commands_give() {
    let (Some(data), Some(_)) = (data_path("mnist"), data_path("mnist_5k.csv.gz")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("tools/tutorial.sh"))
        .arg(work.path())
        .arg("--figures-only")
        .env("RUDDER_BIN", bin())
        .env("RUDDER_DATA", data.parent().unwrap())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "tools/tutorial.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures = std::fs::read_to_string(work.path().join("figures.md")).unwrap();
    let doc = std::fs::read_to_string(repo().join("docs/src/guide/tutorial.md")).unwrap();
    let doc_lines: Vec<&str> = doc.lines().collect();
    let missing: Vec<&str> = figures
        .lines()
        .filter(|f| {
            if f.starts_with('|') {
                !doc_lines.contains(f)
            } else {
                !doc.contains(f)
            }
        })
        .collect();
    assert!(
        missing.len() < figures.lines().count() && figures.lines().count() >= 15,
        "figures.md is not what tools/tutorial.sh should write:\n{figures}"
    );
    assert!(
        missing.is_empty(),
        "docs/src/guide/tutorial.md does not say what its commands give now (rerun \
         tools/tutorial.sh and update it):\n{}",
        missing.join("\n")
    );
}
