//! Shared by every fuzz target: an allocator that turns an oversized allocation into a crash.
//!
//! A parser that trusts a length field read from storage could allocate gigabytes for a few
//! bytes of input. libFuzzer's own `-malloc_limit_mb` needs a sanitizer runtime; this does the
//! same on a plain build: any single allocation over [`ALLOC_LIMIT_MB`] aborts, and libFuzzer
//! saves the input as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a parser may make on fuzz input.
pub const ALLOC_LIMIT_MB: usize = 512;

struct Limited;

fn check(size: usize) {
    if size > ALLOC_LIMIT_MB << 20 {
        let _ = std::io::stderr().write_all(b"==kopr-fuzz== allocation over ALLOC_LIMIT_MB\n");
        std::process::abort();
    }
}

// SAFETY: forwards to the system allocator unchanged after the size check.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;
