//! A coarse clock for the time budget. One ticker thread stores the milliseconds since
//! the process started in an atomic every `TICK` while hook calls run, so the check at
//! each script operation is one relaxed load; a single slow built-in (comparing two
//! 100,000-element arrays takes milliseconds) can then overrun the budget by no more
//! than its own time plus one tick. The ticker parks after `IDLE` without a call.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(5);
const IDLE: Duration = Duration::from_secs(2);

static NOW_MS: AtomicU64 = AtomicU64::new(0);
static LAST_ARM_MS: AtomicU64 = AtomicU64::new(0);
static PARKED: AtomicBool = AtomicBool::new(false);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn ticker() -> Option<&'static Thread> {
    static TICKER: OnceLock<Option<Thread>> = OnceLock::new();
    TICKER
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("rudder-budget-clock".into())
                .stack_size(64 * 1024)
                .spawn(run)
                .ok()
                .map(|h| h.thread().clone())
        })
        .as_ref()
}

fn run() {
    loop {
        let now = precise_ms();
        NOW_MS.fetch_max(now, Ordering::Relaxed);
        if now.saturating_sub(LAST_ARM_MS.load(Ordering::SeqCst)) > IDLE.as_millis() as u64 {
            PARKED.store(true, Ordering::SeqCst);
            // Re-check after announcing: `arm` either saw PARKED or we see its time.
            if precise_ms().saturating_sub(LAST_ARM_MS.load(Ordering::SeqCst))
                > IDLE.as_millis() as u64
            {
                std::thread::park();
            }
            PARKED.store(false, Ordering::SeqCst);
            continue;
        }
        std::thread::sleep(TICK);
    }
}

/// Milliseconds since the process started, read from the system clock.
pub(crate) fn precise_ms() -> u64 {
    base().elapsed().as_millis() as u64
}

/// The coarse time: at most one tick behind `precise_ms` while calls run.
#[inline]
pub(crate) fn now_ms() -> u64 {
    NOW_MS.load(Ordering::Relaxed)
}

/// Starts timing a call: the precise time now, with the ticker running.
pub(crate) fn arm() -> u64 {
    let now = precise_ms();
    NOW_MS.fetch_max(now, Ordering::Relaxed);
    LAST_ARM_MS.store(now, Ordering::SeqCst);
    if let Some(t) = ticker()
        && PARKED.load(Ordering::SeqCst)
    {
        t.unpark();
    }
    now
}
