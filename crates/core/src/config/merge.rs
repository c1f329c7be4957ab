//! From the command line's options to a run's configuration: merged over a
//! `--config` file, or on `--resume` over the run's own `config.json` with what a
//! resume may not change refused.

use std::path::{Path, PathBuf};

use super::{ConfigError, FIXED_ON_RESUME, Overrides, TrainConfig, TrainOptions, flag};

/// Merges the `--config` file (or on `--resume` the run's `config.json`) under the
/// command line's options `cli`, validates both and fills the defaults.
pub fn resolve(cli: TrainOptions) -> Result<TrainConfig, ConfigError> {
    cli.check(&flag)?;
    if let Some(dir) = cli.resume.clone() {
        return resumed(cli, dir);
    }
    let merged = match &cli.config {
        Some(path) => {
            let file = TrainOptions::from_file(path)?;
            file.check(&|k| format!("{}: {k}", path.display()))?;
            cli.or(file)
        }
        None => cli,
    };
    merged.resolve()
}

/// A resume of the run in `dir`: its `config.json` under `cli`, which may override
/// the settings but not what decides the model, the data or the optimizer's state.
fn resumed(cli: TrainOptions, dir: PathBuf) -> Result<TrainConfig, ConfigError> {
    if cli.config.is_some() {
        return Err(ConfigError::refused(
            "--config",
            "a resumed run takes its options from its own config.json; give changes as flags",
        ));
    }
    if cli.out.as_ref().is_some_and(|o| *o != dir) {
        return Err(ConfigError::refused(
            "--out",
            format!("a resumed run stays in its folder {}", dir.display()),
        ));
    }
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(ConfigError::file(
            format!("--resume {}", dir.display()),
            "no config.json there (not a run directory)",
        ));
    }
    let file = run_options(&path, &dir)?;
    let given = cli.given();
    refuse_fixed(&given, &file.given())?;
    let overrides = Overrides {
        epochs: cli.epochs,
        lr: cli.lr,
        batch_size: cli.batch_size,
        accumulation: cli.accumulation,
        momentum: cli.momentum,
        weight_decay: cli.weight_decay,
        given,
    };
    let mut merged = cli.or(file);
    merged.out = Some(dir);
    let mut cfg = merged.resolve()?;
    cfg.overrides = overrides;
    Ok(cfg)
}

/// The run's own options, checked as a file's, with its records (`resumes`,
/// `data_sha256`, `model_sha256`) kept.
fn run_options(path: &Path, dir: &Path) -> Result<TrainOptions, ConfigError> {
    let mut file = TrainOptions::from_run(path, dir)?;
    let records = (
        file.resumes.take(),
        file.data_sha256.take(),
        file.model_sha256.take(),
        file.provenance.take(),
    );
    file.check(&|k| format!("{}: {k}", path.display()))?;
    (
        file.resumes,
        file.data_sha256,
        file.model_sha256,
        file.provenance,
    ) = records;
    Ok(file)
}

/// Refuses a resume's option that would change the model, the data or the
/// optimizer's state; the others override the run's from the resume on.
fn refuse_fixed(
    given: &serde_json::Map<String, serde_json::Value>,
    before: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ConfigError> {
    for key in FIXED_ON_RESUME {
        if let Some(v) = given.get(*key)
            && before.get(*key) != Some(v)
        {
            let kept = match *key {
                "data" | "val_fraction" | "seed" => "data and its split",
                "optimizer" => "optimizer (its state is in the checkpoints)",
                _ => "model",
            };
            return Err(ConfigError::refused(
                flag(key),
                format!("a resumed run keeps its {kept}; start a new run (--out) to change it"),
            ));
        }
    }
    Ok(())
}
