//! Write sessions: while a client writes packs it keeps an encrypted `s…` marker blob, so that
//! maintenance does not delete packs whose index has not been written yet.

use chrono::{DateTime, TimeZone, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

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
}
