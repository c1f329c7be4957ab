//! Names resolve only through the documented search path: a stray file in a plugin
//! folder cannot replace the default policy or a library name, a plugin's files are
//! reached only as its manifest's `PLUGIN/POLICY`, and `policy list` says where every
//! name resolves and what shadows what.

use super::{jsonl, rudder, write};

const MANIFEST: &str = r#"{"name": "kit", "version": "1.0.0", "description": "d", "api": 1, "policies": {"halve": "halve.rhai"}, "license": "MIT"}"#;

#[test]
fn a_stray_default_in_a_plugin_replaces_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "plugins/kit/plugin.json", MANIFEST);
    write(
        d,
        "plugins/kit/halve.rhai",
        "fn on_epoch_start(ctx) { #{ lr: ctx.base_lr / 2.0 } }\n",
    );
    // Both would set a visible LR of 7 if they were ever picked.
    write(
        d,
        "plugins/kit/default.rhai",
        "fn on_epoch_start(ctx) { #{ lr: 7.0 } }\n",
    );
    write(
        d,
        "plugins/kit/cosine.rhai",
        "fn on_epoch_start(ctx) { #{ lr: 7.0 } }\n",
    );
    for policy in ["default", "cosine"] {
        let r = rudder(
            d,
            &[
                "train", "-q", "--epochs", "1", "--policy", policy, "--out", policy,
            ],
        );
        r.ok(policy);
        let m = jsonl(&d.join(policy).join("metrics.jsonl"));
        assert_ne!(m[0]["lr"], 7.0, "{policy} came from the plugin folder");
    }
    let list = rudder(d, &["policy", "list"]);
    list.ok("list");
    let line = |name: &str| {
        list.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{}", list.stdout))
            .to_string()
    };
    assert!(
        line("default").contains("<embedded>/default.rhai"),
        "{}",
        line("default")
    );
    assert!(line("kit/halve").contains("plugins/kit/halve.rhai"));
    assert!(!list.stdout.contains("kit/default"), "{}", list.stdout);
    // Undeclared files of a plugin are not policies.
    rudder(d, &["policy", "check", "kit/default"]).refused(
        "undeclared",
        &["plugin kit has no policy \"default\" (it has halve)"],
    );
}

#[test]
fn policy_list_flags_a_name_that_shadows_another() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "scripts/default.rhai",
        "//! Mine.\nfn on_epoch_start(ctx) { () }\n",
    );
    write(
        d,
        "scripts/cosine.rhai",
        "//! My cosine.\nfn on_epoch_start(ctx) { () }\n",
    );
    let list = rudder(d, &["policy", "list"]);
    list.ok("list");
    let def = list
        .stdout
        .lines()
        .find(|l| l.starts_with("default "))
        .unwrap();
    assert!(
        def.contains("scripts/default.rhai") && def.contains("(shadows <embedded>/default.rhai)"),
        "{def}"
    );
    let cos = list
        .stdout
        .lines()
        .find(|l| l.starts_with("lr/cosine "))
        .unwrap();
    assert!(
        cos.contains("<embedded>/lr/cosine.rhai")
            && cos.contains("\"cosine\" finds scripts/cosine.rhai instead"),
        "{cos}"
    );
}
