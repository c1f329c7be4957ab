//! File watching for hot reload: notify on its own thread, on the parent folders of
//! the watched files (watching a file itself loses every event after the first
//! rename-save), debounced, filtered to the watched files, and a flag the train loop
//! reads with no lock. Knows nothing of Rhai or policies.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer, new_debouncer_opt,
};
pub use rudder_core::WatchMode;

/// Debounce window: bursts of saves within it become one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How often the poll watcher looks.
const POLL: Duration = Duration::from_millis(200);

enum Inner {
    /// Without a debouncer: every content event sets the flag at once.
    Raw(#[allow(dead_code)] RecommendedWatcher),
    Native(#[allow(dead_code)] Debouncer<RecommendedWatcher, RecommendedCache>),
    Poll(#[allow(dead_code)] Debouncer<notify::PollWatcher, RecommendedCache>),
}

/// A watcher that could not start (native events and polling both failed, or a
/// folder could not be watched).
#[derive(Debug, thiserror::Error)]
#[error("{}{source}", folder.as_ref().map_or(String::new(), |f| format!("{}: ", f.display())))]
pub struct WatchError {
    /// The folder that could not be watched, if it was one.
    pub folder: Option<PathBuf>,
    /// notify's error.
    pub source: notify::Error,
}

/// A debouncer that started, watching each of `folders`.
fn watch_all<W: notify::Watcher>(
    started: Result<Debouncer<W, RecommendedCache>, notify::Error>,
    folders: &HashSet<PathBuf>,
) -> Result<Debouncer<W, RecommendedCache>, WatchError> {
    let mut d = started.map_err(|source| WatchError {
        folder: None,
        source,
    })?;
    for f in folders {
        d.watch(f, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                folder: Some(f.clone()),
                source,
            })?;
    }
    Ok(d)
}

/// A running watcher. Dropping it stops the thread.
pub struct Watcher {
    _inner: Inner,
    pending: Arc<AtomicBool>,
    /// `poll` when native watching was not possible.
    pub mode: &'static str,
}

impl Watcher {
    /// Watches `files` (through their folders) in `mode`; `None` for `Mode::Off` or
    /// nothing to watch.
    /// `say` hears that native watching failed and polling took over.
    pub fn start(
        files: &[PathBuf],
        mode: WatchMode,
        say: &dyn Fn(&str),
    ) -> Result<Option<Watcher>, WatchError> {
        if mode == WatchMode::Off || files.is_empty() {
            return Ok(None);
        }
        // A symlinked policy is watched at its target too: an edit of the target is
        // an edit of the policy.
        let wanted: HashSet<PathBuf> = files
            .iter()
            .flat_map(|f| [Some(absolute(f)), f.canonicalize().ok()])
            .flatten()
            .collect();
        let folders: HashSet<PathBuf> = wanted
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let pending = Arc::new(AtomicBool::new(false));
        // The watched files, and any script or manifest in their folders (a reload may
        // import a module that was not there at the start); editor temp files
        // (`.swp`, `~`, `.tmp`) are none of these.
        let relevant = move |p: &Path| {
            let p = absolute(p);
            wanted.contains(&p) || p.extension().is_some_and(|e| e == "rhai" || e == "json")
        };
        let handler = content_handler(pending.clone(), relevant);
        if mode == WatchMode::Auto {
            match watch_all(new_debouncer(DEBOUNCE, None, handler.clone()), &folders) {
                Ok(d) => {
                    return Ok(Some(Watcher {
                        _inner: Inner::Native(d),
                        pending,
                        mode: "native",
                    }));
                }
                Err(e) => say(&format!(
                    "rudder: native file watching failed ({e}); polling every {} ms",
                    POLL.as_millis()
                )),
            }
        }
        let config = notify::Config::default()
            .with_poll_interval(POLL)
            .with_compare_contents(true);
        let poll = new_debouncer_opt::<_, notify::PollWatcher, RecommendedCache>(
            DEBOUNCE,
            None,
            handler,
            RecommendedCache::new(),
            config,
        );
        Ok(Some(Watcher {
            _inner: Inner::Poll(watch_all(poll, &folders)?),
            pending,
            mode: "poll",
        }))
    }

    /// Native events for exactly `files`, not debounced (a file appended to a line at
    /// a time, as a run's `control.jsonl`, is whole at each write); no other file of
    /// their folders counts, and there is no polling (a busy folder polled would be
    /// read whole every time). `None` where native events cannot be had, for the
    /// caller to look some other way.
    pub fn native_exact(files: &[PathBuf]) -> Option<Watcher> {
        let wanted: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let folders: HashSet<PathBuf> = wanted
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let pending = Arc::new(AtomicBool::new(false));
        let flag = pending.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(e) = res
                && is_content(&e.kind)
                && e.paths.iter().any(|p| wanted.contains(&absolute(p)))
            {
                flag.store(true, Ordering::Release);
            }
        };
        let mut w = notify::recommended_watcher(handler).ok()?;
        for f in &folders {
            notify::Watcher::watch(&mut w, f, RecursiveMode::NonRecursive).ok()?;
        }
        Some(Watcher {
            _inner: Inner::Raw(w),
            pending,
            mode: "native",
        })
    }

    /// Whether a watched file changed since the last [`Watcher::take`], leaving the
    /// flag as it is.
    pub fn peek(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether a watched file changed since the last call; one atomic swap.
    pub fn take(&self) -> bool {
        self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Acquire)
    }
}

/// The debouncer's handler: sets `flag` when a content change reaches a path that
/// `relevant` takes. Content changes only: notify also reports opens and reads (the
/// reload check's own read among them, which would schedule another check forever)
/// and metadata changes. The poll watcher reports a write as a new write time.
fn content_handler(
    flag: Arc<AtomicBool>,
    relevant: impl Fn(&Path) -> bool + Clone + Send + 'static,
) -> impl FnMut(DebounceEventResult) + Clone + Send + 'static {
    move |res: DebounceEventResult| {
        if let Ok(events) = res
            && events
                .iter()
                .any(|e| is_content(&e.kind) && e.paths.iter().any(|p| relevant(p)))
        {
            flag.store(true, Ordering::Release);
        }
    }
}

/// Whether an event is a change of content (or a new write time, as polling sees
/// one), not an open, a read or another change of metadata.
fn is_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(m)) => *m == MetadataKind::WriteTime,
        _ => true,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
