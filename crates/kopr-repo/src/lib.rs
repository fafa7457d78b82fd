//! The kopr repository layer, over blob storage and Kopia's format.
//!
//! Concepts stack as in Kopia: [`format_manager`] opens `kopia.repository` with the password;
//! [`content`] stores deduplicated, compressed, encrypted contents in pack blobs, found through
//! index blobs that the [`epoch`] manager organizes (or, in repositories without it, the
//! [`legacy_index`] manager); [`repository`] ties them together.

pub mod committed_index;
pub mod content;
pub mod epoch;
pub mod error;
pub mod format_manager;
pub mod ignore;
pub mod index_cache;
pub mod legacy_index;
pub mod maintenance;
pub mod manifest;
pub mod object;
pub mod policy;
pub mod repository;
pub mod session;
pub mod snapshot;
pub mod verify;

pub use error::{RepoError, Result};
pub use repository::{OpenOptions, Repository};
