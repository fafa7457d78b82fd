//! Write sessions: while a client writes packs it keeps an encrypted `s…` marker blob, so that
//! maintenance does not delete packs whose index has not been written yet. This module holds
//! the marker's encoding (JSON, sealed with [`crate::blob_crypto`]); storing and listing the
//! markers is the repository's business.

use chrono::{DateTime, TimeZone, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::blob_crypto::{decrypt_blob, encrypt_blob};
use crate::encryption::Encryptor;
use crate::error::{FormatError, Result};
use crate::hashing::Hasher;

/// Prefix of session marker blobs and of session ids.
pub const SESSION_PREFIX: &str = "s";

/// What a session marker says, with Kopia's JSON names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session id, `s` + 16 hex digits + hex epoch number.
    pub id: String,
    /// When the session started.
    #[serde(rename = "startTime")]
    pub start_time: DateTime<Utc>,
    /// When the marker was written.
    #[serde(rename = "checkpointTime")]
    pub checkpoint_time: DateTime<Utc>,
    /// The writing user.
    #[serde(rename = "username")]
    pub user: String,
    /// The writing host.
    #[serde(rename = "hostname")]
    pub host: String,
}

impl SessionInfo {
    /// The marker's plaintext: JSON with Kopia's field names.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| FormatError::InvalidInput(format!("cannot encode session marker: {e}")))
    }

    /// Parses a decrypted marker.
    pub fn decode(plain: &[u8]) -> Result<SessionInfo> {
        serde_json::from_slice(plain)
            .map_err(|e| FormatError::malformed("session marker", e.to_string()))
    }

    /// Encrypts the marker; returns the blob id to store it under (`s<hash>-<session id>`)
    /// and the blob.
    pub fn seal(&self, hasher: &Hasher, encryptor: &Encryptor) -> Result<(String, Vec<u8>)> {
        encrypt_blob(hasher, encryptor, &self.encode()?, SESSION_PREFIX, &self.id)
    }

    /// Decrypts and parses the marker blob `data` stored under `blob_id`.
    pub fn open(encryptor: &Encryptor, blob_id: &str, data: &[u8]) -> Result<SessionInfo> {
        if session_id_from_blob_id(blob_id).is_none() {
            return Err(FormatError::malformed(
                "session marker",
                format!("blob id {blob_id:?} names no session"),
            ));
        }
        SessionInfo::decode(&decrypt_blob(encryptor, data, blob_id)?)
    }
}

/// A new session id for a session starting at `now`.
pub fn generate_session_id(now: DateTime<Utc>) -> String {
    let mut r = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let base = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let granularity = 30 * 24 * 3600;
    let epoch = ((now - base).num_seconds() / granularity).max(0);
    format!("{SESSION_PREFIX}{}{epoch:x}", hex::encode(r))
}

/// The session id embedded in a blob id such as `p…-s…` (the first `-`-part starting with `s`).
pub fn session_id_from_blob_id(id: &str) -> Option<&str> {
    id.split('-')
        .skip(1)
        .find(|p| p.starts_with(SESSION_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_have_kopias_shape() {
        let t = Utc.with_ymd_and_hms(2024, 11, 2, 0, 0, 0).unwrap();
        let id = generate_session_id(t);
        // 2000-01-01 .. 2024-11-02 is 9072 days = 302 periods of 30 days = 0x12e
        assert!(id.starts_with('s') && id.ends_with("12e"), "{id}");
        assert_eq!(id.len(), 1 + 16 + 3);
        assert_eq!(session_id_from_blob_id("pabc-s0011-c1"), Some("s0011"));
        assert_eq!(session_id_from_blob_id("pabc"), None);
    }

    #[test]
    fn markers_round_trip_and_reject_damage() {
        let h = Hasher::new("BLAKE2B-256-128", &[7u8; 32]).unwrap();
        let e = Encryptor::new("AES256-GCM-HMAC-SHA256", &[9u8; 32]).unwrap();
        let t = Utc.with_ymd_and_hms(2024, 11, 2, 0, 0, 0).unwrap();
        let info = SessionInfo {
            id: generate_session_id(t),
            start_time: t,
            checkpoint_time: t,
            user: "u".into(),
            host: "h".into(),
        };
        let (id, blob) = info.seal(&h, &e).unwrap();
        assert!(
            id.starts_with('s') && id.ends_with(&format!("-{}", info.id)),
            "{id}"
        );
        assert_eq!(SessionInfo::open(&e, &id, &blob).unwrap(), info);
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(SessionInfo::open(&e, &id, &bad).is_err());
        let base = id.split('-').next().unwrap();
        assert!(
            SessionInfo::open(&e, base, &blob).is_err(),
            "no session part"
        );
        assert!(SessionInfo::decode(b"{\"id\":1}").is_err());
        assert!(SessionInfo::decode(b"").is_err());
    }
}
