//! The kopr repository layer, over blob storage and Kopia's format.
//!
//! Concepts stack as in Kopia: [`format_manager`] opens `kopia.repository` with the password;
//! [`content`] stores deduplicated, compressed, encrypted contents in pack blobs, found through
//! index blobs that the [`epoch`] manager organizes (or, in repositories without it, the
//! [`legacy_index`] manager); [`repository`] ties them together.

#![warn(unreachable_pub)]

mod cache_file;
pub(crate) mod committed_index;
pub mod content;
pub mod content_cache;
pub mod content_stats;
pub mod epoch;
pub mod error;
pub mod format_blob_cache;
pub mod format_manager;
pub mod format_params;
pub mod ignore;
pub mod index_cache;
pub mod legacy_index;
pub mod maintenance;
pub mod manifest;
pub mod object;
mod parallel;
pub mod policy;
pub mod repo_log;
pub mod repository;
pub(crate) mod session;
pub mod snapshot;
#[cfg(test)]
mod test_entries;
pub mod verify;

pub use error::{RepoError, Result};

/// The number of threads worth running at once, asked of the system once per process: the
/// answer reads the cgroup CPU quota files, far too slow to ask per file.
pub fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
pub use repository::{OpenOptions, Repository};
