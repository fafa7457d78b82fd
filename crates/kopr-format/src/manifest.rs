//! Manifest contents (`m` prefix): a gzip-compressed JSON batch of labelled entries —
//! `{"entries":[{"id":…,"labels":{…},"modified":…,"deleted":true?,"data":{…}}]}`.
//! Snapshots and policies are manifests; an entry with a newer `modified` replaces an older
//! one with the same id, and a `deleted` entry removes it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{FormatError, Result};
use crate::string_id::string_id;

/// Content id prefix of manifest contents.
pub const MANIFEST_CONTENT_PREFIX: u8 = b'm';
/// Random bytes in a manifest id (hex-encoded).
pub const MANIFEST_ID_LEN: usize = 16;

string_id!(
    /// A manifest's id: hex of [`MANIFEST_ID_LEN`] random bytes when kopr or Kopia made it,
    /// taken as given when read.
    ManifestId(std::sync::Arc<str>)
);

/// One manifest entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Hex id.
    pub id: ManifestId,
    /// Labels (sorted, as Go marshals maps); Kopia's deletion records have `"labels":null`.
    #[serde(default, deserialize_with = "crate::snapshot::null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// When written.
    #[serde(with = "crate::gotime")]
    pub modified: DateTime<Utc>,
    /// A deletion marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The payload, kept byte for byte.
    pub data: Box<RawValue>,
}

impl PartialEq for ManifestEntry {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.labels == o.labels
            && self.modified == o.modified
            && self.deleted == o.deleted
            && self.data.get() == o.data.get()
    }
}

#[derive(Serialize, Deserialize)]
struct Batch {
    entries: Vec<ManifestEntry>,
}

/// A new random manifest id.
pub fn new_manifest_id() -> ManifestId {
    let mut b = [0u8; MANIFEST_ID_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b).into()
}

/// Encodes entries as a manifest content (gzip of the JSON batch plus newline).
pub fn encode_batch(entries: &[ManifestEntry]) -> Result<Vec<u8>> {
    let mut json = serde_json::to_vec(&Batch {
        entries: entries.to_vec(),
    })
    .map_err(|e| FormatError::InvalidInput(e.to_string()))?;
    json.push(b'\n');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)
        .map_err(|e| FormatError::InvalidInput(e.to_string()))?;
    gz.finish()
        .map_err(|e| FormatError::InvalidInput(e.to_string()))
}

/// Decodes a manifest content (at most 256 MiB of JSON).
pub fn decode_batch(data: &[u8]) -> Result<Vec<ManifestEntry>> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(256 << 20)
        .read_to_end(&mut json)
        .map_err(|e| FormatError::malformed("manifest", format!("gzip: {e}")))?;
    let b: Batch = serde_json::from_slice(&json)
        .map_err(|e| FormatError::malformed("manifest", e.to_string()))?;
    Ok(b.entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn batch_round_trip_keeps_data_bytes() {
        let e = ManifestEntry {
            id: new_manifest_id(),
            labels: [
                ("type".to_string(), "snapshot".to_string()),
                ("hostname".into(), "h".into()),
            ]
            .into(),
            modified: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            deleted: false,
            data: RawValue::from_string("{\"z\":1,\"a\":[2]}".into()).unwrap(),
        };
        let enc = encode_batch(std::slice::from_ref(&e)).unwrap();
        let mut json = String::new();
        flate2::read::GzDecoder::new(&enc[..])
            .read_to_string(&mut json)
            .unwrap();
        assert_eq!(
            json,
            format!("{{\"entries\":[{{\"id\":\"{}\",\"labels\":{{\"hostname\":\"h\",\"type\":\"snapshot\"}},\"modified\":\"2026-01-02T03:04:05Z\",\"data\":{{\"z\":1,\"a\":[2]}}}}]}}\n", e.id)
        );
        assert_eq!(decode_batch(&enc).unwrap(), vec![e]);
        assert!(decode_batch(b"not gzip").is_err());

        // Kopia's deletion record (`kopia snapshot delete --delete`): labels and data null.
        let tomb = "{\"entries\":[{\"id\":\"2148f6446baad584987ee514760809ba\",\"labels\":null,\"modified\":\"2026-11-30T03:52:11.5Z\",\"deleted\":true,\"data\":null}]}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(tomb.as_bytes()).unwrap();
        let d = decode_batch(&gz.finish().unwrap()).unwrap();
        assert_eq!(d.len(), 1);
        assert!(d[0].deleted && d[0].labels.is_empty());
        assert_eq!(d[0].data.get(), "null");
        assert_eq!(new_manifest_id().len(), 32);
    }
}
