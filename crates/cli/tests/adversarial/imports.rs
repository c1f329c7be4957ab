//! Import cycles, static and dynamic, are refused by name before they recurse; imports
//! reach nothing outside the policy's folder and the search path, whatever symlinks
//! say, and no byte of a refused file reaches a message.

use super::{event, rudder, survives, write};

#[test]
fn static_cycles_are_exit_2_naming_the_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "selfie.rhai",
        "import \"selfie\" as m;\nfn on_epoch_end(ctx) { () }\n",
    );
    write(
        d,
        "a.rhai",
        "import \"b\" as b;\nfn on_epoch_end(ctx) { () }\n",
    );
    write(
        d,
        "b.rhai",
        "// b imports a back\nimport \"a\" as a;\nfn f() { 1 }\n",
    );
    for (policy, needles) in [
        (
            "selfie.rhai",
            vec![
                "selfie.rhai:1:8: ",
                "import cycle selfie.rhai -> selfie.rhai",
            ],
        ),
        (
            "a.rhai",
            vec!["b.rhai:2:8: ", "import cycle a.rhai -> b.rhai -> a.rhai"],
        ),
    ] {
        rudder(d, &["policy", "check", policy]).refused(policy, &needles);
        rudder(d, &["train", "-q", "--policy", policy]).refused(policy, &needles);
    }
}

#[test]
fn a_cycle_met_by_a_hook_is_a_policy_error_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The import's path is computed, so nothing can see it before the hook runs; the
    // module it loads imports itself at its top level.
    write(d, "looper.rhai", "import \"looper\" as me;\nfn f() { 1 }\n");
    write(
        d,
        "dynamic.rhai",
        &super::at_epoch_end("let p = \"loop\" + \"er\";\nimport p as m;\n()"),
    );
    let events = survives(d, "dynamic", "dynamic.rhai", 2);
    let e = event(&events, "policy_error", "dynamic");
    assert_eq!(e["file"], "looper.rhai", "{e}");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(1), Some(8))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("import cycle looper.rhai -> looper.rhai"),
        "{e}"
    );
}

#[test]
fn modules_that_import_each_other_from_their_functions_are_a_named_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "ping.rhai",
        "fn bounce() { import \"pong\" as o; o::bounce() }\n",
    );
    write(
        d,
        "pong.rhai",
        "fn bounce() { import \"ping\" as i; i::bounce() }\n",
    );
    write(
        d,
        "game.rhai",
        &super::at_epoch_end("import \"ping\" as p;\np::bounce();\n()"),
    );
    let events = survives(d, "ping-pong", "game.rhai", 2);
    let e = event(&events, "policy_error", "ping-pong");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("import cycle ping.rhai -> pong.rhai -> ping.rhai"),
        "{e}"
    );
    assert_eq!(e["file"], "pong.rhai", "{e}");
}

#[test]
fn a_symlink_out_of_the_policys_folder_is_refused_by_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.rhai", "SECRET-TOKEN-42 is here\n");
    write(outside.path(), "fine.rhai", "fn f() { 1 }\n");
    let d = tmp.path();
    std::fs::create_dir(d.join("pol")).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("pol/link")).unwrap();
    write(
        d,
        "pol/leak.rhai",
        "import \"link/secret\" as s;\nfn on_epoch_end(ctx) { () }\n",
    );
    write(
        d,
        "pol/fine_looking.rhai",
        "import \"link/fine\" as s;\nfn on_epoch_end(ctx) { () }\n",
    );
    for policy in ["pol/leak.rhai", "pol/fine_looking.rhai"] {
        for args in [
            vec!["policy", "check", policy],
            vec!["train", "-q", "--policy", policy],
        ] {
            let r = rudder(d, &args);
            r.refused(
                policy,
                &[":1:8: ", "link/", "leads outside pol through a symlink"],
            );
            assert!(!r.stderr.contains("SECRET"), "{}", r.stderr);
            assert!(
                !r.stderr.contains(&*outside.path().to_string_lossy()),
                "the target is not named: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn a_plugin_file_that_is_a_symlink_out_of_the_plugin_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "x.rhai", "SECRET-TOKEN-42\n");
    let d = tmp.path();
    write(
        d,
        "plugins/sly/plugin.json",
        r#"{"name": "sly", "version": "1.0.0", "description": "d", "api": 1, "policies": {"x": "x.rhai"}, "license": "MIT"}"#,
    );
    std::os::unix::fs::symlink(outside.path().join("x.rhai"), d.join("plugins/sly/x.rhai"))
        .unwrap();
    let r = rudder(d, &["policy", "check", "sly/x"]);
    r.refused(
        "plugin",
        &["x.rhai leads outside the plugin through a symlink"],
    );
    assert!(!r.stderr.contains("SECRET"), "{}", r.stderr);
}
