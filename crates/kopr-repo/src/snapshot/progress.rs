//! The live counters of a snapshot upload: [`ProgressCounters`], updated by the walk and the
//! workers with relaxed atomic adds, and the [`Progress`] view a display polls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Progress callbacks' view of the work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files hashed so far.
    pub hashed_files: u64,
    /// Bytes hashed so far (of finished files and of files being read).
    pub hashed_bytes: u64,
    /// Files reused from the previous snapshot.
    pub cached_files: u64,
    /// Bytes of those.
    pub cached_bytes: u64,
    /// Errors so far.
    pub errors: u64,
    /// Files being read right now.
    pub hashing_files: u64,
    /// Estimated files in the source (0: not known yet).
    pub estimated_files: u64,
    /// Estimated bytes in the source (0: not known yet).
    pub estimated_bytes: u64,
    /// Whether the estimate is the pre-walk's final count rather than a stand-in.
    pub estimate_done: bool,
}

impl Progress {
    /// Files done, hashed or cached.
    pub fn done_files(&self) -> u64 {
        self.hashed_files + self.cached_files
    }

    /// Bytes done, hashed or cached.
    pub fn done_bytes(&self) -> u64 {
        self.hashed_bytes + self.cached_bytes
    }
}

/// The counters behind [`Progress`], updated with relaxed atomic adds (one per buffer of up to
/// 1 MiB read, one per file) so any thread can poll them while the upload runs.
#[derive(Debug, Default)]
pub struct ProgressCounters {
    pub(super) hashed_files: AtomicU64,
    pub(super) hashed_bytes: AtomicU64,
    pub(super) cached_files: AtomicU64,
    pub(super) cached_bytes: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) hashing_files: AtomicU64,
    estimated_files: AtomicU64,
    estimated_bytes: AtomicU64,
    estimate_done: AtomicBool,
}

impl ProgressCounters {
    /// The counters now.
    pub fn get(&self) -> Progress {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Progress {
            hashed_files: l(&self.hashed_files),
            hashed_bytes: l(&self.hashed_bytes),
            cached_files: l(&self.cached_files),
            cached_bytes: l(&self.cached_bytes),
            errors: l(&self.errors),
            hashing_files: l(&self.hashing_files),
            estimated_files: l(&self.estimated_files),
            estimated_bytes: l(&self.estimated_bytes),
            estimate_done: self.estimate_done.load(Ordering::Relaxed),
        }
    }

    pub(super) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn set_estimate(&self, files: u64, bytes: u64, done: bool) {
        self.estimated_files.store(files, Ordering::Relaxed);
        self.estimated_bytes.store(bytes, Ordering::Relaxed);
        self.estimate_done.store(done, Ordering::Relaxed);
    }
}
