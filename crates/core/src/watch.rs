//! `--watch`: how a run notices that a policy file changed.

use crate::UnknownName;

/// How policy files are watched for hot reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WatchMode {
    /// Native file events, falling back to polling where they fail.
    Auto,
    /// Poll the folders (network and unusual file systems, exhausted inotify limits).
    Poll,
    /// No hot reload.
    Off,
}

impl WatchMode {
    /// Every mode, as `--watch` names them.
    pub const NAMES: [&'static str; 3] = ["auto", "poll", "off"];

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            WatchMode::Auto => "auto",
            WatchMode::Poll => "poll",
            WatchMode::Off => "off",
        }
    }
}

impl std::str::FromStr for WatchMode {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<WatchMode, UnknownName> {
        match s {
            "auto" => Ok(WatchMode::Auto),
            "poll" => Ok(WatchMode::Poll),
            "off" => Ok(WatchMode::Off),
            other => Err(UnknownName::new(
                "must be \"auto\", \"poll\" or \"off\"",
                other,
            )),
        }
    }
}
