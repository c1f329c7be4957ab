//! A locked git plugin as the policy runtime sees it: fixed by the lock, so its
//! files are not watched, and a reload (triggered by another file) refuses it once
//! its files differ from the checksum it was loaded with.

use std::time::{Duration, Instant};

use rudder_policy::project::{self, Installed, Origin};
use rudder_policy::{Ctx, EventKind, Messages, Policies, SearchPath, Settings, WatchMode};

fn ctx<'a>() -> Ctx<'a> {
    let mut c = Ctx::new(Settings::new(0.1, 64), 6400);
    c.steps_per_epoch = 100;
    c
}

fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_locked_git_plugin_is_not_watched_and_a_reload_refuses_it_modified() {
    let dir = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let home = project::installed_dir(&dir.path().join("cache"), "common", commit);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("plugin.json"),
        r#"{"name": "common", "version": "1.0.0", "description": "d", "api": 1, "policies": {"keep": "keep.rhai"}, "license": "MIT"}"#,
    )
    .unwrap();
    std::fs::write(home.join("keep.rhai"), "fn on_step(ctx) { #{} }\n").unwrap();
    std::fs::write(home.join("util.rhai"), "fn rate() { 0.1 }\n").unwrap();
    let checksum = project::checksum(&project::listing(&home).unwrap());
    let locked = Installed {
        name: "common".into(),
        home: home.clone(),
        dependencies: Vec::new(),
        origin: Origin {
            name: "common".into(),
            version: "1.0.0".into(),
            source: format!("git+file:///srv/common.git#{commit}"),
            commit: Some(commit.into()),
            checksum,
        },
    };
    let mine = dir.path().join("mine.rhai");
    save(
        &mine,
        "import \"common/util\" as u;\nfn on_step(ctx) { #{ lr: u::rate() } }\n",
    );
    let mut set = Policies::builder()
        .policy(mine.display().to_string())
        .search_path(SearchPath::new(Vec::new()).with_plugins(vec![locked]))
        .watch(WatchMode::Auto)
        .messages(Messages::none())
        .build()
        .unwrap();
    assert_eq!(set.on_step(&ctx()).decision.lr, Some(0.1));
    let watched = set.watched_files();
    assert!(
        watched.iter().any(|f| f.ends_with("mine.rhai")),
        "{watched:?}"
    );
    assert!(!watched.iter().any(|f| f.starts_with(&home)), "{watched:?}");
    let provenance = set.provenance();
    assert!(
        provenance[0]
            .files
            .iter()
            .any(|f| f.path.ends_with("util.rhai"))
    );

    // The cached module edited, then the project's own policy saved: the reload
    // is refused and the loaded version runs on.
    std::fs::write(home.join("util.rhai"), "fn rate() { 0.777 }\n").unwrap();
    save(
        &mine,
        "import \"common/util\" as u;\nfn on_step(ctx) { #{ lr: u::rate() * 2.0 } }\n",
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !set.edit_seen() {
        assert!(Instant::now() < end, "the watcher never saw the save");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = set.on_step(&ctx());
    assert_eq!(reply.decision.lr, Some(0.1));
    let failed = &reply.events[0];
    assert_eq!(failed.kind, EventKind::ReloadFailed);
    let message = failed.message.as_deref().unwrap_or("");
    assert!(
        message.contains("plugin common: installed files differ from rudder.lock"),
        "{message}"
    );
}
