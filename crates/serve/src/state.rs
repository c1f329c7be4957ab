//! What every request shares: the served folders, the list's cache, the guard, the
//! bound on policy checks at once, and the policy texts the editor saved.

use serde_json::{Value, json};

use crate::auth::Guard;
use crate::edit;
use crate::scan::Roots;
use crate::summary::{Cache, Locks};

/// At most this many policy checks at once (each compiles and dry-runs a policy).
const CHECKS: usize = 2;

/// What every request shares.
pub(crate) struct State {
    pub(crate) roots: Roots,
    cache: Cache,
    pub(crate) guard: Guard,
    pub(crate) checks: tokio::sync::Semaphore,
    /// The policy texts saved through the editor.
    pub(crate) saved: edit::Saved,
}

impl State {
    pub(crate) fn new(roots: Roots, guard: Guard) -> State {
        State {
            roots,
            cache: Cache::default(),
            guard,
            checks: tokio::sync::Semaphore::new(CHECKS),
            saved: edit::Saved::default(),
        }
    }

    /// Every run and sweep, as the list shows them.
    pub(crate) fn list(&self) -> Value {
        let locks = Locks::now();
        let runs: Vec<Value> = self
            .roots
            .scan()
            .iter()
            .map(|f| self.cache.line(f, &locks))
            .collect();
        json!({"roots": self.roots.shown(), "runs": runs})
    }
}
