//! Index format version 2: fixed-size sorted entries plus shared pack-name and format tables.
//!
//! All integers are big-endian.
//!
//! | section | size | contents |
//! |---|---|---|
//! | header | 17 | version `2` (u8), key size (u8), entry size (u16, 16..=19), entry count (u32), pack count (u32), format count (u8), base timestamp (u32, written as 0) |
//! | entries | count × (key + entry size) | key = prefix byte (0 if none) ‖ hash; then the value below; sorted by key bytes |
//! | packs | pack count × 5 | name length (u8) ‖ absolute offset of the name (u32) |
//! | formats | format count × 6 | compression header id (u32) ‖ format version (u8) ‖ encryption key id (u8) |
//! | names | … | pack blob ids, each once, in order of first use; empty ids take no space |
//!
//! Entry value: timestamp − base (u32) ‖ pack offset with the deleted flag in bit 31 (u32) ‖
//! original length bits 0..24 (u24) ‖ packed length bits 0..24 (u24) ‖ pack number bits 0..16
//! (u16), then optional bytes present only when some entry of the index needs them:
//! byte 16 format number (when more than one format), byte 17 pack number bits 16..24 (when
//! more than 2^16 packs), byte 18 length bits 24..28 (original in the high nibble, packed in the
//! low nibble; when any length reaches 2^24). Packs and formats are numbered in order of first
//! use by the sorted entries.

use super::content_id::{ContentId, MAX_KEY_LEN};
use super::entry::IndexEntry;
use super::{be_u16, be_u24, be_u32, malformed, section};
use crate::error::{FormatError, Result};
use crate::BlobId;

/// The version byte.
pub const VERSION: u8 = 2;
/// Fixed header size.
pub const HEADER_SIZE: usize = 17;
const PACK_INFO_SIZE: usize = 5;
const FORMAT_INFO_SIZE: usize = 6;
/// Smallest entry value (no optional bytes).
const ENTRY_MIN: usize = 16;
const ENTRY_WITH_FORMAT: usize = 17;
const ENTRY_WITH_LONG_PACK: usize = 18;
/// Largest entry value (all optional bytes).
const ENTRY_MAX: usize = 19;
/// Key plus entry may not exceed this.
const MAX_STRIDE: usize = 256;
/// Most distinct formats one index can hold.
pub const MAX_FORMATS: usize = 255;
/// Most distinct pack blob ids one index can hold.
pub const MAX_PACKS: usize = 1 << 24;
const MAX_SHORT_PACKS: usize = 1 << 16;
/// Content lengths must stay below this.
pub const MAX_CONTENT_LEN: u32 = 1 << 28;
const MAX_SHORT_CONTENT_LEN: u32 = 1 << 24;
/// Pack offsets must stay below this.
pub const MAX_PACK_OFFSET: u32 = 1 << 30;
const DELETED_FLAG: u32 = 0x8000_0000;

/// The per-entry format triple shared through the format table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    compression_header_id: u32,
    format_version: u8,
    encryption_key_id: u8,
}

impl Format {
    fn of(e: &IndexEntry) -> Self {
        Format {
            compression_header_id: e.compression_header_id,
            format_version: e.format_version,
            encryption_key_id: e.encryption_key_id,
        }
    }
}

fn invalid(msg: impl Into<String>) -> FormatError {
    FormatError::InvalidInput(msg.into())
}

/// The pack and format tables of an index being built, numbered by first use, and the largest
/// values the entries hold.
struct Tables<'a> {
    formats: Vec<Format>,
    pack_ids: Vec<&'a str>,
    pack_numbers: rustc_hash::FxHashMap<&'a str, usize>,
    /// Pack numbers by the address of a name's text (names borrowed for `'a` stay put).
    pack_at: rustc_hash::FxHashMap<usize, usize>,
    max_packed: u32,
    max_original: u32,
    max_offset: u32,
}

impl<'a> Tables<'a> {
    fn new() -> Self {
        Tables {
            formats: Vec::new(),
            pack_ids: Vec::new(),
            pack_numbers: Default::default(),
            pack_at: Default::default(),
            max_packed: 0,
            max_original: 0,
            max_offset: 0,
        }
    }

    /// Numbers `e`'s format and pack if they are new (in order of first use: call in id
    /// order), takes its lengths and offset into the maxima, and returns its value with all
    /// optional bytes. Linear scans are fine for the formats (at most 255); a map keeps the
    /// pack numbering cheap.
    fn add(&mut self, e: &'a IndexEntry) -> Result<[u8; ENTRY_MAX]> {
        let f = Format::of(e);
        let format_no = match self.formats.iter().position(|x| *x == f) {
            Some(n) => n,
            None => {
                self.formats.push(f);
                self.formats.len() - 1
            }
        };
        // Entries of one pack usually share its name's allocation: found by address, the
        // name is not read (nor hashed) again.
        let at = e.pack_blob_id.as_ptr() as usize;
        let pack_no = match self.pack_at.get(&at) {
            Some(&n) => n,
            None => {
                let n = match self.pack_numbers.get(e.pack_blob_id.as_str()) {
                    Some(&n) => n,
                    None => {
                        let n = self.pack_ids.len();
                        self.pack_numbers.insert(&e.pack_blob_id, n);
                        self.pack_ids.push(&e.pack_blob_id);
                        n
                    }
                };
                self.pack_at.insert(at, n);
                n
            }
        };
        self.max_packed = self.max_packed.max(e.packed_length);
        self.max_original = self.max_original.max(e.original_length);
        self.max_offset = self.max_offset.max(e.pack_offset);
        let ts = u32::try_from(e.timestamp_seconds).map_err(|_| {
            invalid(format!(
                "timestamp {} of {} does not fit index v2",
                e.timestamp_seconds, e.content_id
            ))
        })?;
        let mut v = [0u8; ENTRY_MAX];
        v[0..4].copy_from_slice(&ts.to_be_bytes());
        let flags = if e.deleted { DELETED_FLAG } else { 0 };
        v[4..8].copy_from_slice(&(e.pack_offset | flags).to_be_bytes());
        v[8..11].copy_from_slice(&e.original_length.to_be_bytes()[1..]);
        v[11..14].copy_from_slice(&e.packed_length.to_be_bytes()[1..]);
        v[14..16].copy_from_slice(&(pack_no as u16).to_be_bytes()); // low 16 bits
        v[16] = format_no as u8;
        v[17] = (pack_no >> 16) as u8;
        v[18] = ((e.original_length >> 24) as u8) << 4 | (e.packed_length >> 24) as u8;
        Ok(v)
    }

    /// Fails, with Kopia's messages, when the index cannot hold the entries.
    fn check(&self) -> Result<()> {
        let (max_packed, max_original) = (self.max_packed, self.max_original);
        if self.formats.len() > MAX_FORMATS {
            return Err(invalid(format!(
                "unsupported - too many unique formats {} (max {MAX_FORMATS})",
                self.formats.len()
            )));
        }
        if self.pack_ids.len() > MAX_PACKS {
            return Err(invalid(format!(
                "unsupported - too many unique pack IDs {} (max {MAX_PACKS})",
                self.pack_ids.len()
            )));
        }
        if max_packed >= MAX_CONTENT_LEN || max_original >= MAX_CONTENT_LEN {
            return Err(invalid(format!(
                "maximum content length is too high: (packed {max_packed}, original {max_original}, max {MAX_CONTENT_LEN})"
            )));
        }
        if self.max_offset >= MAX_PACK_OFFSET {
            return Err(invalid(format!(
                "pack offset {} is too high",
                self.max_offset
            )));
        }
        if let Some(p) = self
            .pack_ids
            .iter()
            .find(|p| p.len() > usize::from(u8::MAX))
        {
            return Err(invalid(format!("pack blob id too long: {p:?}")));
        }
        Ok(())
    }

    /// The entry value size: the optional bytes only when some entry needs them.
    fn entry_size(&self) -> usize {
        let mut entry_size = ENTRY_MIN;
        if self.formats.len() > 1 {
            entry_size = entry_size.max(ENTRY_WITH_FORMAT);
        }
        if self.pack_ids.len() > MAX_SHORT_PACKS {
            entry_size = entry_size.max(ENTRY_WITH_LONG_PACK);
        }
        if self.max_packed >= MAX_SHORT_CONTENT_LEN || self.max_original >= MAX_SHORT_CONTENT_LEN {
            entry_size = ENTRY_MAX;
        }
        entry_size
    }

    /// The pack table, the format table and the names, which start at `names_start`.
    fn write_tables(&self, names_start: usize, out: &mut Vec<u8>) {
        // Names are laid out in pack order; an empty pack id points at the start of the names.
        let mut next_name = names_start;
        for p in &self.pack_ids {
            let at = if p.is_empty() { names_start } else { next_name };
            out.push(p.len() as u8);
            out.extend_from_slice(&(at as u32).to_be_bytes());
            next_name += p.len();
        }
        for f in &self.formats {
            out.extend_from_slice(&f.compression_header_id.to_be_bytes());
            out.push(f.format_version);
            out.push(f.encryption_key_id);
        }
        for p in &self.pack_ids {
            out.extend_from_slice(p.as_bytes());
        }
    }
}

/// Encodes entries already sorted by id and unique, exactly as Kopia's v2 builder does
/// (without the random suffix).
///
/// Each entry is read once: the entries lie wherever their owner keeps them (a writer's hash
/// map), so reading them in id order misses the cache on every one, and that was most of the
/// encoding's cost. The one pass numbers packs and formats and writes every entry at the
/// widest stride; the optional bytes no entry needed are then dropped in place, front to back.
/// A table's limit is reported before any one entry's fault, as when the tables came first.
pub(crate) fn encode(sorted: &[&IndexEntry]) -> Result<Vec<u8>> {
    let key_len = match sorted.first() {
        Some(e) => e.content_id.key_len(),
        None => {
            return Err(invalid(
                "invalid key length: an index needs at least one entry",
            ))
        }
    };
    let entry_count =
        u32::try_from(sorted.len()).map_err(|_| invalid("too many entries for one index"))?;
    let wide = key_len + ENTRY_MAX;
    let mut out = Vec::with_capacity(HEADER_SIZE + sorted.len() * wide);
    out.resize(HEADER_SIZE, 0);
    let mut tables = Tables::new();
    let mut entry_error = None;
    for e in sorted {
        let value = if e.content_id.key_len() != key_len {
            Err(invalid(format!(
                "inconsistent key length: {} vs {key_len}",
                e.content_id.key_len()
            )))
        } else {
            tables.add(e)
        };
        match value {
            Ok(v) => {
                e.content_id.write_key(&mut out);
                out.extend_from_slice(&v);
            }
            Err(err) => {
                entry_error.get_or_insert(err);
                out.resize(out.len() + wide, 0);
            }
        }
    }
    tables.check()?;
    let entry_size = tables.entry_size();
    let stride = key_len + entry_size;
    let (packs, formats) = (tables.pack_ids.len(), tables.formats.len());
    let names_start =
        HEADER_SIZE + sorted.len() * stride + packs * PACK_INFO_SIZE + formats * FORMAT_INFO_SIZE;
    let names_len: usize = tables.pack_ids.iter().map(|p| p.len()).sum();
    if u32::try_from(names_start + names_len).is_err() {
        return Err(invalid("index too large"));
    }
    if let Some(err) = entry_error {
        return Err(err);
    }
    if stride < wide {
        for i in 1..sorted.len() {
            let from = HEADER_SIZE + i * wide;
            out.copy_within(from..from + stride, HEADER_SIZE + i * stride);
        }
        out.truncate(HEADER_SIZE + sorted.len() * stride);
    }
    out.reserve_exact(names_start + names_len - out.len());

    let header = &mut out[..HEADER_SIZE];
    header[0] = VERSION;
    header[1] = key_len as u8; // at most MAX_KEY_LEN
    header[2..4].copy_from_slice(&(entry_size as u16).to_be_bytes());
    header[4..8].copy_from_slice(&entry_count.to_be_bytes());
    header[8..12].copy_from_slice(&(packs as u32).to_be_bytes()); // at most MAX_PACKS
    header[12] = formats as u8; // at most MAX_FORMATS
    header[13..17].copy_from_slice(&0u32.to_be_bytes()); // base timestamp
    tables.write_tables(names_start, &mut out);
    Ok(out)
}

/// Where things are in a parsed v2 index.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) key_size: usize,
    pub(crate) entry_size: usize,
    pub(crate) count: usize,
    base_timestamp: u32,
    /// The pack table's names, made once: the entries of a pack share one [`BlobId`] (no
    /// allocation per decoded entry).
    packs: Vec<BlobId>,
    formats: Vec<Format>,
}

impl Layout {
    /// Checks the header and the tables; the entries section is known to lie inside `data`
    /// afterwards, and every pack name to be in bounds and UTF-8.
    pub(crate) fn parse(data: &[u8]) -> Result<Layout> {
        let h = section(data, 0, HEADER_SIZE, "header")?;
        let key_size = usize::from(h[1]);
        let entry_size = usize::from(be_u16(&h[2..4]));
        let count = be_u32(&h[4..8]) as usize;
        let pack_count = be_u32(&h[8..12]) as usize;
        let format_count = usize::from(h[12]);
        let base_timestamp = be_u32(&h[13..17]);
        if h[0] != VERSION {
            return Err(malformed(format!("not a v2 index (version {})", h[0])));
        }
        if key_size <= 1
            || !(ENTRY_MIN..=ENTRY_MAX).contains(&entry_size)
            || key_size + entry_size > MAX_STRIDE
        {
            return Err(malformed(format!(
                "invalid header: key size {key_size}, entry size {entry_size}"
            )));
        }
        if count > 0 && key_size > MAX_KEY_LEN {
            return Err(malformed(format!("key size {key_size} too large")));
        }
        let entries_len = count
            .checked_mul(key_size + entry_size)
            .ok_or_else(|| malformed("entry count too large"))?;
        let packs_at = HEADER_SIZE + section(data, HEADER_SIZE, entries_len, "entries")?.len();
        let packs_len = pack_count
            .checked_mul(PACK_INFO_SIZE)
            .ok_or_else(|| malformed("pack count too large"))?;
        let pack_table = section(data, packs_at, packs_len, "pack table")?;
        let formats_at = packs_at + packs_len;
        let formats = section(data, formats_at, format_count * FORMAT_INFO_SIZE, "formats")?
            .chunks_exact(FORMAT_INFO_SIZE)
            .map(|f| Format {
                compression_header_id: be_u32(&f[0..4]),
                format_version: f[4],
                encryption_key_id: f[5],
            })
            .collect();
        let packs = pack_table
            .chunks_exact(PACK_INFO_SIZE)
            .map(|p| pack_name(data, p).map(BlobId::from))
            .collect::<Result<Vec<_>>>()?;
        Ok(Layout {
            key_size,
            entry_size,
            count,
            base_timestamp,
            packs,
            formats,
        })
    }

    /// Decodes one entry value for `content_id`.
    pub(crate) fn decode(&self, content_id: ContentId, v: &[u8]) -> Result<IndexEntry> {
        if v.len() < ENTRY_MIN {
            return Err(malformed(format!("entry of {} bytes", v.len())));
        }
        let offset_and_flags = be_u32(&v[4..8]);
        let mut original_length = be_u24(&v[8..11]);
        let mut packed_length = be_u24(&v[11..14]);
        let mut pack_no = usize::from(be_u16(&v[14..16]));
        let format_no = v.get(16).map_or(0, |&b| usize::from(b));
        if let Some(&hi) = v.get(17) {
            pack_no |= usize::from(hi) << 16;
        }
        if let Some(&hi) = v.get(18) {
            original_length |= u32::from(hi >> 4) << 24;
            packed_length |= u32::from(hi & 0x0f) << 24;
        }
        let format = self.formats.get(format_no).ok_or_else(|| {
            malformed(format!(
                "entry {content_id} uses format {format_no} of {}",
                self.formats.len()
            ))
        })?;
        let pack = self.packs.get(pack_no).ok_or_else(|| {
            malformed(format!(
                "entry {content_id} uses pack {pack_no} of {}",
                self.packs.len()
            ))
        })?;
        Ok(IndexEntry {
            content_id,
            pack_blob_id: pack.clone(),
            pack_offset: offset_and_flags & !DELETED_FLAG,
            packed_length,
            original_length,
            timestamp_seconds: i64::from(be_u32(&v[0..4])) + i64::from(self.base_timestamp),
            deleted: offset_and_flags & DELETED_FLAG != 0,
            format_version: format.format_version,
            compression_header_id: format.compression_header_id,
            encryption_key_id: format.encryption_key_id,
        })
    }
}

/// The pack name a 5-byte pack table record points at.
fn pack_name<'a>(data: &'a [u8], info: &[u8]) -> Result<&'a str> {
    let len = usize::from(info[0]);
    let at = be_u32(&info[1..5]) as usize;
    let raw = section(data, at, len, "pack name")?;
    std::str::from_utf8(raw).map_err(|_| malformed("pack name is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, pack: &str) -> IndexEntry {
        IndexEntry {
            content_id: id.parse().unwrap(),
            pack_blob_id: pack.into(),
            pack_offset: 0,
            packed_length: 0,
            original_length: 0,
            timestamp_seconds: 0,
            deleted: false,
            format_version: 0,
            compression_header_id: 0,
            encryption_key_id: 0,
        }
    }

    #[test]
    fn decoded_entries_of_one_pack_share_its_name() {
        let entries = [
            e("aa01", "p1"),
            e("aa02", "p2"),
            e("aa03", "p1"),
            e("aa04", "p1"),
        ];
        let refs: Vec<&IndexEntry> = entries.iter().collect();
        let index = crate::index::Index::parse(encode(&refs).unwrap()).unwrap();
        let got: Vec<IndexEntry> = index.iter().map(|r| r.unwrap()).collect();
        let names: Vec<&str> = got.iter().map(|e| e.pack_blob_id.as_str()).collect();
        assert_eq!(names, ["p1", "p2", "p1", "p1"]);
        // One allocation per pack, not per entry.
        let at = |i: usize| got[i].pack_blob_id.as_str().as_ptr();
        assert_eq!(at(0), at(2));
        assert_eq!(at(0), at(3));
        assert_ne!(at(0), at(1));
    }

    #[test]
    fn limits_match_kopia() {
        // Kopia's TestPackIndexPerContentLimits
        let mut a = e("x1234", "");
        a.packed_length = MAX_CONTENT_LEN;
        let err = encode(&[&a]).unwrap_err().to_string();
        assert!(err.contains("maximum content length is too high"), "{err}");
        a.packed_length = MAX_CONTENT_LEN - 1;
        assert!(encode(&[&a]).is_ok());
        a.original_length = MAX_CONTENT_LEN;
        assert!(encode(&[&a]).is_err());
        a.original_length = MAX_CONTENT_LEN - 1;
        a.pack_offset = MAX_PACK_OFFSET;
        let err = encode(&[&a]).unwrap_err().to_string();
        assert!(err.contains("pack offset 1073741824 is too high"), "{err}");
        a.pack_offset = MAX_PACK_OFFSET - 1;
        assert!(encode(&[&a]).is_ok());
        assert!(encode(&[]).is_err());
    }

    #[test]
    fn other_rejections() {
        let mut a = e("aa", "p");
        a.timestamp_seconds = -1;
        assert!(encode(&[&a]).is_err());
        a.timestamp_seconds = i64::from(u32::MAX) + 1;
        assert!(encode(&[&a]).is_err());
        let b = e("aa", &"p".repeat(256));
        assert!(encode(&[&b]).is_err());
        let (c, d) = (e("aa", "p"), e("aabb", "p"));
        let err = encode(&[&c, &d]).unwrap_err().to_string();
        assert!(err.contains("inconsistent key length"), "{err}");
    }
}
