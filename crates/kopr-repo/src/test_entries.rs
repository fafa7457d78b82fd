//! Index entries for unit tests that only need where a content lies.

use kopr_format::index::{ContentId, IndexEntry};

/// An uncompressed content of `len` bytes at `offset` of `pack`, its id made from the offset.
pub(crate) fn entry(pack: &str, offset: u32, len: u32) -> IndexEntry {
    IndexEntry {
        content_id: ContentId::new(None, &[offset as u8 + 1; 16]).expect("16-byte id"),
        pack_blob_id: pack.into(),
        pack_offset: offset,
        packed_length: len,
        original_length: len,
        timestamp_seconds: 0,
        deleted: false,
        format_version: 2,
        compression_header_id: 0,
        encryption_key_id: 0,
    }
}
