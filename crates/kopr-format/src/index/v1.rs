//! Index format version 1: sorted fixed-size entries, each pointing at its pack name directly.
//!
//! All integers are big-endian.
//!
//! | section | size | contents |
//! |---|---|---|
//! | header | 8 | version `1` (u8), key size (u8; 0xff when empty), entry size (u16, always 20), entry count (u32) |
//! | entries | count × (key + 20) | key = prefix byte (0 if none) ‖ hash; then the value below |
//! | names | … | pack blob ids, each once, in order of first use |
//!
//! Entry value (20 bytes): timestamp (u48) ‖ format version (u8) ‖ pack name length (u8) ‖
//! absolute offset of the pack name (u32) ‖ pack offset with the deleted flag in bit 31 (u32) ‖
//! packed length (u32). There is no compression and no original length: readers derive it as
//! the packed length minus the encryption overhead of one content.

use super::content_id::{ContentId, MAX_KEY_LEN};
use super::entry::IndexEntry;
use super::{be_u16, be_u32, malformed, section};
use crate::error::{FormatError, Result};

/// The version byte.
pub const VERSION: u8 = 1;
/// Fixed header size.
pub const HEADER_SIZE: usize = 8;
/// Size of every entry value.
const ENTRY_SIZE: usize = 20;
/// Key size written for an index without entries.
const UNKNOWN_KEY_SIZE: u8 = 0xff;
const DELETED_FLAG: u32 = 0x8000_0000;
const MAX_TIMESTAMP: i64 = (1 << 48) - 1;

fn invalid(msg: impl Into<String>) -> FormatError {
    FormatError::InvalidInput(msg.into())
}

/// Encodes entries already sorted by id and unique, exactly as Kopia's v1 builder does
/// (without the random suffix). An empty list gives a header-only index.
pub(crate) fn encode(sorted: &[&IndexEntry]) -> Result<Vec<u8>> {
    let key_len = sorted.first().map(|e| e.content_id.key_len());
    let stride = key_len.unwrap_or(0) + ENTRY_SIZE;
    let names_start = HEADER_SIZE + sorted.len() * stride;
    let mut name_offsets: std::collections::HashMap<&str, usize> = Default::default();
    let mut names: Vec<u8> = Vec::new();
    for e in sorted {
        if e.pack_blob_id.is_empty() {
            return Err(invalid(format!(
                "empty pack content ID for {}",
                e.content_id
            )));
        }
        if e.pack_blob_id.len() > usize::from(u8::MAX) {
            return Err(invalid(format!(
                "pack blob id too long: {:?}",
                e.pack_blob_id
            )));
        }
        if !name_offsets.contains_key(e.pack_blob_id.as_str()) {
            name_offsets.insert(&e.pack_blob_id, names_start + names.len());
            names.extend_from_slice(e.pack_blob_id.as_bytes());
        }
    }
    let entry_count =
        u32::try_from(sorted.len()).map_err(|_| invalid("too many entries for one index"))?;
    if u32::try_from(names_start + names.len()).is_err() {
        return Err(invalid("index too large"));
    }

    let mut out = Vec::with_capacity(names_start + names.len());
    out.push(VERSION);
    out.push(key_len.map_or(UNKNOWN_KEY_SIZE, |k| k as u8)); // at most MAX_KEY_LEN
    out.extend_from_slice(&(ENTRY_SIZE as u16).to_be_bytes());
    out.extend_from_slice(&entry_count.to_be_bytes());
    for e in sorted {
        let id = &e.content_id;
        if Some(id.key_len()) != key_len {
            return Err(invalid(format!(
                "inconsistent key length: {} vs {}",
                id.key_len(),
                key_len.unwrap_or_default()
            )));
        }
        if e.compression_header_id != 0 {
            return Err(invalid("compression not supported in index v1"));
        }
        if e.encryption_key_id != 0 {
            return Err(invalid("encryption key ID not supported in index v1"));
        }
        if !(0..=MAX_TIMESTAMP).contains(&e.timestamp_seconds) {
            return Err(invalid(format!(
                "timestamp {} of {id} does not fit index v1",
                e.timestamp_seconds
            )));
        }
        if e.pack_offset & DELETED_FLAG != 0 {
            return Err(invalid(format!(
                "pack offset {} is too high",
                e.pack_offset
            )));
        }
        let name_at = name_offsets
            .get(e.pack_blob_id.as_str())
            .copied()
            .unwrap_or_default();
        id.write_key(&mut out);
        out.extend_from_slice(&e.timestamp_seconds.to_be_bytes()[2..]);
        out.push(e.format_version);
        out.push(e.pack_blob_id.len() as u8);
        out.extend_from_slice(&(name_at as u32).to_be_bytes());
        let flags = if e.deleted { DELETED_FLAG } else { 0 };
        out.extend_from_slice(&(e.pack_offset | flags).to_be_bytes());
        out.extend_from_slice(&e.packed_length.to_be_bytes());
    }
    out.extend_from_slice(&names);
    Ok(out)
}

/// Where things are in a parsed v1 index.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) key_size: usize,
    pub(crate) entry_size: usize,
    pub(crate) count: usize,
    /// Subtracted from the packed length to give the original length.
    per_content_overhead: u32,
}

impl Layout {
    /// Checks the header; the entries section is known to lie inside `data` afterwards.
    pub(crate) fn parse(data: &[u8], per_content_overhead: u32) -> Result<Layout> {
        let h = section(data, 0, HEADER_SIZE, "header")?;
        let key_size = usize::from(h[1]);
        let entry_size = usize::from(be_u16(&h[2..4]));
        let count = be_u32(&h[4..8]) as usize;
        if h[0] != VERSION {
            return Err(malformed(format!("not a v1 index (version {})", h[0])));
        }
        if key_size <= 1 {
            return Err(malformed(format!("invalid header: key size {key_size}")));
        }
        if count > 0 && (key_size > MAX_KEY_LEN || entry_size != ENTRY_SIZE) {
            return Err(malformed(format!(
                "invalid header: key size {key_size}, entry size {entry_size}"
            )));
        }
        let entries_len = count
            .checked_mul(key_size + entry_size)
            .ok_or_else(|| malformed("entry count too large"))?;
        section(data, HEADER_SIZE, entries_len, "entries")?;
        Ok(Layout {
            key_size,
            entry_size,
            count,
            per_content_overhead,
        })
    }

    /// Decodes one entry value for `content_id`.
    pub(crate) fn decode(
        &self,
        data: &[u8],
        content_id: ContentId,
        v: &[u8],
    ) -> Result<IndexEntry> {
        if v.len() != ENTRY_SIZE {
            return Err(malformed(format!("entry of {} bytes", v.len())));
        }
        let mut ts = [0u8; 8];
        ts[2..].copy_from_slice(&v[0..6]);
        let name_len = usize::from(v[7]);
        let name_at = be_u32(&v[8..12]) as usize;
        let name = section(data, name_at, name_len, "pack name")?;
        let name = std::str::from_utf8(name).map_err(|_| malformed("pack name is not UTF-8"))?;
        let offset_and_flags = be_u32(&v[12..16]);
        let packed_length = be_u32(&v[16..20]);
        Ok(IndexEntry {
            content_id,
            pack_blob_id: name.into(),
            pack_offset: offset_and_flags & !DELETED_FLAG,
            packed_length,
            original_length: packed_length.wrapping_sub(self.per_content_overhead),
            timestamp_seconds: i64::from_be_bytes(ts),
            deleted: offset_and_flags & DELETED_FLAG != 0,
            format_version: v[6],
            compression_header_id: 0,
            encryption_key_id: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_index_is_header_only() {
        assert_eq!(encode(&[]).unwrap(), [1, 0xff, 0, 20, 0, 0, 0, 0]);
    }

    #[test]
    fn rejects_what_v1_cannot_hold() {
        let ok = IndexEntry {
            content_id: "aa".parse().unwrap(),
            pack_blob_id: "p1".into(),
            pack_offset: 0,
            packed_length: 0,
            original_length: 0,
            timestamp_seconds: 0,
            deleted: false,
            format_version: 1,
            compression_header_id: 0,
            encryption_key_id: 0,
        };
        assert!(encode(&[&ok]).is_ok());
        for bad in [
            IndexEntry {
                compression_header_id: 0x1100,
                ..ok.clone()
            },
            IndexEntry {
                encryption_key_id: 1,
                ..ok.clone()
            },
            IndexEntry {
                pack_blob_id: Default::default(),
                ..ok.clone()
            },
            IndexEntry {
                timestamp_seconds: -1,
                ..ok.clone()
            },
            IndexEntry {
                timestamp_seconds: 1 << 48,
                ..ok.clone()
            },
            IndexEntry {
                pack_offset: 1 << 31,
                ..ok.clone()
            },
        ] {
            assert!(encode(&[&bad]).is_err(), "{bad:?}");
        }
    }
}
