//! The allocation meter: a global-allocator wrapper that keeps, per thread, the bytes
//! allocated minus the bytes freed. The sandbox reads it at every script operation and
//! ends a hook call whose memory grew past its limit (the book's Limits page,
//! docs/src/reference/limits.md). A binary opts in with
//! `#[global_allocator] static A: Metered<System> = Metered(System);` (rudder wraps
//! mimalloc); without it `net` stays 0 and only the size checks done before a built-in
//! allocates bound a call.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Bytes allocated minus bytes freed by this thread since it started.
    static NET: Cell<i64> = const { Cell::new(0) };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Wraps an allocator and meters it per thread.
pub struct Metered<A>(pub A);

#[inline]
fn add(bytes: i64) {
    // A const-initialised thread local without a destructor is always accessible.
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(bytes)));
}

// SAFETY: every method forwards to the wrapped allocator with the same arguments; the
// metering only touches a thread-local counter and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

impl<A> Metered<A> {
    /// Marks the meter as installed; call once from `main` (the sandbox reports whether
    /// memory is metered).
    pub fn install(&self) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// This thread's bytes allocated minus freed.
#[inline]
pub fn net() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// Whether the running binary meters its allocations.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}
