//! What a policy writes reaches the terminal escaped: control characters (ANSI escape
//! sequences that clear the screen or retitle the window) are shown, not obeyed.

use super::{rudder, write};

#[test]
fn control_characters_in_policy_text_are_escaped_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "ansi.rhai",
        "fn on_epoch_end(ctx) {\n    if ctx.epoch == 0 { #{ log: \"\\x1b[2J\\x1b]0;pwned\\x07 cleared\" } } else { throw \"\\x1b[31mred\" }\n}\n",
    );
    let r = rudder(
        d,
        &[
            "train",
            "--epochs",
            "2",
            "--policy",
            "ansi.rhai",
            "--out",
            "r",
        ],
    );
    r.ok("ansi");
    assert!(!r.stderr.contains('\u{1b}'), "a raw escape reached stderr");
    assert!(!r.stderr.contains('\u{7}'), "a raw bell reached stderr");
    assert!(r.stderr.contains("\\u{1b}[2J"), "{}", r.stderr);
    assert!(r.stderr.contains("\\u{1b}[31mred"), "{}", r.stderr);
}
