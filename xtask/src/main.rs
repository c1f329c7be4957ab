//! rudder's own checks, run by `.ci/run` and by anyone before a commit:
//!
//! - `cargo run --release -p xtask -- arch`: the architecture's invariants
//!   (ARCHITECTURE.md): each crate depends only on the layers below it; no library
//!   crate depends on a binary's crates, and the lowest have no tensor library in
//!   their tree; no import cycle between the modules of any crate; no source file
//!   over 500 lines and no function over 80 (tests aside); no library code that
//!   exits the process, names the binary's error or returns `Result<_, String>`
//!   from a public function; every crate under the workspace's lints.
//! - `cargo run --release -p xtask -- links docs/book`: every link and anchor of the
//!   built book leads somewhere.
//!
//! Each prints what it finds, one line each, and exits 1 when it finds anything.

mod bans;
mod layers;
mod links;
mod modules;
mod sizes;
mod source;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let problems = match args.first().map(String::as_str) {
        Some("arch") => arch(&root),
        Some("links") => match args.get(1) {
            Some(dir) => links::check(&root.join(dir)),
            None => vec!["usage: xtask links BOOK_DIR".into()],
        },
        _ => {
            eprintln!("usage: xtask arch | xtask links BOOK_DIR");
            return ExitCode::from(2);
        }
    };
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("xtask {}: ok", args.join(" "));
        ExitCode::SUCCESS
    } else {
        println!("xtask {}: {} problem(s)", args.join(" "), problems.len());
        ExitCode::from(1)
    }
}

/// Every architecture check over the workspace at `root`.
fn arch(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    match layers::metadata(root) {
        Ok(meta) => problems.extend(layers::check(&meta)),
        Err(e) => problems.push(format!("cargo metadata: {e}")),
    }
    for krate in layers::CRATES {
        let dir = root.join(krate.dir);
        let files = match source::parse_crate(&dir.join("src"), krate.root) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{}: {e}", krate.name));
                continue;
            }
        };
        problems.extend(modules::cycles(krate.name, &files));
        problems.extend(sizes::check(root, &files));
        if krate.library {
            problems.extend(bans::check(root, krate.name, &files));
        }
        problems.extend(bans::lints(root, krate.name, &dir.join("Cargo.toml")));
        for extra in krate.extra {
            if let Ok(more) = source::parse_dir(&dir.join(extra)) {
                problems.extend(sizes::check(root, &more));
            }
        }
    }
    problems
}

/// The workspace's root: this crate's parent folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
