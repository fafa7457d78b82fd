//! Content ids and Kopia's binary pack index (version 2).
//!
//! A content id is an optional one-letter prefix (`g`..`z`, marking metadata contents such as
//! directories `k` or manifests `m`) followed by the content hash; its text form is the letter
//! and the hash in hex. In an index the key is `[prefix byte or 0][hash]`, and entries are
//! sorted by key bytes.
//!
//! Index v2 layout (big-endian):
//! - header (17 bytes): version `2`, key size, entry size (u16), entry count (u32),
//!   pack count (u32), format count (u8), base timestamp (u32, written as 0);
//! - entries: `key ‖ value`, value = timestamp (u32) ‖ pack offset with deleted flag in the top
//!   bit (u32) ‖ original length (u24) ‖ packed length (u24) ‖ pack index (u16)
//!   [‖ format index (u8) [‖ pack index high byte [‖ high length nibbles]]] — the optional
//!   tail bytes are present only when some entry needs them;
//! - pack table: `len (u8) ‖ offset (u32)` into the trailing names area;
//! - format table: compression header id (u32) ‖ format version ‖ encryption key id;
//! - pack blob ids; then (in index blobs) 32 random bytes that make every blob unique.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{FormatError, Result};

/// Longest hash a content id holds.
pub const MAX_HASH_LEN: usize = 32;

/// A content id: optional prefix letter and hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId {
    prefix: u8,
    len: u8,
    hash: [u8; MAX_HASH_LEN],
}

impl ContentId {
    /// Builds an id; the prefix must be `g`..=`z`, the hash 1..=32 bytes.
    pub fn new(prefix: Option<u8>, hash: &[u8]) -> Result<Self> {
        if hash.is_empty() || hash.len() > MAX_HASH_LEN {
            return Err(FormatError::InvalidInput(format!(
                "invalid hash length {}",
                hash.len()
            )));
        }
        if let Some(p) = prefix {
            if !(b'g'..=b'z').contains(&p) {
                return Err(FormatError::InvalidInput(
                    "invalid prefix, must be empty or a single letter between 'g' and 'z'".into(),
                ));
            }
        }
        let mut h = [0u8; MAX_HASH_LEN];
        h[..hash.len()].copy_from_slice(hash);
        Ok(ContentId {
            prefix: prefix.unwrap_or(0),
            len: hash.len() as u8,
            hash: h,
        })
    }

    /// The prefix letter, if any.
    pub fn prefix(&self) -> Option<u8> {
        (self.prefix != 0).then_some(self.prefix)
    }

    /// The hash bytes.
    pub fn hash(&self) -> &[u8] {
        &self.hash[..self.len as usize]
    }

    /// The index key: prefix byte (0 when none) followed by the hash.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + self.len as usize);
        k.push(self.prefix);
        k.extend_from_slice(self.hash());
        k
    }

    fn from_key(k: &[u8]) -> Result<Self> {
        let (&p, h) = k
            .split_first()
            .ok_or_else(|| FormatError::malformed("index", "empty key"))?;
        ContentId::new((p != 0).then_some(p), h)
            .map_err(|e| FormatError::malformed("index", e.to_string()))
    }
}

impl Ord for ContentId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.prefix, self.hash()).cmp(&(other.prefix, other.hash()))
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix != 0 {
            write!(f, "{}", self.prefix as char)?;
        }
        for b in self.hash() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = FormatError;

    /// Kopia's parsing: an odd length means a prefix letter, the rest is hex.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |d: &str| FormatError::InvalidInput(format!("invalid content ID {s:?}: {d}"));
        let (prefix, hexpart) = if s.len() % 2 == 1 {
            let p = s.as_bytes()[0];
            if !(b'g'..=b'z').contains(&p) {
                return Err(bad("invalid content prefix"));
            }
            (Some(p), &s[1..])
        } else {
            (None, s)
        };
        if hexpart.len() > 2 * MAX_HASH_LEN {
            return Err(bad("hash too long"));
        }
        if hexpart.is_empty() {
            return Err(bad("id too short"));
        }
        let hash = hex::decode(hexpart).map_err(|_| bad("invalid content hash"))?;
        ContentId::new(prefix, &hash)
    }
}

/// What the index says about one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The content.
    pub content_id: ContentId,
    /// Pack blob holding it.
    pub pack_blob_id: String,
    /// Offset in the pack.
    pub pack_offset: u32,
    /// Bytes in the pack (compressed and encrypted).
    pub packed_length: u32,
    /// Bytes before compression.
    pub original_length: u32,
    /// When it was written (unix seconds).
    pub timestamp_seconds: i64,
    /// Marked deleted.
    pub deleted: bool,
    /// Repository format version when written.
    pub format_version: u8,
    /// Compression header id, 0 for none.
    pub compression_header_id: u32,
    /// Encryption key id (always 0 today).
    pub encryption_key_id: u8,
}

/// Kopia's rule for two entries of one content: whether `a` wins over `b`
/// (newer timestamp; then live over deleted; then the greater pack blob id).
pub fn pick_winner(a: &IndexEntry, b: &IndexEntry) -> bool {
    if a.timestamp_seconds != b.timestamp_seconds {
        return a.timestamp_seconds > b.timestamp_seconds;
    }
    if a.deleted != b.deleted {
        return !a.deleted;
    }
    a.pack_blob_id > b.pack_blob_id
}

const HEADER_SIZE: usize = 17;
const PACK_INFO_SIZE: usize = 5;
const FORMAT_INFO_SIZE: usize = 6;
const ENTRY_MIN: usize = 16;
const ENTRY_MAX: usize = 19;
const MAX_CONTENT_LEN: u32 = 1 << 28;
const SHORT_CONTENT_LEN: u32 = 1 << 24;
const MAX_PACK_OFFSET: u32 = 1 << 30;
const DELETED: u32 = 0x8000_0000;
/// Random bytes appended to index blobs.
pub const RANDOM_SUFFIX_LEN: usize = 32;

type FormatKey = (u32, u8, u8);

/// Encodes entries as an index v2 exactly as Kopia's builder does (sorted, one entry per
/// content with Kopia's winner rule), without the random suffix.
pub fn encode_index_v2_stable(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    let mut by_id: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
    for e in entries {
        match by_id.get(&e.content_id) {
            Some(old) if !pick_winner(&e, old) => {}
            _ => {
                by_id.insert(e.content_id, e);
            }
        }
    }
    let sorted: Vec<&IndexEntry> = by_id.values().collect();
    let Some(first) = sorted.first() else {
        return Err(FormatError::InvalidInput(
            "cannot build an empty index".into(),
        ));
    };
    let key_len = 1 + first.content_id.hash().len();
    let mut formats: Vec<FormatKey> = Vec::new();
    let mut packs: Vec<&str> = Vec::new();
    let mut pack_index: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut max_len, mut max_off) = (0u32, 0u32);
    for e in &sorted {
        if 1 + e.content_id.hash().len() != key_len {
            return Err(FormatError::InvalidInput(
                "content ids of different lengths in one index".into(),
            ));
        }
        let f = (
            e.compression_header_id,
            e.format_version,
            e.encryption_key_id,
        );
        if !formats.contains(&f) {
            formats.push(f);
        }
        if !pack_index.contains_key(e.pack_blob_id.as_str()) {
            pack_index.insert(&e.pack_blob_id, packs.len());
            packs.push(&e.pack_blob_id);
        }
        max_len = max_len.max(e.packed_length).max(e.original_length);
        max_off = max_off.max(e.pack_offset);
    }
    if formats.len() > 255 || packs.len() > 1 << 24 {
        return Err(FormatError::InvalidInput(
            "too many formats or packs in one index".into(),
        ));
    }
    if max_len >= MAX_CONTENT_LEN || max_off >= MAX_PACK_OFFSET {
        return Err(FormatError::InvalidInput(
            "content length or pack offset too large".into(),
        ));
    }
    let mut entry_size = ENTRY_MIN;
    if formats.len() > 1 {
        entry_size = entry_size.max(17);
    }
    if packs.len() > 1 << 16 {
        entry_size = entry_size.max(18);
    }
    if max_len >= SHORT_CONTENT_LEN {
        entry_size = entry_size.max(19);
    }
    let names_offset = HEADER_SIZE
        + sorted.len() * (key_len + entry_size)
        + packs.len() * PACK_INFO_SIZE
        + formats.len() * FORMAT_INFO_SIZE;
    let names_len: usize = packs.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(names_offset + names_len + RANDOM_SUFFIX_LEN);
    out.push(2);
    out.push(key_len as u8);
    out.extend_from_slice(&(entry_size as u16).to_be_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
    out.extend_from_slice(&(packs.len() as u32).to_be_bytes());
    out.push(formats.len() as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    for e in &sorted {
        out.push(e.content_id.prefix);
        out.extend_from_slice(e.content_id.hash());
        let mut v = [0u8; ENTRY_MAX];
        v[0..4].copy_from_slice(&(e.timestamp_seconds as u32).to_be_bytes());
        let off = e.pack_offset | if e.deleted { DELETED } else { 0 };
        v[4..8].copy_from_slice(&off.to_be_bytes());
        v[8..11].copy_from_slice(&e.original_length.to_be_bytes()[1..]);
        v[11..14].copy_from_slice(&e.packed_length.to_be_bytes()[1..]);
        let pi = pack_index[e.pack_blob_id.as_str()];
        v[14..16].copy_from_slice(&(pi as u16).to_be_bytes());
        let f = (
            e.compression_header_id,
            e.format_version,
            e.encryption_key_id,
        );
        v[16] = formats.iter().position(|x| *x == f).unwrap_or(0) as u8;
        v[17] = (pi >> 16) as u8;
        v[18] = ((e.packed_length >> 24) as u8) | (((e.original_length >> 24) as u8) << 4);
        out.extend_from_slice(&v[..entry_size]);
    }
    let mut name_off = names_offset;
    for p in &packs {
        out.push(p.len() as u8);
        out.extend_from_slice(&(name_off as u32).to_be_bytes());
        name_off += p.len();
    }
    for (c, v, k) in &formats {
        out.extend_from_slice(&c.to_be_bytes());
        out.push(*v);
        out.push(*k);
    }
    for p in &packs {
        if p.len() > 255 {
            return Err(FormatError::InvalidInput(format!("pack id too long: {p}")));
        }
        out.extend_from_slice(p.as_bytes());
    }
    Ok(out)
}

/// Encodes an index v2 followed by 32 random bytes, as Kopia writes index blobs.
pub fn encode_index_v2(entries: impl IntoIterator<Item = IndexEntry>) -> Result<Vec<u8>> {
    let mut out = encode_index_v2_stable(entries)?;
    let start = out.len();
    out.resize(start + RANDOM_SUFFIX_LEN, 0);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut out[start..]);
    Ok(out)
}

/// A parsed index, read in place: lookups binary-search the encoded entries.
#[derive(Debug, Clone)]
pub struct Index {
    data: Vec<u8>,
    key_size: usize,
    entry_size: usize,
    count: usize,
    formats: Vec<FormatKey>,
    packs: Vec<String>,
}

fn slice(data: &[u8], off: usize, len: usize) -> Result<&[u8]> {
    off.checked_add(len)
        .and_then(|end| data.get(off..end))
        .ok_or_else(|| {
            FormatError::malformed(
                "index",
                format!("section {off}+{len} outside {} bytes", data.len()),
            )
        })
}

impl Index {
    /// Parses index bytes (version 2; version 1 is reported as unsupported).
    pub fn parse(data: Vec<u8>) -> Result<Index> {
        let h = slice(&data, 0, HEADER_SIZE)?;
        match h[0] {
            2 => {}
            1 => {
                return Err(FormatError::malformed(
                    "index",
                    "index version 1 is not supported yet",
                ))
            }
            v => {
                return Err(FormatError::malformed(
                    "index",
                    format!("unknown index version {v}"),
                ))
            }
        }
        let key_size = h[1] as usize;
        let entry_size = u16::from_be_bytes([h[2], h[3]]) as usize;
        let count = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let pack_count = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let format_count = h[12] as usize;
        if key_size <= 1
            || !(ENTRY_MIN..=ENTRY_MAX).contains(&entry_size)
            || key_size + entry_size > 256
            || format_count == 255
        {
            return Err(FormatError::malformed("index", "invalid header"));
        }
        let stride = key_size + entry_size;
        let packs_off = count
            .checked_mul(stride)
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .filter(|&n| n <= data.len())
            .ok_or_else(|| FormatError::malformed("index", "entries outside the data"))?;
        let formats_off = pack_count
            .checked_mul(PACK_INFO_SIZE)
            .and_then(|n| n.checked_add(packs_off))
            .filter(|&n| n <= data.len())
            .ok_or_else(|| FormatError::malformed("index", "pack table outside the data"))?;
        let fbuf = slice(&data, formats_off, format_count * FORMAT_INFO_SIZE)?;
        let formats = fbuf
            .chunks_exact(FORMAT_INFO_SIZE)
            .map(|f| (u32::from_be_bytes([f[0], f[1], f[2], f[3]]), f[4], f[5]))
            .collect();
        let mut packs = Vec::with_capacity(pack_count);
        for i in 0..pack_count {
            let p = slice(&data, packs_off + i * PACK_INFO_SIZE, PACK_INFO_SIZE)?;
            let off = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
            let name = slice(&data, off, p[0] as usize)?;
            packs.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(Index {
            data,
            key_size,
            entry_size,
            count,
            formats,
            packs,
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

    /// Index format version.
    pub fn version(&self) -> u8 {
        2
    }

    fn entry(&self, i: usize) -> &[u8] {
        let stride = self.key_size + self.entry_size;
        let off = HEADER_SIZE + i * stride;
        &self.data[off..off + stride]
    }

    fn decode(&self, raw: &[u8]) -> Result<IndexEntry> {
        let (k, v) = raw.split_at(self.key_size);
        let be32 = |o: usize| u32::from_be_bytes([v[o], v[o + 1], v[o + 2], v[o + 3]]);
        let be24 = |o: usize| u32::from_be_bytes([0, v[o], v[o + 1], v[o + 2]]);
        let mut original = be24(8);
        let mut packed = be24(11);
        if v.len() > 18 {
            original |= u32::from(v[18] >> 4) << 24;
            packed |= u32::from(v[18] & 0xf) << 24;
        }
        let fid = if v.len() > 16 { v[16] as usize } else { 0 };
        let (compression, version, key_id) = self
            .formats
            .get(fid)
            .copied()
            .unwrap_or((0xffff, 0xff, 0xff));
        let mut pi = u16::from_be_bytes([v[14], v[15]]) as usize;
        if v.len() > 17 {
            pi |= (v[17] as usize) << 16;
        }
        let pack = self
            .packs
            .get(pi)
            .cloned()
            .unwrap_or_else(|| "---invalid---".into());
        let off = be32(4);
        Ok(IndexEntry {
            content_id: ContentId::from_key(k)?,
            pack_blob_id: pack,
            pack_offset: off & 0x7fff_ffff,
            packed_length: packed,
            original_length: original,
            timestamp_seconds: i64::from(be32(0)),
            deleted: off & DELETED != 0,
            format_version: version,
            compression_header_id: compression,
            encryption_key_id: key_id,
        })
    }

    /// The entry for `id`, if present.
    pub fn get(&self, id: &ContentId) -> Result<Option<IndexEntry>> {
        if 1 + id.hash().len() != self.key_size {
            return Ok(None);
        }
        let key = id.key();
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid)[..self.key_size].cmp(&key[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.decode(self.entry(mid)).map(Some),
            }
        }
        Ok(None)
    }

    /// Every entry, in index order.
    pub fn iter(&self) -> impl Iterator<Item = Result<IndexEntry>> + '_ {
        (0..self.count).map(move |i| self.decode(self.entry(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: &str, pack: &str, off: u32) -> IndexEntry {
        IndexEntry {
            content_id: id.parse().unwrap(),
            pack_blob_id: pack.into(),
            pack_offset: off,
            packed_length: 100,
            original_length: 80,
            timestamp_seconds: 1_700_000_000,
            deleted: false,
            format_version: 2,
            compression_header_id: 0,
            encryption_key_id: 0,
        }
    }

    #[test]
    fn ids_parse_and_print_like_kopia() {
        let id: ContentId = "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
            .parse()
            .unwrap();
        assert_eq!(
            id.to_string(),
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
        );
        assert_eq!(id.prefix(), Some(b'x'));
        for bad in [
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f11", // too long
            "a00",                                                                 // bad prefix
            "zzz",                                                                 // not hex
            "x",                                                                   // too short
            "",
        ] {
            assert!(bad.parse::<ContentId>().is_err(), "{bad}");
        }
        let plain: ContentId = "abcd".parse().unwrap();
        assert_eq!(plain.prefix(), None);
        assert!(
            plain < "gabcd".parse().unwrap(),
            "unprefixed ids sort first"
        );
        assert!("k00".parse::<ContentId>().unwrap() < "m00".parse().unwrap());
    }

    #[test]
    fn handcrafted_bytes_match_the_encoder_and_parse_back() {
        let e = entry("abcd", "pack1", 0x10);
        let mut want = vec![2u8, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0];
        want.extend_from_slice(&[0, 0xab, 0xcd]); // key
        want.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 0x10, 0, 0, 80, 0, 0, 100, 0, 0]);
        let names_at = (want.len() + 5 + 6) as u32;
        want.push(5);
        want.extend_from_slice(&names_at.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 2, 0]);
        want.extend_from_slice(b"pack1");
        assert_eq!(encode_index_v2_stable([e.clone()]).unwrap(), want);
        let idx = Index::parse(want).unwrap();
        assert_eq!(idx.get(&e.content_id).unwrap(), Some(e));
    }

    #[test]
    fn optional_entry_bytes_appear_only_when_needed() {
        let mut a = entry("aa", "p1", 0);
        let mut b = entry("bb", "p1", 0);
        b.compression_header_id = 0x1100;
        let two_formats = encode_index_v2_stable([a.clone(), b.clone()]).unwrap();
        assert_eq!(u16::from_be_bytes([two_formats[2], two_formats[3]]), 17);
        a.original_length = 20 << 20;
        b.packed_length = 17 << 20;
        let big = encode_index_v2_stable([a.clone(), b.clone()]).unwrap();
        assert_eq!(u16::from_be_bytes([big[2], big[3]]), 19);
        let idx = Index::parse(big).unwrap();
        assert_eq!(idx.get(&a.content_id).unwrap().unwrap(), a);
        assert_eq!(idx.get(&b.content_id).unwrap().unwrap(), b);
    }

    #[test]
    fn merge_rule_is_kopias() {
        let a = entry("aa", "p1", 0);
        let mut newer = a.clone();
        newer.timestamp_seconds += 1;
        newer.deleted = true;
        assert!(pick_winner(&newer, &a));
        let mut deleted = a.clone();
        deleted.deleted = true;
        assert!(pick_winner(&a, &deleted) && !pick_winner(&deleted, &a));
        let mut other_pack = a.clone();
        other_pack.pack_blob_id = "p2".into();
        assert!(pick_winner(&other_pack, &a));
        // the builder keeps the winner
        let idx = Index::parse(encode_index_v2([a.clone(), newer.clone()]).unwrap()).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.get(&a.content_id).unwrap(), Some(newer));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let good = encode_index_v2_stable(
            (0..50u8).map(|i| entry(&format!("{i:02x}aa"), &format!("p{}", i % 3), u32::from(i))),
        )
        .unwrap();
        for n in 0..good.len() {
            if let Ok(idx) = Index::parse(good[..n].to_vec()) {
                let _ = idx.iter().count();
            }
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            if let Ok(idx) = Index::parse(bad) {
                let _ = idx.iter().collect::<Vec<_>>();
                let _ = idx.get(&"00aa".parse().unwrap());
            }
        }
    }

    fn arb_entry() -> impl Strategy<Value = IndexEntry> {
        (
            proptest::option::of(b'g'..=b'z'),
            proptest::collection::vec(any::<u8>(), 16),
            0u32..5,
            0u32..(1 << 30),
            0u32..(1 << 28),
            0u32..(1 << 28),
            any::<u32>(),
            any::<bool>(),
            prop_oneof![Just(0u32), Just(0x1100), Just(0x1300)],
        )
            .prop_map(|(p, h, pack, off, pl, ol, ts, del, comp)| IndexEntry {
                content_id: ContentId::new(p, &h).unwrap(),
                pack_blob_id: format!("p{pack:032x}-s1"),
                pack_offset: off,
                packed_length: pl,
                original_length: ol,
                timestamp_seconds: i64::from(ts),
                deleted: del,
                format_version: 2,
                compression_header_id: comp,
                encryption_key_id: 0,
            })
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(arb_entry(), 1..200)) {
            let idx = Index::parse(encode_index_v2(entries.clone()).unwrap()).unwrap();
            let mut expect: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
            for e in entries {
                match expect.get(&e.content_id) {
                    Some(o) if !pick_winner(&e, o) => {}
                    _ => { expect.insert(e.content_id, e); }
                }
            }
            let got: Vec<IndexEntry> = idx.iter().map(|e| e.unwrap()).collect();
            let want: Vec<IndexEntry> = expect.values().cloned().collect();
            prop_assert_eq!(&got, &want);
            for e in expect.values() {
                let found = idx.get(&e.content_id).unwrap();
                prop_assert_eq!(found.as_ref(), Some(e));
            }
            let absent = ContentId::new(None, &[0xee; 16]).unwrap();
            let found = idx.get(&absent).unwrap();
            prop_assert_eq!(found.is_some(), expect.contains_key(&absent));
        }
    }
}
