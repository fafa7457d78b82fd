//! Blob ids: the names of blobs in a repository's storage, as an immutable, cheaply cloned
//! string ([`BlobId`]), and what a name says about its blob.
//!
//! The first letters of a blob id say what the blob holds: `p` packs of file data and `q` packs
//! of metadata contents, `x` epoch indexes and markers, `n` legacy indexes, `s` session markers,
//! `_log` logs, `kopia.` the repository's own configuration blobs. Index entries name their
//! pack by blob id, and maintenance holds millions of them, so cloning one copies a pointer.
//! The storage layer (`kopr-blob`) names blobs with plain `&str`; a `BlobId` derefs to one.

use crate::index::content_id::{PACK_PREFIX_DATA, PACK_PREFIX_METADATA};
use crate::string_id::string_id;

string_id!(
    /// The name of one blob in a repository's storage.
    BlobId(std::sync::Arc<str>)
);

impl BlobId {
    /// Whether the blob is a pack (`p` or `q`).
    pub fn is_pack(&self) -> bool {
        self.is_data_pack() || self.is_metadata_pack()
    }

    /// Whether the blob is a pack of file data (`p`).
    pub fn is_data_pack(&self) -> bool {
        self.starts_with(PACK_PREFIX_DATA)
    }

    /// Whether the blob is a pack of metadata contents (`q`).
    pub fn is_metadata_pack(&self) -> bool {
        self.starts_with(PACK_PREFIX_METADATA)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::BlobId;

    #[test]
    fn looks_up_by_str_prints_and_serializes_as_its_text() {
        let id = BlobId::from("p0123abcd-s1-c1");
        let copy = id.clone();
        assert!(
            std::ptr::eq(id.as_str(), copy.as_str()),
            "a clone shares the text"
        );
        let mut m = HashMap::new();
        m.insert(id.clone(), 7);
        assert_eq!(m.get("p0123abcd-s1-c1"), Some(&7));
        assert_eq!(id.to_string(), "p0123abcd-s1-c1");
        assert_eq!(format!("{id:?}"), "\"p0123abcd-s1-c1\"");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"p0123abcd-s1-c1\"");
        let back: BlobId = serde_json::from_str("\"q99\"").unwrap();
        assert_eq!(back, "q99");
        let (a, b) = (BlobId::from("a"), BlobId::from("b"));
        assert!(a < b, "ordered as text");
    }

    #[test]
    fn says_what_a_blob_is() {
        assert!(BlobId::from("p12").is_data_pack());
        assert!(BlobId::from("q12").is_metadata_pack());
        assert!(BlobId::from("q12").is_pack() && BlobId::from("p12").is_pack());
        for other in ["xn0_abc", "n12", "_log_1", "kopia.repository", "s12"] {
            assert!(!BlobId::from(other).is_pack(), "{other}");
        }
    }
}
