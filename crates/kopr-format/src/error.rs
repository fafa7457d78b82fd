//! The one error type of the format crate.

use thiserror::Error;

/// Everything that can go wrong while encoding or decoding Kopia's formats.
#[derive(Debug, Error)]
pub enum FormatError {
    /// An algorithm name that this build does not know.
    #[error("unsupported {kind} algorithm: {name:?}")]
    UnsupportedAlgorithm { kind: &'static str, name: String },
    /// Authenticated decryption failed: wrong key, or the data was altered.
    #[error("decryption failed: {0}")]
    Decrypt(String),
    /// Data read from storage does not follow the format.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// Arguments that cannot be encoded (too large, out of range).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A password-based key could not be derived.
    #[error("key derivation failed: {0}")]
    KeyDerivation(String),
}

impl FormatError {
    /// Shorthand for [`FormatError::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias for the format crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
