//! The repository layer's error type.

use kopr_blob::BlobError;
use kopr_format::FormatError;
use thiserror::Error;

/// Everything that can go wrong in the repository layer.
#[derive(Debug, Error)]
pub enum RepoError {
    /// The storage failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Encoded data could not be decoded, or encoding failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The password does not open the repository.
    #[error("invalid repository password")]
    InvalidPassword,
    /// There is no `kopia.repository` blob at the location.
    #[error("repository not initialized in the provided storage ({0})")]
    NotInitialized(String),
    /// `create` was asked for a location that already holds a repository.
    #[error("repository already initialized in the provided storage ({0})")]
    AlreadyInitialized(String),
    /// A content id that no index knows.
    #[error("content {0} not found")]
    ContentNotFound(String),
    /// A content whose bytes fail authentication or decoding.
    #[error("content {id} is corrupt: {detail}")]
    CorruptContent {
        /// The content id.
        id: String,
        /// What was found.
        detail: String,
    },
    /// Maintenance was asked of a user who does not own it.
    #[error("maintenance must be run by designated user: {0}")]
    NotMaintenanceOwner(String),
    /// Maintenance stopped on purpose (tests simulate a crash between tasks).
    #[error("maintenance aborted before task {0}")]
    MaintenanceAborted(String),
    /// The work was stopped on request (a snapshot canceled by the user, a walk its visitor
    /// ended).
    #[error("canceled")]
    Canceled,
    /// A worker thread failed (panicked) or left no result.
    #[error("{0}")]
    Worker(String),
    /// Reading or writing a local file (a snapshot's source, a restore's target) failed.
    #[error("{}: {source}", path.display())]
    Local {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A setting names something kopr does not know (a compression algorithm, a parameter).
    #[error("{0}")]
    Config(String),
    /// Something the caller named (a manifest, a path below a snapshot) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation is refused in the present state of the repository or of a local target
    /// (a file in the way, a safety rule, a repository kopr cannot change safely).
    #[error("{0}")]
    Refused(String),
    /// Something stored in the repository does not follow the format.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for the repository layer.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
