//! Shared pieces for teamsgw benchmarks and load generators.
//!
//! [`CountingAllocator`] proves zero-allocation claims: install it as the global allocator in a
//! bench binary and read [`allocations`] around the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod store;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);

/// Counts every allocation (and reallocation) made through it, then defers to the system.
pub struct CountingAllocator;

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator, which upholds the contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` through `alloc`/`realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; the new size comes from the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// (allocations, bytes) since the process started.
pub fn allocations() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

/// Bytes currently allocated (allocated minus freed) through the counting allocator.
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// Allocations made while running `f`, with its result.
pub fn count_allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = allocations().0;
    let out = f();
    (out, allocations().0 - before)
}

/// The best time per iteration (ns) over `rounds` rounds of `iters` calls of `f`, and the
/// allocations per iteration of the last round.
pub fn best_per_iteration(rounds: u32, iters: u32, mut f: impl FnMut()) -> (f64, f64) {
    let mut best = f64::MAX;
    let mut allocs = 0;
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let (_, n) = count_allocations(|| {
            for _ in 0..iters {
                f();
            }
        });
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(iters));
        allocs = n;
    }
    (best, allocs as f64 / f64::from(iters))
}
