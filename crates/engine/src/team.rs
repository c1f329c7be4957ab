//! A persistent team of helper threads for the engine's short parallel regions.
//!
//! A training step of the MLP is a dozen products of 20 to 150 us each. Split over
//! rayon's pool, each split waits for a worker that has gone to sleep since the
//! last one, and on a VM that wake-up costs as much as the split saves
//! (BENCHMARKS.md). The team's helpers instead spin for a while after each job
//! (then park), so the next job of the same step starts at once.
//!
//! One caller at a time uses the team (a second, or a job inside a job, runs its
//! parts on rayon's pool instead); [`run`] returns only when every part is done, so
//! the job may borrow from the caller's stack.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a helper spins for the next job before it parks (one within the
/// machine's cores; the others park at once).
const SPIN: Duration = Duration::from_micros(200);

/// A job: the parts' function, its lifetime erased (see [`run`]).
type Job = *const (dyn Fn(usize) + Sync);

struct Slot {
    /// Bumped by the caller for each job; the helper runs part `part` of `job`.
    seq: AtomicU64,
    /// The `seq` the helper finished last.
    done: AtomicU64,
    /// Whether the helper is parked (the caller then unparks it).
    parked: AtomicBool,
    /// Whether the part panicked.
    panicked: AtomicBool,
    job: UnsafeCell<(Option<Job>, usize)>,
}

// SAFETY: `job` is written only by the caller holding the team's lock, before it
// bumps `seq` (release), and read only by the helper after it sees the new `seq`
// (acquire) and before it publishes `done`; the caller does not write it again until
// it has seen `done`.
unsafe impl Sync for Slot {}
unsafe impl Send for Slot {}

struct Helper {
    slot: Arc<Slot>,
    thread: std::thread::Thread,
}

struct Team {
    helpers: Mutex<Vec<Helper>>,
}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| Team {
        helpers: Mutex::new(Vec::new()),
    })
}

fn spawn(index: usize) -> Option<Helper> {
    let slot = Arc::new(Slot {
        seq: AtomicU64::new(0),
        done: AtomicU64::new(0),
        parked: AtomicBool::new(false),
        panicked: AtomicBool::new(false),
        job: UnsafeCell::new((None, 0)),
    });
    let mine = Arc::clone(&slot);
    // Helpers beyond the cores (`--threads` above them) park at once: spinning there
    // would take time slices from the threads doing the work.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spin = if index < cores { SPIN } else { Duration::ZERO };
    let handle = std::thread::Builder::new()
        .name(format!("rudder-team-{index}"))
        .spawn(move || serve(&mine, spin))
        .ok()?;
    Some(Helper {
        slot,
        thread: handle.thread().clone(),
    })
}

/// A helper's life: wait for a job (spinning for `spin`, then parked), run its part,
/// report.
fn serve(slot: &Slot, spin: Duration) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while slot.seq.load(Ordering::Acquire) == seen {
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() >= spin {
                slot.parked.store(true, Ordering::SeqCst);
                if slot.seq.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                slot.parked.store(false, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        }
        seen = slot.seq.load(Ordering::Acquire);
        // SAFETY: see `Slot`: the caller wrote the job before bumping `seq` and
        // keeps it (and what it borrows) alive until it sees `done == seen`.
        let (job, part) = unsafe { *slot.job.get() };
        if let Some(job) = job {
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| f(part))).is_err() {
                slot.panicked.store(true, Ordering::Release);
            }
        }
        slot.done.store(seen, Ordering::Release);
    }
}

/// Runs `f(0)`, ..., `f(parts - 1)`, part 0 on the calling thread and the others on
/// the team's helpers (started at the first use, kept for the process), and
/// returns when all are done. Falls back to rayon's pool when another caller holds
/// the team (or this is a job inside a job).
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        return (0..parts).for_each(f);
    }
    let Ok(mut helpers) = team().helpers.try_lock() else {
        use rayon::prelude::*;
        return (0..parts).into_par_iter().for_each(f);
    };
    while helpers.len() < parts - 1 {
        let index = helpers.len() + 1;
        match spawn(index) {
            Some(h) => helpers.push(h),
            // No thread to be had: this job (and the next that needs as many)
            // runs on rayon's pool.
            None => {
                drop(helpers);
                use rayon::prelude::*;
                return (0..parts).into_par_iter().for_each(f);
            }
        }
    }
    // SAFETY (lifetime): the job is only run until every helper reports `done`
    // below, before this function returns and `f`'s borrow ends.
    let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
    let used = &helpers[..parts - 1];
    for (i, h) in used.iter().enumerate() {
        let next = h.slot.seq.load(Ordering::Relaxed) + 1;
        // SAFETY: see `Slot`: the helper is idle (it reported the previous `seq`).
        unsafe { *h.slot.job.get() = (Some(job), i + 1) };
        h.slot.seq.store(next, Ordering::SeqCst);
        if h.slot.parked.load(Ordering::SeqCst) {
            h.thread.unpark();
        }
    }
    let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
    let mut panicked = false;
    for h in used {
        // Only this caller (holding the lock) bumps `seq`: it is the job just sent.
        let want = h.slot.seq.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while h.slot.done.load(Ordering::Acquire) != want {
            // A helper that lost its core needs this one back.
            spins += 1;
            if spins > 4096 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        panicked |= h.slot.panicked.swap(false, Ordering::AcqRel);
    }
    drop(helpers);
    if let Err(e) = mine {
        std::panic::resume_unwind(e);
    }
    assert!(
        !panicked,
        "a part of an engine job panicked on a helper thread"
    );
}

/// A mutable slice's base pointer, shared by the parts that each take a disjoint
/// piece of it.
pub struct Shared<T>(*mut T, usize);

// SAFETY: parts take disjoint pieces (see `Shared::piece`), of a `T: Send`.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The base pointer and length of `data`.
    pub fn new(data: &mut [T]) -> Shared<T> {
        Shared(data.as_mut_ptr(), data.len())
    }

    /// Elements `start..start + len`.
    ///
    /// # Safety
    /// No two live pieces may overlap, and the slice `new` took must outlive them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn piece(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.1, "piece out of bounds");
        // SAFETY: in bounds (above); disjoint and alive as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Runs `f(i, chunk)` over `data` cut into chunks of `chunk` elements (the last may
/// be shorter), one part each, on the team.
pub fn chunks_mut<T: Send>(data: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let (len, chunk) = (data.len(), chunk.max(1));
    let shared = Shared::new(data);
    run(len.div_ceil(chunk), &|i| {
        let start = i * chunk;
        // SAFETY: part `i` alone takes chunk `i`; `data` outlives `run`.
        f(i, unsafe { shared.piece(start, chunk.min(len - start)) })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_part_runs_once_and_jobs_borrow_the_callers_data() {
        for parts in [1, 2, 3, 5] {
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                run(parts, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 200));
        }
        // A job inside a job runs on rayon's pool, not the busy team.
        let total = AtomicUsize::new(0);
        run(2, &|_| {
            run(3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_panicking_part_reaches_the_caller() {
        let r = catch_unwind(|| run(2, &|i| assert!(i == 0, "part {i}")));
        assert!(r.is_err());
        // The team still works afterwards.
        let n = AtomicUsize::new(0);
        run(2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
