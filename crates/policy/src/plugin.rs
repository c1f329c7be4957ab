//! Plugins: a folder with a `plugin.json` manifest naming its policies, read with
//! serde_json and checked (unknown fields, version, api, every file present), and
//! `rudder plugin new` to start one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::contain::{Escape, real_inside};

/// A plugin whose manifest cannot be read or is wrong, or one `plugin new` cannot
/// make: `at` names the file (with a line and column for a JSON fault) or the
/// command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct PluginError {
    /// The file, or `plugin new NAME`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl PluginError {
    fn new(at: impl std::fmt::Display, message: impl std::fmt::Display) -> PluginError {
        PluginError {
            at: at.to_string(),
            message: message.to_string(),
        }
    }
}

/// The manifest API this rudder reads.
pub const API: u32 = 1;
/// The most bytes a `plugin.json` may have.
pub const MAX_MANIFEST: u64 = 1 << 20;
/// The standard library's namespaces: no plugin may take one of these names (its
/// `lr/cosine` would replace the library's).
pub const NAMESPACES: &[&str] = &["lr", "stop", "adapt", "batch", "sweep"];

/// The most policies one plugin may declare.
pub const MAX_POLICIES: usize = 256;
/// The longest plugin or policy name.
pub const MAX_NAME: usize = 64;

/// Why `name` cannot name a plugin or a policy: the characters a name may have
/// are ASCII letters, digits, `_` and `-`, the first a letter or a digit, at most
/// [`MAX_NAME`] of them (no control character can reach a terminal through one).
pub fn bad_name(name: &str) -> Option<String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("must have 1 to {MAX_NAME} characters"));
    }
    if !name.bytes().all(ok) || !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Some(format!(
            "{} may have only letters, digits, '_' and '-' (starting with a letter or digit)",
            crate::text::one_line(&format!("{name:?}"))
        ));
    }
    None
}

/// Why a plugin cannot be called `name`: a name [`bad_name`] refuses, or one of the
/// standard library's namespaces.
pub fn bad_plugin_name(name: &str) -> Option<String> {
    if let Some(why) = bad_name(name) {
        return Some(why);
    }
    NAMESPACES.contains(&name).then(|| {
        format!(
            "{name:?} is a namespace of the standard library ({}); a plugin of that name would replace its policies",
            NAMESPACES.join(", ")
        )
    })
}

/// `plugin.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// A one-line description.
    pub description: String,
    /// The manifest API it is written for (must be [`API`]).
    pub api: u32,
    /// Policy name -> script file, relative to the plugin's folder.
    pub policies: BTreeMap<String, String>,
    /// The license its files are under (`MIT`).
    pub license: String,
    /// The rudder versions it works with (`">=0.2, <0.3"`, Cargo's rules); a rudder
    /// outside them refuses it, naming both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rudder: Option<String>,
    /// Plugins its scripts import from (`import "common/module"`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, Requirement>,
}

/// Where a plugin comes from and which version: an entry of `rudder.toml`'s
/// `[plugins]` or of a manifest's `dependencies`. One of `git` and `path`; with `git`
/// at most one of `tag`, `rev`, `branch` and `version` (none: the default branch).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A git URL (`https://`, `ssh://`, `git://`, `file://`, `user@host:path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// A local folder, relative to the file that declares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A commit (a full or abbreviated hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// A branch: its head when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A semver requirement (`^1.0`): the newest tag `vX.Y.Z` (or `X.Y.Z`) matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The name its `plugin.json` gives, where the entry's name differs (what
    /// `rudder plugin add --name` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

impl Requirement {
    /// Why this entry is not one source with at most one reference.
    pub fn problem(&self) -> Option<String> {
        let refs = [&self.tag, &self.rev, &self.branch, &self.version]
            .iter()
            .filter(|r| r.is_some())
            .count();
        match (&self.git, &self.path) {
            (Some(_), Some(_)) => Some("give git or path, not both".into()),
            (None, None) => Some("give git = URL or path = FOLDER".into()),
            (None, Some(_)) if refs > 0 => {
                Some("tag, rev, branch and version go with git, not path".into())
            }
            _ if refs > 1 => Some("give at most one of tag, rev, branch and version".into()),
            _ if self.rev.as_ref().is_some_and(|r| {
                r.len() < 4 || r.len() > 40 || !r.bytes().all(|b| b.is_ascii_hexdigit())
            }) =>
            {
                Some(format!(
                    "rev {:?} is not a commit hash (4 to 40 hex digits)",
                    self.rev.as_deref().unwrap_or("")
                ))
            }
            _ => self.version.as_deref().and_then(|v| {
                semver::VersionReq::parse(v)
                    .err()
                    .map(|e| format!("version {v:?}: {e}"))
            }),
        }
    }
}

/// Why a plugin declaring `requirement` does not work with this rudder.
pub fn rudder_mismatch(requirement: &str) -> Option<String> {
    let this = env!("CARGO_PKG_VERSION");
    let req = match semver::VersionReq::parse(requirement) {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "rudder {requirement:?} is not a version requirement: {e}"
            ));
        }
    };
    let v = semver::Version::parse(this).expect("the crate's version is semver");
    (!req.matches(&v)).then(|| format!("requires rudder {requirement}; this is rudder {this}"))
}

/// Why a manifest's name, `rudder` requirement or dependencies are unusable.
fn requirements_problem(m: &Manifest) -> Option<String> {
    if let Some(why) = bad_plugin_name(&m.name) {
        return Some(format!("name: {why}"));
    }
    if let Some(why) = m.rudder.as_deref().and_then(rudder_mismatch) {
        return Some(format!("plugin {}: {why}", m.name));
    }
    m.dependencies.iter().find_map(|(dep, req)| {
        bad_plugin_name(dep)
            .or_else(|| req.problem())
            .map(|why| format!("dependency {dep}: {why}"))
    })
}

/// Reads and checks `dir/plugin.json`; errors name the file (with line and column
/// for JSON faults) and what is wrong.
pub fn read(dir: &Path) -> Result<Manifest, PluginError> {
    let path = dir.join("plugin.json");
    let fault = |m: String| PluginError::new(path.display(), m);
    let bytes = rudder_core::input::read(&path, MAX_MANIFEST).map_err(|e| match e {
        rudder_core::input::ReadError::TooLarge(n) => fault(format!(
            "{n} bytes, more than the {} KiB a manifest may have",
            MAX_MANIFEST >> 10
        )),
        rudder_core::input::ReadError::Io(e) => fault(e.to_string()),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| fault("not UTF-8 text".into()))?;
    parse(&text, dir)
}

/// Whether `v` is `MAJOR.MINOR.PATCH` in digits.
fn plain_version(v: &str) -> bool {
    let parts = v.split('.').collect::<Vec<_>>();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses and checks the text of `dir/plugin.json` (the policy files it names must
/// exist in `dir`).
pub fn parse(text: &str, dir: &Path) -> Result<Manifest, PluginError> {
    let path = dir.join("plugin.json");
    let fault = |message: String| PluginError::new(path.display(), message);
    let m: Manifest = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        PluginError::new(
            format!("{}:{}:{}", path.display(), e.line(), e.column()),
            crate::text::one_line(&msg),
        )
    })?;
    if !plain_version(&m.version) {
        return Err(fault(format!(
            "version must be MAJOR.MINOR.PATCH, got {:?}",
            m.version
        )));
    }
    if m.api != API {
        return Err(fault(format!(
            "api {} is not supported (this rudder reads api {API})",
            m.api
        )));
    }
    if m.policies.is_empty() {
        return Err(fault("policies is empty".into()));
    }
    if m.policies.len() > MAX_POLICIES {
        return Err(fault(format!(
            "{} policies; a plugin declares at most {MAX_POLICIES}",
            m.policies.len()
        )));
    }
    if let Some(why) = requirements_problem(&m) {
        return Err(fault(why));
    }
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Some(why) = folder.as_deref().and_then(bad_plugin_name) {
        return Err(fault(format!("the plugin's folder: {why}")));
    }
    if let Some(why) = m.policies.keys().find_map(|n| bad_name(n)) {
        return Err(fault(format!("a policy's name: {why}")));
    }
    for (name, file) in &m.policies {
        let f = Path::new(file);
        if file.chars().any(char::is_control) || file.contains('\\') {
            return Err(fault(format!(
                "policy {name}: file {:?} has a control character or a backslash",
                crate::text::one_line(file)
            )));
        }
        if f.is_absolute()
            || f.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(fault(format!(
                "policy {name}: file {file:?} must stay inside the plugin"
            )));
        }
        if !dir.join(f).is_file() {
            return Err(fault(format!("policy {name}: file {file} is missing")));
        }
        match real_inside(dir, &dir.join(f)) {
            Ok(_) => {}
            Err(Escape::Outside) => {
                return Err(fault(format!(
                    "policy {name}: file {file} leads outside the plugin through a symlink"
                )));
            }
            Err(Escape::Broken) => {
                return Err(fault(format!("policy {name}: file {file} is missing")));
            }
        }
    }
    Ok(m)
}

/// Plugin folders directly under `dir` (those with a `plugin.json`).
pub fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("plugin.json").is_file())
        .collect();
    out.sort();
    out
}

/// `rudder plugin new NAME`: a manifest, one policy, one test and a README in
/// `parent/NAME`. Returns the folder.
pub fn scaffold(parent: &Path, name: &str) -> Result<PathBuf, PluginError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(PluginError::new(
            format!("plugin new {name:?}"),
            "use lowercase letters, digits, '-' and '_'",
        ));
    }
    if let Some(why) = bad_plugin_name(name) {
        return Err(PluginError::new(format!("plugin new {name}"), why));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(PluginError::new(
            format!("plugin new {name}"),
            format!("{} already exists", dir.display()),
        ));
    }
    let write = |rel: &str, text: String| -> Result<(), PluginError> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&dir))
            .map_err(|e| PluginError::new(p.display(), e))?;
        std::fs::write(&p, text).map_err(|e| PluginError::new(p.display(), e))
    };
    let manifest = Manifest {
        name: name.to_string(),
        version: "0.1.0".into(),
        description: format!("{name}: policies for rudder"),
        api: API,
        policies: BTreeMap::from([("halve".to_string(), "halve.rhai".to_string())]),
        license: "MIT".into(),
        rudder: None,
        dependencies: BTreeMap::new(),
    };
    write(
        "plugin.json",
        serde_json::to_string_pretty(&manifest).expect("a manifest serialises") + "\n",
    )?;
    write(
        "halve.rhai",
        "//! Halves the learning rate every `every` epochs.\n//!\n//! lr(epoch) = base_lr * 0.5 ^ floor(epoch / every)\n\n/// every: epochs between halvings.\nfn params() {\n    #{ every: 10 }\n}\n\nfn on_epoch_start(ctx) {\n    #{ lr: ctx.base_lr * 0.5 ** (ctx.epoch / ctx.params.every).to_float() }\n}\n".into(),
    )?;
    write(
        "tests/halve.json",
        format!(
            "{{\n \"policy\": \"{name}/halve\",\n \"params\": {{\"every\": 2}},\n \"cases\": [\n  {{\"hook\": \"on_epoch_start\", \"ctx\": {{\"epoch\": 0, \"base_lr\": 0.1}}, \"expect\": {{\"lr\": 0.1}}}},\n  {{\"hook\": \"on_epoch_start\", \"ctx\": {{\"epoch\": 3, \"base_lr\": 0.1}}, \"expect\": {{\"lr\": 0.05}}}}\n ]\n}}\n"
        ),
    )?;
    write(
        "README.md",
        format!(
            "# {name}\n\nPolicies for rudder.\n\n| policy | what it does |\n| --- | --- |\n| `{name}/halve` | halves the LR every `every` epochs |\n\nUse: `rudder train --policy {name}/halve --param every=5`. Test: `rudder policy test {name}/halve`.\n"
        ),
    )?;
    Ok(dir)
}
