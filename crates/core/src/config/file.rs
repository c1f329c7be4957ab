//! Reading options from a JSON file: a `--config` file, or a run's own
//! `config.json` on `--resume`. Errors name the file, and the line and column.

use std::path::Path;

use super::{ConfigError, MAX_CONFIG, MAX_RUN_CONFIG, TrainOptions};

impl TrainOptions {
    /// Reads a `--config` file; errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<TrainOptions, ConfigError> {
        Self::read_file(path, "--config", MAX_CONFIG)
    }

    /// Reads a run's own `config.json` (on `--resume`): larger (its `resumes` grow),
    /// and its `resumes` kept.
    pub fn from_run(path: &Path, dir: &Path) -> Result<TrainOptions, ConfigError> {
        Self::read_file(
            path,
            &format!("--resume {}:", dir.display()),
            MAX_RUN_CONFIG,
        )
    }

    fn read_file(path: &Path, flag: &str, limit: u64) -> Result<TrainOptions, ConfigError> {
        let fault = |msg: String| ConfigError::file(format!("{flag} {}", path.display()), msg);
        let bytes = crate::input::read(path, limit).map_err(|e| match e {
            crate::input::ReadError::TooLarge(n) => fault(format!(
                "{n} bytes; a config file is at most {} KiB",
                limit >> 10
            )),
            crate::input::ReadError::Io(e) => fault(e.to_string()),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| fault("not UTF-8 text".into()))?;
        // serde would read an array as the fields in order.
        if let Some(c) = text.trim_start().chars().next()
            && c != '{'
        {
            return Err(fault("must be a JSON object ({\"lr\": 0.1, ...})".into()));
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        let parsed: TrainOptions = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let msg = crate::text::clip_quoted(&inner.to_string());
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            let at = format!("{}:{}:{}", path.display(), inner.line(), inner.column());
            if key == "." || msg.contains(&format!("`{key}`")) {
                ConfigError::file(at, msg)
            } else {
                ConfigError::file(at, format!("{key}: {msg}"))
            }
        })?;
        // Nothing may follow the object.
        de.end().map_err(|e| {
            ConfigError::file(
                format!("{}:{}:{}", path.display(), e.line(), e.column()),
                "text after the JSON object",
            )
        })?;
        Ok(parsed)
    }
}
