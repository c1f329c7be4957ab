//! The merge of sources, the defaults, and errors that name the option.

use super::*;
use crate::{OptimizerKind, Rescale};

#[test]
fn command_line_wins_over_the_file() {
    let cli = TrainOptions {
        lr: Some(0.5),
        ..Default::default()
    };
    let file: TrainOptions =
        serde_json::from_str(r#"{"lr": 1, "epochs": 3, "hidden": [8]}"#).unwrap();
    let c = cli.or(file).resolve().unwrap();
    assert_eq!((c.lr, c.epochs, c.hidden.clone()), (0.5, 3, vec![8]));
    assert_eq!(c.batch_size, 64);
}

#[test]
fn adamw_defaults_follow_torch() {
    let c = TrainOptions {
        optimizer: Some(OptimizerKind::Adamw),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(
        (c.momentum, c.betas, c.weight_decay, c.lr_scaling),
        (0.9, [0.9, 0.999], 0.01, Rescale::Sqrt)
    );
}

#[test]
fn bad_values_name_the_flag() {
    let o = TrainOptions {
        batch_size: Some(0),
        ..Default::default()
    };
    let e = o
        .check(&|k| format!("--{}", k.replace('_', "-")))
        .unwrap_err();
    assert_eq!(e.to_string(), "--batch-size: must be at least 1, got 0");
}
