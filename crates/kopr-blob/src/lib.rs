//! Blob storage: named, immutable byte blobs on a filesystem, in S3, Azure, GCS, WebDAV,
//! rclone or SFTP, in memory, or behind fault injection and retries. Everything above this crate sees storage only through
//! [`BlobStorage`], so a backend is a few methods: get (ranged), put (atomic), delete, list.

pub mod azure;
pub mod clock;
pub mod direct_write;
pub mod fault;
pub mod filesystem;
pub mod gcs;
mod http;
pub mod locking;
pub mod memory;
pub mod rclone;
pub mod readonly;
pub mod retrying;
pub mod s3;
pub mod sftp;
pub mod throttle;
pub mod tls_pin;
pub mod validation;
pub mod webdav;

use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

/// A blob's name, such as `p0123…-s…`, `xn0_…`, `kopia.repository`.
pub type BlobId = String;

/// What a listing says about a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMetadata {
    /// The blob id.
    pub id: BlobId,
    /// Its length in bytes.
    pub length: u64,
    /// When it was written.
    pub timestamp: DateTime<Utc>,
}

/// Storage failures, each a clear one-line message.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The blob does not exist.
    #[error("blob {0} not found")]
    NotFound(BlobId),
    /// A range outside the blob was requested.
    #[error("invalid range {offset}+{length} of blob {id} ({actual} bytes)")]
    InvalidRange {
        /// Blob id.
        id: BlobId,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        length: u64,
        /// Actual blob length.
        actual: u64,
    },
    /// The storage is full.
    #[error("no space left on storage while writing {0}")]
    NoSpace(BlobId),
    /// Access was refused.
    #[error("permission denied: {0}")]
    Permission(String),
    /// A failure that may go away when retried (network, throttling, injected faults).
    #[error("transient storage error: {0}")]
    Transient(String),
    /// Any other I/O failure.
    #[error("{op} {id}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which blob or path.
        id: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The storage was opened read-only (a connection made with `--readonly`).
    #[error(
        "the repository connection is read-only (connected with --readonly): cannot {op} blob {id}"
    )]
    ReadOnly {
        /// What was refused: `write`, `delete`, ...
        op: &'static str,
        /// On which blob.
        id: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl BlobError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Transient(_))
    }

    /// Maps an I/O error on `id` to the clearest variant.
    pub fn from_io(op: &'static str, id: &str, e: std::io::Error) -> BlobError {
        match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound(id.to_string()),
            std::io::ErrorKind::PermissionDenied => {
                BlobError::Permission(format!("{op} {id}: {e}"))
            }
            _ if e.raw_os_error() == Some(libc::ENOSPC) => BlobError::NoSpace(id.to_string()),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => {
                BlobError::Transient(format!("{op} {id}: {e}"))
            }
            _ => BlobError::Io {
                op,
                id: id.to_string(),
                source: e,
            },
        }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// Options of a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Object-lock mode (`GOVERNANCE`/`COMPLIANCE`), where supported.
    pub retention_mode: Option<String>,
    /// Object-lock period, where supported.
    pub retention_period: Option<Duration>,
    /// Fail instead of overwriting an existing blob.
    pub do_not_overwrite: bool,
}

/// A place that stores blobs.
pub trait BlobStorage: Send + Sync + std::fmt::Debug {
    /// Reads `length` bytes at `offset` (to the end when `None`).
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>>;
    /// Reads `out.len()` bytes at `offset` into `out`, failing as
    /// [`get_blob`](Self::get_blob) would with that length. A caller reading many ranges keeps
    /// one buffer for all of them: no allocation, page faults or zeroing per read. Backends that
    /// can read into the buffer directly override it; the default copies.
    fn read_blob_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        let bytes = self.get_blob(id, offset, Some(out.len() as u64))?;
        fill_exactly(&format!("read of {id}"), &bytes, out)
    }
    /// The metadata of one blob.
    fn get_metadata(&self, id: &str) -> Result<BlobMetadata>;
    /// Writes a blob atomically: readers never see part of it.
    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()>;
    /// Deletes a blob; deleting a missing blob succeeds.
    fn delete_blob(&self, id: &str) -> Result<()>;
    /// Calls `cb` for every blob whose id starts with `prefix`.
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()>;
    /// A short human-readable name of the location.
    fn display_name(&self) -> String;

    /// Extends the object-lock retention of a blob to `period` from now (`mode` is
    /// `GOVERNANCE` or `COMPLIANCE`). Storage without object lock refuses.
    fn extend_retention(&self, id: &str, mode: &str, period: Duration) -> Result<()> {
        let _ = (id, mode, period);
        Err(BlobError::Other(format!(
            "{} does not support object-lock retention",
            self.display_name()
        )))
    }

    /// Every blob whose id starts with `prefix`.
    fn list_all(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let mut out = Vec::new();
        self.list_blobs(prefix, &mut |m| {
            out.push(m);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Copies the bytes of a read (`what`, for the error) into `out`, which they must fill
/// exactly; fewer or more bytes are a transient error (a connection cut short).
pub(crate) fn fill_exactly(what: &str, bytes: &[u8], out: &mut [u8]) -> Result<()> {
    if bytes.len() != out.len() {
        return Err(BlobError::Transient(format!(
            "{what}: got {} of {} bytes",
            bytes.len(),
            out.len()
        )));
    }
    out.copy_from_slice(bytes);
    Ok(())
}

/// Checks a requested range against a blob length and returns the byte range.
pub fn checked_range(
    id: &str,
    actual: u64,
    offset: u64,
    length: Option<u64>,
) -> Result<std::ops::Range<usize>> {
    let len = length.unwrap_or(actual.saturating_sub(offset));
    match offset.checked_add(len) {
        Some(end) if end <= actual => Ok(offset as usize..end as usize),
        _ => Err(BlobError::InvalidRange {
            id: id.to_string(),
            offset,
            length: len,
            actual,
        }),
    }
}

#[cfg(test)]
pub(crate) mod conformance;
