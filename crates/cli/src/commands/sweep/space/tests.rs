use super::*;

fn axis(arg: &str) -> Axis {
    parse_grid(arg).unwrap()
}

#[test]
fn a_grid_is_the_cross_product_with_the_multipliers_fastest() {
    let axes = [axis("batch_size=32,64"), axis("optimizer=sgd,adamw")];
    let points = grid(&axes, &[1.0, 2.0]);
    let shown: Vec<String> = points
        .iter()
        .map(|p| format!("{} x{}", describe(&p.settings), p.multiplier))
        .collect();
    assert_eq!(
        shown,
        [
            "batch_size 32, optimizer sgd x1",
            "batch_size 32, optimizer sgd x2",
            "batch_size 32, optimizer adamw x1",
            "batch_size 32, optimizer adamw x2",
            "batch_size 64, optimizer sgd x1",
            "batch_size 64, optimizer sgd x2",
            "batch_size 64, optimizer adamw x1",
            "batch_size 64, optimizer adamw x2",
        ]
    );
    assert_eq!(
        name(&points[3], 3, false, false),
        "batch_size-32_optimizer-adamw_x2"
    );
    assert_eq!(
        name(&points[3], 3, false, true),
        "batch_size-32_optimizer-adamw"
    );
    let none = grid(&[], &[0.5]);
    assert_eq!(
        name(&none[0], 0, false, true),
        "x0.5",
        "no axes: named by the multiplier"
    );
}

#[test]
fn values_split_outside_brackets_and_read_as_json() {
    let a = axis("hidden=[64,32],[128],256");
    assert_eq!(
        a.values,
        [
            serde_json::json!([64, 32]),
            serde_json::json!([128]),
            serde_json::json!(256)
        ]
    );
    let p = Point {
        settings: vec![
            ("hidden".into(), a.values[0].clone()),
            ("lr/cosine.T_max".into(), 5.into()),
        ],
        multiplier: 1.0,
    };
    assert_eq!(name(&p, 0, false, true), "hidden-64x32_lr-cosine.T_max-5");
    assert_eq!(axis("batch-size=8").key, "batch_size");
    assert_eq!(axis("optimizer=adamw").values, [Value::from("adamw")]);
}

#[test]
fn bad_axes_and_spaces_name_themselves() {
    let err = |r: Result<Axis, ConfigError>| r.unwrap_err().to_string();
    assert!(err(parse_grid("batch_size")).contains("--grid batch_size: is not KEY=V1,V2"));
    assert!(err(parse_grid("data=mnist,digits")).contains("data is the same for every trial"));
    assert!(err(parse_grid("lr=0.1,0.1")).contains("0.1 is given twice"));
    assert!(err(parse_grid("lr=0.1,")).contains("no empty one"));
    let serr = |s: &str| parse_space(s).unwrap_err().to_string();
    assert!(serr("lr=log(0,1)").contains("log(A,B) needs A > 0"));
    assert!(serr("lr=uniform(2,1)").contains("A < B"));
    assert!(serr("batch_size=int(8.5,64)").contains("whole numbers"));
    assert!(serr("lr=normal(0,1)").contains("is not KEY=log(A,B)"));
    assert_eq!(
        parse_space("optimizer=choice(sgd,adamw)").unwrap().1,
        Dist::Choice(vec!["sgd".into(), "adamw".into()])
    );
}

#[test]
fn samples_are_reproducible_from_the_seed_and_in_their_ranges() {
    let space = [
        parse_space("lr=log(0.001,1)").unwrap(),
        parse_space("momentum=uniform(0.5,0.99)").unwrap(),
        parse_space("batch_size=int(8,10)").unwrap(),
        parse_space("optimizer=choice(sgd,adamw)").unwrap(),
    ];
    let a = samples(&space, 200, 7, &[1.0]);
    assert_eq!(
        a,
        samples(&space, 200, 7, &[1.0]),
        "the same seed draws the same"
    );
    assert_ne!(
        a,
        samples(&space, 200, 8, &[1.0]),
        "another seed, other draws"
    );
    let col = |k: usize| a.iter().map(move |p| p.settings[k].1.clone());
    assert!(col(0).all(|v| (0.001..1.0).contains(&v.as_f64().unwrap())));
    assert!(col(1).all(|v| (0.5..0.99).contains(&v.as_f64().unwrap())));
    let ints: std::collections::BTreeSet<i64> = col(2).map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(
        ints.into_iter().collect::<Vec<_>>(),
        [8, 9, 10],
        "both ends included"
    );
    // Log-uniform: as many draws below 0.0316 (the log-midpoint) as above, roughly.
    let low = col(0)
        .filter(|v| v.as_f64().unwrap() < 0.001f64.sqrt())
        .count();
    assert!(
        (70..130).contains(&low),
        "{low} of 200 in the lower half of the decades"
    );
    assert!(col(3).any(|v| v == "sgd") && col(3).any(|v| v == "adamw"));
    assert_eq!(name(&a[12], 12, true, true), "s012");
}

#[test]
fn a_trials_options_are_the_commands_with_its_settings() {
    let base = TrainOptions {
        lr: Some(0.1),
        batch_size: Some(64),
        param: Some(vec!["patience=3".into()]),
        ..TrainOptions::default()
    };
    let p = Point {
        settings: vec![
            ("batch_size".into(), 256.into()),
            ("hidden".into(), 32.into()),
            ("optimizer".into(), "adamw".into()),
            ("stop/early_stop.patience".into(), 9.into()),
        ],
        multiplier: 2.0,
    };
    let o = options(&base, &p).unwrap();
    assert_eq!(
        (o.lr, o.batch_size, o.hidden.clone()),
        (Some(0.1), Some(256), Some(vec![32]))
    );
    assert_eq!(o.optimizer, Some(rudder_core::OptimizerKind::Adamw));
    assert_eq!(
        o.param.unwrap(),
        ["patience=3", "stop/early_stop.patience=9"],
        "the trial's last, so it wins"
    );
    let bad = Point {
        settings: vec![("batch_size".into(), "big".into())],
        multiplier: 1.0,
    };
    assert!(
        options(&base, &bad)
            .unwrap_err()
            .to_string()
            .contains("--grid/--space batch_size big")
    );
}
