//! Kopia's on-disk format, as pure encoding and decoding: no I/O happens here.
//!
//! Every layout, constant and algorithm name in this crate is byte-compatible with
//! Kopia's repository format (see `docs/format.md` in the repository root).

pub mod blob_crypto;
pub mod blob_id;
pub mod compression;
pub mod crypto;
pub mod ecc;
pub mod encryption;
pub mod error;
pub mod gotime;
pub mod hashing;
pub mod hostile;
pub mod index;
pub mod labels;
pub mod maintenance;
pub mod maintenance_stats;
pub mod manifest;
pub mod object_id;
pub mod pack;
pub mod policy;
pub mod policy_fields;
pub mod repository_blob;
pub mod session;
pub mod snapshot;
pub mod splitter;
mod string_id;
pub mod units;
pub use blob_id::BlobId;
pub use error::{FormatError, Result};
