//! What the lock's check adds to every policy load: a project's locked git plugin of
//! 20 files (the shipped `goyal` and 17 modules of about 1 KiB) listed, hashed and
//! compared with `rudder.lock` (`project::installed`, what `SearchPath::from_env`
//! runs before anything compiles). Run: `cargo bench -p rudder-policy --bench checksum`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_main};
use rudder_policy::project::{self, Lock, Locked};

fn plugin(home: &Path) {
    std::fs::create_dir_all(home.join("tests")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/goyal");
    for f in ["plugin.json", "schedule.rhai", "README.md"] {
        std::fs::copy(shipped.join(f), home.join(f)).unwrap();
    }
    for i in 0..17 {
        let body = format!("/// helper {i}\nfn value_{i}() {{ {i} }}\n").repeat(40);
        std::fs::write(home.join(format!("module_{i}.rhai")), body).unwrap();
    }
}

fn checksum(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (root, cache) = (tmp.path().join("project"), tmp.path().join("cache"));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let home = project::installed_dir(&cache, "goyal", commit);
    plugin(&home);
    std::fs::create_dir_all(&root).unwrap();
    let entries = project::listing(&home).unwrap();
    assert_eq!(entries.len(), 20);
    let lock = Lock {
        version: project::LOCK_VERSION,
        plugins: vec![Locked {
            name: "goyal".into(),
            version: "1.0.0".into(),
            source: format!("git+file:///srv/goyal.git?tag=v1.0.0#{commit}"),
            checksum: project::checksum(&entries),
            dependencies: Vec::new(),
        }],
    };
    c.bench_function("a locked 20-file plugin checked against rudder.lock", |b| {
        b.iter(|| black_box(project::installed(&root, &lock, &cache).unwrap()))
    });
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::checksum);
}
criterion_main!(group::benches);
