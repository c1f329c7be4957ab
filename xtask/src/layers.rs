//! Each crate depends only on the layers below it (ARCHITECTURE.md's crate map);
//! no library crate depends on the binary's crates (clap, anyhow, the allocator,
//! the signal handlers); the vocabulary and the policy runtime have no tensor
//! library, kernel threads or allocator anywhere in their tree; the default build
//! has no MPI in its tree. Read from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// A crate of the workspace: its name, folder, root file, whether it is a library,
/// the workspace crates it may depend on, and folders of sources besides `src/`.
pub(crate) struct Crate {
    pub(crate) name: &'static str,
    pub(crate) dir: &'static str,
    pub(crate) root: &'static str,
    pub(crate) library: bool,
    may_use: &'static [&'static str],
    pub(crate) extra: &'static [&'static str],
}

const CORE: &str = "rudder-core";
const POLICY: &str = "rudder-policy";
const NN: &str = "rudder-nn";
const ENGINE: &str = "rudder-engine";
const PKG: &str = "rudder-pkg";
const RUN: &str = "rudder-run";
const TRAIN: &str = "rudder-train";
const SERVE: &str = "rudder-serve";

/// The crate map, from the bottom up.
pub(crate) const CRATES: &[Crate] = &[
    Crate {
        name: CORE,
        dir: "crates/core",
        root: "lib.rs",
        library: true,
        may_use: &[],
        extra: &[],
    },
    Crate {
        name: POLICY,
        dir: "crates/policy",
        root: "lib.rs",
        library: true,
        may_use: &[CORE],
        extra: &["benches"],
    },
    Crate {
        name: NN,
        dir: "crates/nn",
        root: "lib.rs",
        library: true,
        may_use: &[CORE],
        extra: &[],
    },
    Crate {
        name: ENGINE,
        dir: "crates/engine",
        root: "lib.rs",
        library: true,
        may_use: &[CORE, NN],
        extra: &["benches"],
    },
    Crate {
        name: PKG,
        dir: "crates/pkg",
        root: "lib.rs",
        library: true,
        may_use: &[CORE, POLICY],
        extra: &[],
    },
    Crate {
        name: RUN,
        dir: "crates/run",
        root: "lib.rs",
        library: true,
        may_use: &[CORE, POLICY, NN],
        extra: &["benches"],
    },
    Crate {
        name: TRAIN,
        dir: "crates/train",
        root: "lib.rs",
        library: true,
        may_use: &[CORE, POLICY, NN, ENGINE, RUN],
        extra: &["examples"],
    },
    Crate {
        name: SERVE,
        dir: "crates/serve",
        root: "lib.rs",
        library: true,
        may_use: &[CORE, POLICY, NN, RUN],
        extra: &[],
    },
    Crate {
        name: "rudder-cli",
        dir: "crates/cli",
        root: "main.rs",
        library: false,
        may_use: &[CORE, POLICY, NN, PKG, RUN, TRAIN, SERVE],
        extra: &[],
    },
    Crate {
        name: "rudder-python",
        dir: "python",
        root: "lib.rs",
        library: false,
        may_use: &[CORE, POLICY, PKG],
        extra: &[],
    },
    Crate {
        name: "xtask",
        dir: "xtask",
        root: "main.rs",
        library: false,
        may_use: &[],
        extra: &[],
    },
];

/// Crates only a binary may depend on.
const BINARY_ONLY: &[&str] = &["clap", "anyhow", "mimalloc", "signal-hook"];

/// Crates that may not be anywhere in these crates' trees (normal and build
/// dependencies, default features).
const NOT_IN_TREE: &[(&str, &[&str])] = &[
    (
        CORE,
        &["candle-core", "gemm", "rayon", "mimalloc", "rhai", "notify"],
    ),
    (POLICY, &["candle-core", "gemm", "rayon", "mimalloc"]),
    // The trainer's library knows nothing of a web server (`rudder serve` only reads
    // run folders and appends to their control channels).
    (TRAIN, &["axum", "tokio", "hyper"]),
    ("rudder-cli", &["mpi"]),
];

/// `cargo metadata` of the workspace at `root`, default features. Not `--offline`:
/// the metadata covers every platform's dependencies (Windows' `anstyle-wincon`),
/// which a build on Linux never downloads, so a fresh registry lacks them.
pub(crate) fn metadata(root: &Path) -> Result<Value, String> {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Every dependency `meta` shows that the crate map does not allow.
pub(crate) fn check(meta: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let members: BTreeSet<&str> = CRATES.iter().map(|c| c.name).collect();
    for c in CRATES {
        let Some(p) = packages.iter().find(|p| p["name"] == c.name) else {
            out.push(format!("{}: not in the workspace", c.name));
            continue;
        };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let name = d["name"].as_str().unwrap_or("");
            let dev = d["kind"] == "dev";
            if members.contains(name) && !dev && !c.may_use.contains(&name) {
                out.push(format!(
                    "{}: depends on {name}, which is not below it (it may use: {})",
                    c.name,
                    if c.may_use.is_empty() {
                        "none".to_string()
                    } else {
                        c.may_use.join(", ")
                    }
                ));
            }
            if c.library && !dev && BINARY_ONLY.contains(&name) {
                out.push(format!(
                    "{}: a library crate depends on {name}, which only the binary may",
                    c.name
                ));
            }
        }
    }
    for (krate, banned) in NOT_IN_TREE {
        for found in tree(meta, krate).intersection(&banned.iter().copied().collect()) {
            out.push(format!("{krate}: {found} is in its dependency tree"));
        }
    }
    out
}

/// The names of every package in `krate`'s tree of normal and build dependencies.
fn tree<'a>(meta: &'a Value, krate: &str) -> BTreeSet<&'a str> {
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let Some(start) = name_of
        .iter()
        .find(|(_, n)| **n == krate)
        .map(|(id, _)| *id)
    else {
        return BTreeSet::new();
    };
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes
            .get(id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if normal && let Some(pkg) = d["pkg"].as_str() {
                todo.push(pkg);
            }
        }
    }
    seen.remove(start);
    seen.iter()
        .filter_map(|id| name_of.get(id).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A workspace where rudder-policy depends on rudder-nn (above it) and, through
    /// it, on candle-core.
    fn meta() -> Value {
        let pkg = |name: &str, deps: &[(&str, Option<&str>)]| {
            json!({"name": name, "id": format!("{name} 0.1.0"),
                   "dependencies": deps.iter().map(|(d, k)| json!({"name": d, "kind": k})).collect::<Vec<_>>()})
        };
        let node = |name: &str, deps: &[&str]| {
            json!({"id": format!("{name} 0.1.0"),
                   "deps": deps.iter().map(|d| json!({"pkg": format!("{d} 0.1.0"), "dep_kinds": [{"kind": null}]})).collect::<Vec<_>>()})
        };
        let mut packages: Vec<Value> = CRATES
            .iter()
            .map(|c| {
                pkg(
                    c.name,
                    &c.may_use.iter().map(|d| (*d, None)).collect::<Vec<_>>(),
                )
            })
            .collect();
        packages[1] = pkg(
            POLICY,
            &[(CORE, None), (NN, None), ("tempfile", Some("dev"))],
        );
        packages.push(pkg("candle-core", &[]));
        let mut nodes: Vec<Value> = CRATES.iter().map(|c| node(c.name, c.may_use)).collect();
        nodes[1] = node(POLICY, &[CORE, NN]);
        nodes[2] = node(NN, &[CORE, "candle-core"]);
        nodes.push(node("candle-core", &[]));
        json!({"packages": packages, "resolve": {"nodes": nodes}})
    }

    #[test]
    fn a_dependency_upwards_and_a_tensor_library_under_the_runtime_are_found() {
        let found = check(&meta());
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("rudder-policy: depends on rudder-nn"),
            "{found:#?}"
        );
        assert_eq!(
            found[1],
            "rudder-policy: candle-core is in its dependency tree"
        );
    }
}
