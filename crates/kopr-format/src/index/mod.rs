//! Content ids and Kopia's binary pack indexes (versions 1 and 2).
//!
//! An index maps content ids to where the content lives (pack blob, offset, lengths) and how it
//! was written (timestamp, deletion, format, compression). Entries are fixed-size records sorted
//! by their key (`prefix byte or 0 ‖ hash`), so a lookup is a binary search over the encoded
//! bytes; [`Index`] never decodes more than the entry it returns.
//!
//! - [`content_id`]: [`ContentId`], its text form and ordering.
//! - [`entry`]: [`IndexEntry`], the merge rule [`pick_winner`] and [`IndexBuilder`].
//! - [`v2`] and [`v1`]: the two byte layouts (see their module docs for tables).
//!
//! Index blobs that Kopia writes end with 32 random bytes so that two indexes with the same
//! entries still get different blob ids; readers ignore them.

pub mod content_id;
pub mod entry;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;

pub use content_id::{ContentId, MAX_HASH_LEN, MAX_KEY_LEN};
pub use entry::{merge_winner, pick_winner, IndexBuilder, IndexEntry};

use crate::error::{FormatError, Result};

/// Random bytes Kopia appends to every index blob it writes.
pub const RANDOM_SUFFIX_LEN: usize = 32;

/// Encodes entries as index v2 exactly as Kopia's builder does before it appends the random
/// suffix: entries are deduplicated by [`pick_winner`] and sorted by id.
pub fn encode_index_v2_stable(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    entries
        .into_iter()
        .collect::<IndexBuilder>()
        .encode_v2_stable()
}

/// Encodes an index v2 blob as Kopia writes it: [`encode_index_v2_stable`] followed by
/// [`RANDOM_SUFFIX_LEN`] random bytes.
pub fn encode_index_v2(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    let mut out = encode_index_v2_stable(entries)?;
    append_random_suffix(&mut out);
    Ok(out)
}

/// Encodes entries as index v1 (no compression, no original lengths), deduplicated and
/// sorted, without the random suffix.
pub fn encode_index_v1_stable(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    entries
        .into_iter()
        .collect::<IndexBuilder>()
        .encode_v1_stable()
}

/// Encodes an index v1 blob: [`encode_index_v1_stable`] followed by the random suffix.
pub fn encode_index_v1(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    let mut out = encode_index_v1_stable(entries)?;
    append_random_suffix(&mut out);
    Ok(out)
}

/// Encodes borrowed entries, in any order, as index `version` (1 or 2) with the random suffix:
/// the bytes [`encode_index_v1`] or [`encode_index_v2`] give for the same entries (deduplicated
/// by [`pick_winner`], sorted by id), without copying an entry.
pub fn encode_index_refs<'a>(
    version: u32,
    entries: impl IntoIterator<Item = &'a IndexEntry>,
) -> Result<Vec<u8>> {
    let unique = entry::sorted_unique(entries.into_iter().collect());
    let mut out = match version {
        1 => v1::encode(&unique)?,
        2 => v2::encode(&unique)?,
        v => {
            return Err(FormatError::InvalidInput(format!(
                "unsupported index format version {v}"
            )))
        }
    };
    append_random_suffix(&mut out);
    Ok(out)
}

/// Appends [`RANDOM_SUFFIX_LEN`] random bytes.
pub fn append_random_suffix(out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + RANDOM_SUFFIX_LEN, 0);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut out[start..]);
}

/// Which layout a parsed index uses.
#[derive(Debug, Clone)]
enum Layout {
    V1(v1::Layout),
    V2(v2::Layout),
}

/// A parsed index, read in place: lookups binary-search the encoded entries.
///
/// Parsing checks the header and the tables (so that the entry section is known to be in
/// bounds); individual entries are checked when they are decoded, and a bad one yields an
/// error rather than a panic.
#[derive(Clone)]
pub struct Index {
    data: Vec<u8>,
    layout: Layout,
    header_size: usize,
    key_size: usize,
    stride: usize,
    count: usize,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("version", &self.version())
            .field("entries", &self.count)
            .field("key_size", &self.key_size)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Index {
    /// Parses index bytes of either version (picked by the first byte). Index v1 does not
    /// store original lengths; they are reported as equal to the packed length (see
    /// [`Index::parse_with_v1_overhead`]).
    pub fn parse(data: Vec<u8>) -> Result<Index> {
        Index::parse_with_v1_overhead(data, 0)
    }

    /// Parses index bytes; for index v1, original lengths are computed as the packed length
    /// minus `v1_per_content_overhead` (the encryption overhead of one content), as Kopia does.
    pub fn parse_with_v1_overhead(data: Vec<u8>, v1_per_content_overhead: u32) -> Result<Index> {
        let version = *data
            .first()
            .ok_or_else(|| malformed("empty index".to_string()))?;
        let (layout, header_size, key_size, entry_size, count) = match version {
            v1::VERSION => {
                let l = v1::Layout::parse(&data, v1_per_content_overhead)?;
                let (k, e, c) = (l.key_size, l.entry_size, l.count);
                (Layout::V1(l), v1::HEADER_SIZE, k, e, c)
            }
            v2::VERSION => {
                let l = v2::Layout::parse(&data)?;
                let (k, e, c) = (l.key_size, l.entry_size, l.count);
                (Layout::V2(l), v2::HEADER_SIZE, k, e, c)
            }
            v => return Err(malformed(format!("unknown index version {v}"))),
        };
        Ok(Index {
            data,
            layout,
            header_size,
            key_size,
            stride: key_size + entry_size,
            count,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Index format version (1 or 2).
    pub fn version(&self) -> u8 {
        match self.layout {
            Layout::V1(_) => v1::VERSION,
            Layout::V2(_) => v2::VERSION,
        }
    }

    /// Key size in bytes (prefix byte plus hash length) of every entry.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// The raw record (key and value) of entry `i`.
    fn record(&self, i: usize) -> Result<&[u8]> {
        section(
            &self.data,
            self.header_size + i * self.stride,
            self.stride,
            "entry",
        )
    }

    fn decode(&self, record: &[u8]) -> Result<IndexEntry> {
        let (key, value) = record.split_at(self.key_size);
        let id = ContentId::from_key(key)?;
        match &self.layout {
            Layout::V1(l) => l.decode(&self.data, id, value),
            Layout::V2(l) => l.decode(id, value),
        }
    }

    /// The entry for `id`, if present. An id whose key length differs from the index's is
    /// simply absent.
    pub fn get(&self, id: &ContentId) -> Result<Option<IndexEntry>> {
        if id.key_len() != self.key_size || self.count == 0 {
            return Ok(None);
        }
        let mut key = [0u8; MAX_KEY_LEN];
        key[0] = id.prefix().unwrap_or(0);
        key[1..id.key_len()].copy_from_slice(id.hash());
        let key = &key[..id.key_len()];
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let record = self.record(mid)?;
            match record[..self.key_size].cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return self.decode(record).map(Some),
            }
        }
        Ok(None)
    }

    /// The entries whose content id has `prefix` (contiguous, since keys start with the
    /// prefix byte), found by binary search: reading manifests does not scan data entries.
    pub fn iter_prefix(&self, prefix: u8) -> impl Iterator<Item = Result<IndexEntry>> + '_ {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.record(mid) {
                Ok(r) if r[0] < prefix => lo = mid + 1,
                _ => hi = mid,
            }
        }
        (lo..self.count).map_while(move |i| match self.record(i) {
            Ok(r) if r[0] == prefix => Some(self.decode(r)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// Every entry, in index order.
    pub fn iter(&self) -> impl Iterator<Item = Result<IndexEntry>> + '_ {
        (0..self.count).map(move |i| self.record(i).and_then(|r| self.decode(r)))
    }
}

/// Shorthand for a malformed-index error.
pub(crate) fn malformed(detail: impl Into<String>) -> FormatError {
    FormatError::malformed("index", detail)
}

/// `data[at..at + len]`, or an error naming `what` if that is out of bounds.
pub(crate) fn section<'a>(data: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    at.checked_add(len)
        .and_then(|end| data.get(at..end))
        .ok_or_else(|| malformed(format!("{what} at {at}+{len} outside {} bytes", data.len())))
}

/// Big-endian u16 from the first 2 bytes (callers pass exact slices).
pub(crate) fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Big-endian u24 from the first 3 bytes.
pub(crate) fn be_u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Big-endian u32 from the first 4 bytes.
pub(crate) fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
