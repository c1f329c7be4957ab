//! Where policies come from: a path, or a name on the search path (`./plugins`,
//! `./scripts`, each folder of `$RUDDER_PATH`), then the standard library embedded in
//! the binary. A file on the search path shadows the embedded one.

use std::path::{Path, PathBuf};

use crate::contain::{Escape, real_inside};
use crate::project::{Installed, Origin, ProjectError};

/// `(name, source)` for each name, the source read from `scripts/NAME.rhai` at build time.
macro_rules! library {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../scripts/", $name, ".rhai")))),*]
    };
}

/// The standard library compiled into the binary: (name, source).
pub const EMBEDDED: &[(&str, &str)] = library![
    "default",
    "batch/rescale",
    "lr/constant",
    "lr/step",
    "lr/multistep",
    "lr/exponential",
    "lr/linear",
    "lr/polynomial",
    "lr/cosine",
    "lr/cosine_restarts",
    "lr/onecycle",
    "lr/cyclic",
    "lr/warmup",
    "lr/inverse_sqrt",
    "lr/wsd",
    "adapt/plateau",
    "stop/early_stop",
    "stop/terminate_on_nan",
    "stop/extend_on_drop",
    "adapt/overfit_guard",
    "adapt/divergence_rollback",
    "batch/batch_growth",
    "batch/accumulate",
    "sweep/asha",
    "sweep/hyperband",
    "sweep/median",
    "sweep/pbt",
];

/// Where policy names and imports are looked up: the project's locked plugins (by
/// name, checked against `rudder.lock`), then the folders, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
    plugins: Vec<Installed>,
}

impl SearchPath {
    /// The project's locked plugins (`rudder.toml` found from the working folder
    /// upwards, `rudder.lock` beside it), then `./plugins`, `./scripts` and
    /// `$RUDDER_PATH` (split like `PATH`). A locked git plugin that is not installed,
    /// or whose files do not hash to the lock's checksum, is an error naming the
    /// plugin, the file, both hashes and the repair.
    pub fn from_env() -> Result<SearchPath, ProjectError> {
        let mut search = SearchPath::folders_from_env();
        search.plugins = crate::project::discover()?;
        Ok(search)
    }

    /// `./plugins`, `./scripts`, then `$RUDDER_PATH`, without a project's plugins.
    pub fn folders_from_env() -> SearchPath {
        let mut dirs = vec![PathBuf::from("plugins"), PathBuf::from("scripts")];
        if let Some(extra) = std::env::var_os("RUDDER_PATH") {
            dirs.extend(std::env::split_paths(&extra));
        }
        SearchPath::new(dirs)
    }

    /// The folders `dirs`, in order.
    pub fn new(dirs: Vec<PathBuf>) -> SearchPath {
        SearchPath {
            dirs,
            plugins: Vec::new(),
        }
    }

    /// This search path with `plugins` found first, by name.
    pub fn with_plugins(mut self, plugins: Vec<Installed>) -> SearchPath {
        self.plugins = plugins;
        self
    }

    /// The folders, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The project's locked plugins.
    pub fn plugins(&self) -> &[Installed] {
        &self.plugins
    }

    /// The locked plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Installed> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The locked plugin whose folder is `home`.
    pub(crate) fn plugin_at(&self, home: &Path) -> Option<&Installed> {
        self.plugins.iter().find(|p| p.home == home)
    }
}

/// A policy's source before compiling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located {
    /// Short name, for events and messages.
    pub name: String,
    /// The file, or a label like `<embedded>/default.rhai`.
    pub file: PathBuf,
    /// Its folder, for imports (`None` when embedded).
    pub home: Option<PathBuf>,
    pub source: String,
    /// The plugin manifest it was found through.
    pub manifest: Option<PathBuf>,
    /// The locked plugin it belongs to.
    pub origin: Option<Origin>,
}

fn read(name: String, file: PathBuf) -> Result<Located, String> {
    let source = super::source::read_source(&file, &file)?;
    // The folder of `x.rhai` is the working folder.
    let home = file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    Ok(Located {
        name,
        file,
        home,
        source,
        manifest: None,
        origin: None,
    })
}

/// Whether `file` (under `dir`) is inside a plugin folder below `dir`.
fn in_plugin(dir: &Path, file: &Path) -> bool {
    file.ancestors()
        .skip(1)
        .take_while(|a| *a != dir)
        .any(|a| a.join("plugin.json").exists())
}

/// Refuses a file found in search folder `dir` whose real path leads outside it.
fn within(dir: &Path, file: &Path) -> Result<(), String> {
    match real_inside(dir, file) {
        Ok(_) => Ok(()),
        Err(Escape::Outside) => Err(format!(
            "{} leads outside {} through a symlink",
            file.display(),
            dir.display()
        )),
        Err(Escape::Broken) => Err(format!("{} is a broken link", file.display())),
    }
}

/// Finds `spec`: an existing path (`x.rhai`, `dir/x.rhai`), or a name (`cosine`,
/// `batch/rescale`, `PLUGIN/POLICY`) on `search`, then embedded. A name is looked up
/// as `DIR/NAME.rhai`, then (a bare name) one folder down in each search folder,
/// except in plugin folders: a plugin's files are reached only as `PLUGIN/POLICY`
/// through its manifest.
pub(crate) fn locate(spec: &str, search: &SearchPath) -> Result<Located, String> {
    let as_path = Path::new(spec);
    if spec.ends_with(".rhai") {
        let stem = as_path
            .file_stem()
            .map_or(spec.to_string(), |s| s.to_string_lossy().into_owned());
        return read(stem, as_path.to_path_buf());
    }
    if let Some(found) = in_plugin_manifest(spec, search)? {
        return Ok(found);
    }
    let file = format!("{spec}.rhai");
    for dir in search.dirs() {
        if let Some(found) = in_folder(spec, &file, dir)? {
            return Ok(found);
        }
    }
    embedded(spec).ok_or_else(|| {
        let dirs: Vec<String> = search
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        // The way out: a file of that name here (the nearest name there is, the
        // caller adds: `catalog::hint`).
        let hint = if Path::new(&file).is_file() {
            format!("; there is a file {file} here: --policy ./{file}")
        } else {
            String::new()
        };
        format!(
            "no policy {spec:?} (looked for {file} in {} and the standard library){hint}",
            dirs.join(", ")
        )
    })
}

/// `PLUGIN/POLICY` through the manifest of a plugin folder on `search`.
fn in_plugin_manifest(spec: &str, search: &SearchPath) -> Result<Option<Located>, String> {
    let Some((plugin, policy)) = spec.split_once('/') else {
        return Ok(None);
    };
    let locked = search
        .plugin(plugin)
        .map(|p| (p.home.clone(), Some(p.origin.clone())));
    let mut homes = locked.into_iter().chain(
        search
            .dirs()
            .iter()
            .map(|d| (d.join(plugin), None))
            .filter(|(home, _)| home.join("plugin.json").is_file()),
    );
    // The first plugin of that name decides: a locked one, else the first folder's.
    if let Some((home, origin)) = homes.next() {
        let manifest = crate::plugin::read(&home).map_err(|e| e.to_string())?;
        let Some(rel) = manifest.policies.get(policy) else {
            let names: Vec<&str> = manifest.policies.keys().map(String::as_str).collect();
            return Err(format!(
                "plugin {plugin} has no policy {policy:?} (it has {})",
                names.join(", ")
            ));
        };
        // plugin::read checked that the file stays inside the plugin.
        let mut found = read(spec.to_string(), home.join(rel))?;
        found.home = Some(home.clone());
        found.manifest = Some(home.join("plugin.json"));
        found.origin = origin;
        return Ok(Some(found));
    }
    Ok(None)
}

/// `DIR/NAME.rhai` in search folder `dir`, or for a bare name one folder down (not
/// in a plugin's folder).
fn in_folder(spec: &str, file: &str, dir: &Path) -> Result<Option<Located>, String> {
    let direct = dir.join(file);
    if direct.is_file() && !in_plugin(dir, &direct) {
        within(dir, &direct)?;
        return read(spec.to_string(), direct).map(Some);
    }
    if spec.contains('/') {
        return Ok(None);
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| !d.join("plugin.json").exists())
        .map(|d| d.join(file))
        .filter(|p| p.is_file())
        .collect();
    subs.sort();
    match subs.into_iter().next() {
        Some(p) => {
            within(dir, &p)?;
            read(spec.to_string(), p).map(Some)
        }
        None => Ok(None),
    }
}

/// The standard library's copy of `spec` (its whole name, or its last part).
fn embedded(spec: &str) -> Option<Located> {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == spec || n.rsplit('/').next() == Some(spec))
        .map(|(n, src)| Located {
            name: spec.to_string(),
            file: PathBuf::from(format!("<embedded>/{n}.rhai")),
            home: None,
            source: src.to_string(),
            manifest: None,
            origin: None,
        })
}
