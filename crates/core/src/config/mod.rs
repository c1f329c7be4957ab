//! The configuration of a run: options from the command line and a JSON `--config`
//! file (the command line wins), or a run's own `config.json` on `--resume`,
//! validated into a resolved [`TrainConfig`] that is written to `config.json`.
//!
//! The command line is the binary's: it turns its flags into a [`TrainOptions`]
//! (each flag is the key with `-` for `_`), so flags and config keys are one list.

mod check;
mod file;
mod merge;
mod model;
mod options;
mod resolved;

pub use merge::resolve;
pub use model::{ModelKind, parse_device};
pub use options::TrainOptions;
pub use resolved::{FIXED_ON_RESUME, Overrides, TrainConfig};

/// The largest `--config` file read.
pub const MAX_CONFIG: u64 = 1 << 20;
/// The largest `config.json` of a run read back on `--resume` (its `resumes` grow).
pub const MAX_RUN_CONFIG: u64 = 64 << 20;
/// The most bytes of one `--param`.
pub const MAX_PARAM: usize = 64 << 10;

/// A bad option or config file. `at` names where, as the user wrote it: a flag
/// (`--batch-size`), a file's key (`run.json: batch_size`) or a place in a file
/// (`run.json:3:9`). The binary's exit code 2.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value the option may not take.
    #[error("{at}: {message}")]
    Invalid {
        /// The flag or key.
        at: String,
        /// Why.
        message: String,
    },
    /// A file an option names that cannot be read, parsed or written.
    #[error("{at}: {message}")]
    File {
        /// The flag and the file, or the file's line and column.
        at: String,
        /// Why.
        message: String,
    },
    /// Options that do not go together, or a resume that would change what a run
    /// keeps.
    #[error("{at}: {message}")]
    Refused {
        /// The flag at fault.
        at: String,
        /// Why, and what to do instead.
        message: String,
    },
}

impl ConfigError {
    /// `at` may not take its value.
    pub fn invalid(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: at.into(),
            message: message.into(),
        }
    }

    /// The file at `at` cannot be used.
    pub fn file(at: impl Into<String>, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::File {
            at: at.into(),
            message: message.to_string(),
        }
    }

    /// `at` is refused with the rest of the options.
    pub fn refused(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Refused {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// How the command line writes option `key`: `--batch-size` for `batch_size`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

#[cfg(test)]
mod tests;
