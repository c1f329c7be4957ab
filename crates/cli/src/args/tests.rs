//! The flags and the config file's keys are one list: every key has its flag, every
//! flag (but `--config` and `--resume`) its key, and a value given either way reaches
//! the library the same.

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

use super::TrainArgs;

#[derive(Parser)]
struct Train {
    #[command(flatten)]
    args: TrainArgs,
}

/// A config file that sets every option.
fn every_key() -> serde_json::Map<String, Value> {
    let v = json!({
        "data": "mnist", "data_dir": "d", "val_fraction": 0.2, "model": "cnn",
        "dropout": 0.25, "hidden": [8, 4], "channels": [3, 5], "task": "regression",
        "targets": 2, "loss": "huber", "huber_delta": 0.5, "optimizer": "adamw",
        "lr": 0.01, "momentum": 0.5, "nesterov": true, "weight_decay": 0.001,
        "betas": [0.8, 0.99], "eps": 1e-7, "batch_size": 32, "epochs": 3,
        "accumulation": 2, "lr_scaling": "sqrt", "policy": ["lr/cosine", "stop/early_stop"],
        "param": ["T_max=5", "patience=2"], "watch": "poll", "out": "runs/x", "seed": 7,
        "device": "cpu", "threads": 1, "kernels": "candle", "checkpoint_every": 2,
        "keep_last": 1, "keep_tagged": 4, "monitor": "val_rmse", "log_steps": true, "tensorboard": "tb",
        "quiet": true
    });
    let Value::Object(m) = v else { unreachable!() };
    m
}

#[test]
fn every_config_key_is_a_flag_with_the_same_value() {
    let keys = every_key();
    // The file's form is a valid config file.
    let from_file: rudder_core::TrainOptions =
        serde_json::from_value(Value::Object(keys.clone())).unwrap();
    assert_eq!(from_file.given(), keys, "the test's file misses a key");
    let mut argv = vec!["train".to_string()];
    for (k, v) in &keys {
        let flag = rudder_core::config::flag(k);
        match v {
            Value::Array(items) if k == "policy" || k == "param" => {
                for i in items {
                    argv.push(flag.clone());
                    argv.push(i.as_str().unwrap().to_string());
                }
            }
            Value::Array(items) => {
                argv.push(flag);
                argv.push(
                    items
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            Value::String(s) => argv.extend([flag, s.clone()]),
            other => argv.extend([flag, other.to_string()]),
        }
    }
    let parsed = Train::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert_eq!(parsed.args.options().given(), keys);
}

#[test]
fn every_flag_is_a_config_key() {
    let keys = every_key();
    let cmd = Train::command();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if ["config", "resume", "help"].contains(&long) {
            continue;
        }
        assert!(
            keys.contains_key(&long.replace('-', "_")),
            "--{long} is no config key"
        );
    }
}
