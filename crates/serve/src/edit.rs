//! The policy editor: which of a run's policy files a page may open and save, the
//! check an edit must pass, and the save.
//!
//! A run names its policies' files in `config.json` (`provenance`) and in each
//! `reload` event; a path the run wrote relative is taken from the working folder its
//! newest `run_start` or `resume` recorded. A file may be opened only if it is one of
//! those, is a `.rhai` file, no link, lies in its policy's own folder (the script's
//! folder and below), and belongs to no plugin and not to the embedded library; and,
//! since a run folder is only what it says, only if the run's `config.json` and the
//! file belong to the user the server runs as, and the file holds a text the run
//! recorded loading (a hash in its provenance or a `reload`) or this server saved. A
//! hostile folder in a served tree so cannot name another user's file, nor any file
//! whose text its writer does not already know.
//!
//! "Check" copies the policy's files into a fresh folder with the edit in place,
//! compiles the copy, applies the run's parameters the new version still declares,
//! and dry-runs its epoch-start, step and epoch-end hooks on the policies' `this` from
//! the run's newest checkpoint and a `ctx` from its last epoch, exactly as a reload
//! does before it swaps a version in. "Save" writes only an edit that passed, whole
//! (`rudder_core::atomic`), and only over the bytes the page opened.

use std::path::{Path, PathBuf};

use rudder_policy::{
    Param, Policies, PolicyState, RunState, SearchPath, Settings, checksum::sha256,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::summary::MAX_JSON;
use crate::tail;

/// The largest policy file the editor opens or saves.
pub(crate) const MAX_SOURCE: usize = 1 << 20;

/// A file the editor may open: where it is, and the policy it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Editable {
    /// The file, real path.
    pub(crate) path: PathBuf,
    /// Its policy's script, real path.
    script: PathBuf,
    /// Every file of the policy in its own folder, real paths.
    files: Vec<PathBuf>,
    /// The policy's name and its parameters as the run resolved them.
    policy: String,
    params: serde_json::Map<String, Value>,
    /// The SHA-256 of every text of the policy's files the run recorded loading.
    known: Vec<String>,
}

/// The texts this server saved (their SHA-256): a file may be opened again after a
/// save the run did not take (its own reload failed).
#[derive(Debug, Default)]
pub(crate) struct Saved(std::sync::Mutex<std::collections::HashSet<String>>);

impl Saved {
    fn has(&self, hash: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
    }

    fn add(&self, hash: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash);
    }
}

/// Whether `path` belongs to the user this process runs as.
fn mine(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == me)
}

/// A problem with an edit, at its place.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Problem {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// The working folder the run's newest start recorded.
pub(crate) fn workdir(events: &[Value]) -> Option<PathBuf> {
    events
        .iter()
        .rev()
        .find(|e| e["kind"] == "run_start" || e["kind"] == "resume")
        .and_then(|e| e["cwd"].as_str())
        .map(PathBuf::from)
}

/// Each policy's files now: its newest `reload`'s, else the provenance's.
fn files_of<'a>(p: &'a Value, events: &'a [Value]) -> Vec<&'a Value> {
    let name = &p["policy"];
    let reloaded = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "reload" && &e["policy"] == name && e["files"].is_array());
    reloaded
        .map_or(&p["files"], |e| &e["files"])
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The file a policy's record names, as a real path, if the editor may open it.
fn real_file(recorded: &str, base: Option<&Path>, home: Option<&Path>) -> Result<PathBuf, String> {
    if recorded.starts_with("<embedded>") {
        return Err("the standard library's policies are built in".into());
    }
    if !recorded.ends_with(".rhai") {
        return Err("only .rhai files are edited here".into());
    }
    let given = Path::new(recorded);
    let given = match (given.is_absolute(), base) {
        (true, _) => given.to_path_buf(),
        (false, Some(b)) => b.join(given),
        (false, None) => return Err("the run did not record its working folder".into()),
    };
    let meta = std::fs::symlink_metadata(&given).map_err(|e| format!("cannot be opened: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("is a link or not a regular file".into());
    }
    let real = given
        .canonicalize()
        .map_err(|e| format!("cannot be opened: {e}"))?;
    if let Some(home) = home
        && !real.starts_with(home)
    {
        return Err("lies outside its policy's own folder".into());
    }
    Ok(real)
}

/// What the page lists of each policy: its files (and whether each may be edited),
/// its plugin, parameters, version and reload history.
pub(crate) fn policies(_dir: &Path, config: &Value, events: &[Value]) -> Vec<Value> {
    let base = workdir(events);
    let provenance = config["provenance"].as_array().cloned().unwrap_or_default();
    provenance
        .iter()
        .map(|p| {
            let name = p["policy"].as_str().unwrap_or_default();
            let plugin = !p["plugin"].is_null();
            let files = files_of(p, events);
            let script = files.first().and_then(|f| f["path"].as_str()).unwrap_or("");
            let home = real_file(script, base.as_deref(), None)
                .ok()
                .and_then(|s| s.parent().map(Path::to_path_buf));
            let listed: Vec<Value> = files
                .iter()
                .map(|f| {
                    let path = f["path"].as_str().unwrap_or_default();
                    let why = if plugin {
                        Err("belongs to a plugin (rudder.lock fixes its files)".to_string())
                    } else {
                        home.as_deref()
                            .ok_or_else(|| "its policy's script cannot be found".to_string())
                            .and_then(|h| real_file(path, base.as_deref(), Some(h)))
                    };
                    json!({"path": path, "sha256": f["sha256"], "editable": why.is_ok(), "why": why.err(),
                        "viewable": embedded(path).is_some()})
                })
                .collect();
            let history: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    e["policy"] == name && (e["kind"] == "reload" || e["kind"] == "reload_failed")
                })
                .collect();
            let version = events
                .iter()
                .rev()
                .find(|e| e["policy"] == name && e["kind"] != "reload_failed" && e["version"].is_string())
                .map(|e| e["version"].clone());
            json!({
                "policy": name, "files": listed, "plugin": p["plugin"], "params": p["params"],
                "version": version, "generation": 1 + history.iter().filter(|e| e["kind"] == "reload").count(),
                "reloads": history,
            })
        })
        .collect()
}

/// The file `recorded` of the run in `dir` whose config and events are given, if
/// the editor may open it.
pub(crate) fn find(
    dir: &Path,
    config: &Value,
    events: &[Value],
    recorded: &str,
) -> Result<Editable, String> {
    if !mine(&dir.join("config.json")) {
        return Err(format!(
            "{recorded}: this run folder belongs to another user"
        ));
    }
    let base = workdir(events);
    let provenance = config["provenance"].as_array().cloned().unwrap_or_default();
    for p in &provenance {
        let files = files_of(p, events);
        if !files.iter().any(|f| f["path"] == recorded) {
            continue;
        }
        if !p["plugin"].is_null() {
            return Err(format!(
                "{recorded}: belongs to a plugin (rudder.lock fixes its files)"
            ));
        }
        let script = files.first().and_then(|f| f["path"].as_str()).unwrap_or("");
        let script =
            real_file(script, base.as_deref(), None).map_err(|e| format!("{script}: {e}"))?;
        let home = script.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = real_file(recorded, base.as_deref(), Some(&home))
            .map_err(|e| format!("{recorded}: {e}"))?;
        if !mine(&path) {
            return Err(format!("{recorded}: belongs to another user"));
        }
        let name = &p["policy"];
        let known = std::iter::once(&p["files"])
            .chain(
                events
                    .iter()
                    .filter(|e| e["kind"] == "reload" && &e["policy"] == name)
                    .map(|e| &e["files"]),
            )
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|f| f["sha256"].as_str().map(String::from))
            .collect();
        let files = files
            .iter()
            .filter_map(|f| real_file(f["path"].as_str()?, base.as_deref(), Some(&home)).ok())
            .collect();
        return Ok(Editable {
            path,
            script,
            files,
            policy: p["policy"].as_str().unwrap_or_default().to_string(),
            params: p["params"].as_object().cloned().unwrap_or_default(),
            known,
        });
    }
    Err(format!("{recorded}: not one of this run's policy files"))
}

/// The standard library's source of `<embedded>/NAME.rhai`, as the binary has it: a
/// page may read it (it is built in, so no file is read), never save it.
pub(crate) fn embedded(recorded: &str) -> Option<&'static str> {
    let name = recorded
        .strip_prefix("<embedded>/")?
        .strip_suffix(".rhai")?;
    rudder_policy::EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| *source)
}

/// The file's text and its SHA-256 (what a save must find still there), if it is a
/// text the run loaded or this server saved.
pub(crate) fn open(e: &Editable, saved: &Saved) -> Result<(String, String), String> {
    let bytes = rudder_core::input::read(&e.path, MAX_SOURCE as u64).map_err(|x| x.to_string())?;
    let hash = sha256(&bytes);
    if !e.known.contains(&hash) && !saved.has(&hash) {
        return Err(format!(
            "{}: its text is not one the run loaded (edited since, and not reloaded?); open it once the run has reloaded it",
            e.path.display()
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    Ok((text, hash))
}

/// The run as its hooks would see it at its next epoch, for the dry run: its last
/// epoch's settings and metrics, its history, the policies' `this` from its newest
/// checkpoint.
fn run_state(dir: &Path, config: &Value) -> (RunState, Vec<PolicyState>) {
    let history = tail::read_all(dir, "metrics.jsonl").values;
    let last = history.last().cloned().unwrap_or(Value::Null);
    let num = |k: &str| last[k].as_f64().or_else(|| config[k].as_f64());
    let mut settings = Settings::new(
        num("lr").unwrap_or(0.1),
        num("batch_size").unwrap_or(64.0) as usize,
    );
    settings.epochs = num("epochs").unwrap_or(1.0) as usize;
    settings.accumulation = num("accumulation").unwrap_or(1.0).max(1.0) as usize;
    settings.momentum = config["momentum"].as_f64().unwrap_or(0.0);
    settings.weight_decay = config["weight_decay"].as_f64().unwrap_or(0.0);
    let mut run = RunState::new(settings);
    if let Some(m) = last.as_object() {
        run.end_epoch(rudder_policy::EpochMetrics::from_json(m));
        run.epoch = last["epoch"].as_u64().map_or(0, |e| e as usize + 1);
        run.step = last["step"].as_u64().unwrap_or(0);
    }
    run.history = history;
    let newest = crate::scan::inside(dir, "checkpoints")
        .map(|c| rudder_run::checkpoint::list(&c))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, p)| tail::json_file(&p, "state.json", MAX_JSON))
        .max_by_key(|s| s["step"].as_u64().unwrap_or(0));
    let saved = newest
        .and_then(|s| serde_json::from_value(s["policies"].clone()).ok())
        .unwrap_or_default();
    (run, saved)
}

/// The edit checked as a reload would check it: every problem, at its place; none
/// means it may be saved.
pub(crate) fn check(
    e: &Editable,
    source: &str,
    dir: &Path,
    config: &Value,
    base: Option<&Path>,
) -> Vec<Problem> {
    let fail = |message: String| {
        vec![Problem {
            file: e.path.display().to_string(),
            line: 0,
            column: 0,
            message,
        }]
    };
    let Ok(shadow) = tempfile::tempdir() else {
        return fail("no temporary folder for the check".into());
    };
    let home = e.script.parent().unwrap_or(Path::new("/"));
    for f in &e.files {
        let Ok(rel) = f.strip_prefix(home) else {
            continue;
        };
        let to = shadow.path().join(rel);
        let bytes = if *f == e.path {
            source.as_bytes().to_vec()
        } else {
            match rudder_core::input::read(f, MAX_SOURCE as u64) {
                Ok(b) => b,
                Err(x) => return fail(format!("{}: {x}", f.display())),
            }
        };
        if let Some(parent) = to.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            return fail("cannot copy the policy for the check".into());
        }
        if std::fs::write(&to, bytes).is_err() {
            return fail("cannot copy the policy for the check".into());
        }
    }
    let script = shadow.path().join(
        e.script
            .strip_prefix(home)
            .unwrap_or(Path::new("policy.rhai")),
    );
    let dirs = base
        .map(|b| vec![b.join("plugins"), b.join("scripts")])
        .unwrap_or_default();
    let result = compile_and_dry_run(e, &script, SearchPath::new(dirs), dir, config);
    let shown = |p: &Path| match p.strip_prefix(shadow.path()) {
        Ok(rel) => home.join(rel).display().to_string(),
        Err(_) => p.display().to_string(),
    };
    match result {
        Ok(()) => Vec::new(),
        Err(x) => vec![Problem {
            file: x
                .file
                .as_deref()
                .map(shown)
                .unwrap_or_else(|| e.path.display().to_string()),
            line: x.line,
            column: x.column,
            message: x.message.replace(
                &shadow.path().display().to_string(),
                &home.display().to_string(),
            ),
        }],
    }
}

/// The copy compiled (its parameters those it still declares) and dry-run.
fn compile_and_dry_run(
    e: &Editable,
    script: &Path,
    search: SearchPath,
    dir: &Path,
    config: &Value,
) -> Result<(), rudder_policy::LoadError> {
    let spec = script.display().to_string();
    let build = |params: Vec<Param>| {
        Policies::builder()
            .policy(spec.as_str())
            .params(params)
            .search_path(search.clone())
            .watch(rudder_policy::WatchMode::Off)
            .messages(rudder_policy::Messages::none())
            .build()
    };
    let bare = build(Vec::new())?;
    let declared: Vec<String> = bare
        .describe()
        .first()
        .map(|p| p.params.keys().cloned().collect())
        .unwrap_or_default();
    let params = e
        .params
        .iter()
        .filter(|(k, _)| declared.contains(k))
        .map(|(k, v)| Param::new(k, v.clone()))
        .collect();
    let mut set = build(params)?;
    let (run, saved) = run_state(dir, config);
    let mine: Vec<PolicyState> = saved.into_iter().filter(|s| s.name == e.policy).collect();
    let _notes = set.load_state(&mine);
    set.dry_run(&run.ctx())
}

/// Writes a checked edit over the file, if it still holds the bytes opened (`base`,
/// their SHA-256).
pub(crate) fn save(
    e: &Editable,
    source: &str,
    base: &str,
    saved: &Saved,
) -> Result<String, String> {
    let (_, now) = open(e, saved)?;
    if now != base {
        return Err("the file changed since it was opened; reopen it to see the new text".into());
    }
    let hash = sha256(source.as_bytes());
    saved.add(hash.clone());
    rudder_core::atomic::write_atomic(&e.path, source.as_bytes())
        .map_err(|x| format!("cannot be written: {x}"))?;
    Ok(hash)
}
