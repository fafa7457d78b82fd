//! The process's allocator: the system allocator, which can also count allocations, tuned
//! for kopr's buffers by [`tune_system_allocator`].
//!
//! Counting is off unless [`enable`] is called (only `benchmark compression` does, for its
//! allocation columns and `--by-alloc`), so otherwise each allocation costs one relaxed load
//! more than the system allocator's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// [`System`], counting allocations (and reallocations) and the bytes they request while
/// counting is enabled.
pub struct CountingAllocator;

fn record(size: usize) {
    if ENABLED.load(Relaxed) {
        COUNT.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// Starts counting, for the rest of the process.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Allocations and requested bytes counted so far (zero before [`enable`]).
pub fn totals() -> (u64, u64) {
    (COUNT.load(Relaxed), BYTES.load(Relaxed))
}

/// Tunes glibc's malloc for kopr's allocation pattern: buffers of up to a few MiB reused by a
/// few threads, and pack buffers of ~20 MiB allocated and freed over and over.
///
/// By default glibc raises its mmap threshold every time a large block is freed, so after the
/// first pack every pack buffer comes from the heap arenas and stays there, one arena per thread
/// that ever wrote a pack: a 1 GiB backup peaked at 130-185 MiB. With the threshold pinned at
/// 4 MiB, pack buffers are mapped and unmapped (returned on free) while chunk-sized buffers are
/// reused from at most four arenas; the same backup peaks at ~75 MiB at the same speed.
///
/// Pinning the mmap threshold also pins the trim threshold at its 128 KiB default, so every
/// freed buffer of a few MiB at the top of a heap was handed back to the kernel and faulted in
/// again on the next allocation (~78,000 page faults in a cold restore of 512 MiB). Keeping up
/// to 16 MiB free at the top of each heap took the restores' CPU down by 15-20% for a few MiB
/// more resident memory.
pub fn tune_system_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; called once at start, before any
        // other thread exists. A refused setting (return value 0) leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_ARENA_MAX, 4);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        }
    }
}
