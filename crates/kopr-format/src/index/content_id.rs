//! Content ids: an optional one-letter prefix and the content hash.
//!
//! Contents without a prefix hold file data and live in `p` packs; contents with a prefix
//! `g`..=`z` (for example `k` for directory listings, `m` for manifests) are metadata and live
//! in `q` packs. The text form is the prefix letter (if any) followed by the hash in lowercase
//! hex. Ids order first by prefix (no prefix before any letter), then by hash bytes, which is
//! the same as ordering their text forms.
//!
//! Kopia also has an "empty" id (the zero value, text form `""`); here that is expressed as
//! `Option<ContentId>::None`, so parsing `""` is an error.

use std::fmt;
use std::str::FromStr;

use crate::error::{FormatError, Result};

/// Longest hash a content id holds, in bytes.
pub const MAX_HASH_LEN: usize = 32;

/// Longest index key: the prefix byte plus the longest hash.
pub const MAX_KEY_LEN: usize = MAX_HASH_LEN + 1;

/// Pack blob id prefix for contents without an id prefix (file data).
pub const PACK_PREFIX_DATA: &str = "p";

/// Pack blob id prefix for contents with an id prefix (metadata).
pub const PACK_PREFIX_METADATA: &str = "q";

/// Whether `p` is a valid content id prefix letter (`g`..=`z`).
pub fn is_valid_prefix(p: u8) -> bool {
    (b'g'..=b'z').contains(&p)
}

/// A content id: optional prefix letter and 1..=32 hash bytes.
///
/// Ordered by the prefix (0 when absent), then the zero-padded hash, then the length, which
/// equals Kopia's ordering (prefix, then bytewise hash comparison where a proper prefix sorts
/// first).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId {
    prefix: u8,
    hash: [u8; MAX_HASH_LEN],
    len: u8,
}

impl Ord for ContentId {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Merges and sorted sets compare ids millions of times: the first eight hash bytes as
        // one big-endian word decide almost every comparison without a byte-wise compare.
        let word = |h: &[u8; MAX_HASH_LEN]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h[..8]);
            u64::from_be_bytes(w)
        };
        self.prefix
            .cmp(&o.prefix)
            .then_with(|| word(&self.hash).cmp(&word(&o.hash)))
            .then_with(|| self.hash[8..].cmp(&o.hash[8..]))
            .then(self.len.cmp(&o.len))
    }
}

impl ContentId {
    /// A word ordered as the ids are where it differs: the prefix byte, then the first seven
    /// (zero-padded) hash bytes. Equal words say nothing; `cmp` then decides.
    pub(crate) fn sort_word(&self) -> u64 {
        let mut w = [0u8; 8];
        w[0] = self.prefix;
        w[1..].copy_from_slice(&self.hash[..7]);
        u64::from_be_bytes(w)
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl ContentId {
    /// Builds an id; the prefix must be `g`..=`z`, the hash 1..=32 bytes.
    pub fn new(prefix: Option<u8>, hash: &[u8]) -> Result<Self> {
        if hash.is_empty() {
            return Err(FormatError::InvalidInput("hash too short".into()));
        }
        if hash.len() > MAX_HASH_LEN {
            return Err(FormatError::InvalidInput(format!(
                "hash too long: {} bytes",
                hash.len()
            )));
        }
        if let Some(p) = prefix {
            if !is_valid_prefix(p) {
                return Err(FormatError::InvalidInput(
                    "invalid prefix, must be empty or a single letter between 'g' and 'z'".into(),
                ));
            }
        }
        let mut padded = [0u8; MAX_HASH_LEN];
        padded[..hash.len()].copy_from_slice(hash);
        Ok(ContentId {
            prefix: prefix.unwrap_or(0),
            hash: padded,
            // at most MAX_HASH_LEN, checked above
            len: hash.len() as u8,
        })
    }

    /// The prefix letter, if any.
    pub fn prefix(&self) -> Option<u8> {
        (self.prefix != 0).then_some(self.prefix)
    }

    /// Whether the id has a prefix letter.
    pub fn has_prefix(&self) -> bool {
        self.prefix != 0
    }

    /// Whether this is a metadata content (has a prefix), stored in `q` packs.
    pub fn is_metadata(&self) -> bool {
        self.has_prefix()
    }

    /// The pack blob id prefix for packs holding this content: `q` with an id prefix, else `p`.
    pub fn pack_prefix(&self) -> &'static str {
        if self.has_prefix() {
            PACK_PREFIX_METADATA
        } else {
            PACK_PREFIX_DATA
        }
    }

    /// The hash bytes.
    pub fn hash(&self) -> &[u8] {
        &self.hash[..usize::from(self.len)]
    }

    /// Length of the index key for this id: one prefix byte plus the hash.
    pub fn key_len(&self) -> usize {
        1 + usize::from(self.len)
    }

    /// The index key: prefix byte (0 when none) followed by the hash.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.key_len());
        self.write_key(&mut k);
        k
    }

    /// Appends the index key to `out`.
    pub(crate) fn write_key(&self, out: &mut Vec<u8>) {
        out.push(self.prefix);
        out.extend_from_slice(self.hash());
    }

    /// Decodes an index key (prefix byte, 0 for none, then the hash).
    pub fn from_key(key: &[u8]) -> Result<Self> {
        let (&p, hash) = key
            .split_first()
            .ok_or_else(|| FormatError::malformed("index", "empty content id key"))?;
        ContentId::new((p != 0).then_some(p), hash).map_err(|e| {
            FormatError::malformed("index", format!("bad content id key {key:02x?}: {e}"))
        })
    }
}

/// Longest text of a content id: a prefix letter and two hex digits per hash byte.
pub(crate) const MAX_TEXT_LEN: usize = 1 + 2 * MAX_HASH_LEN;

impl ContentId {
    /// Writes the id's text at the start of `text` (at least [`MAX_TEXT_LEN`] bytes); its
    /// length. One write of the whole text: ids are printed by the hundred thousand (directory
    /// listings and objects, logs), and a formatting call per byte cost more than the rest.
    pub(crate) fn write_text(&self, text: &mut [u8]) -> usize {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut n = 0;
        if self.prefix != 0 {
            text[0] = self.prefix;
            n = 1;
        }
        for &b in self.hash() {
            text[n] = HEX[usize::from(b >> 4)];
            text[n + 1] = HEX[usize::from(b & 15)];
            n += 2;
        }
        n
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; MAX_TEXT_LEN];
        let n = self.write_text(&mut text);
        // A prefix is an ASCII letter (checked when the id is made), the rest hex digits.
        f.write_str(std::str::from_utf8(&text[..n]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = FormatError;

    /// Parses Kopia's text form: an odd length means a leading prefix letter, the rest is hex
    /// (either case) of at most 32 bytes.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| FormatError::InvalidInput(format!("{why}: {s:?}"));
        if s.is_empty() {
            return Err(bad("empty content id"));
        }
        let bytes = s.as_bytes();
        let (prefix, hex_part) = if bytes.len() % 2 == 1 {
            if !is_valid_prefix(bytes[0]) {
                return Err(bad("invalid content prefix"));
            }
            // the first byte is ASCII, so slicing after it stays on a char boundary
            (Some(bytes[0]), &bytes[1..])
        } else {
            (None, bytes)
        };
        if hex_part.len() > 2 * MAX_HASH_LEN {
            return Err(bad("hash too long"));
        }
        if hex_part.is_empty() {
            return Err(bad("id too short"));
        }
        let mut buf = [0u8; MAX_HASH_LEN];
        let n = hex_part.len() / 2;
        hex::decode_to_slice(hex_part, &mut buf[..n]).map_err(|_| bad("invalid content hash"))?;
        ContentId::new(prefix, &buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContentId {
        s.parse().expect(s)
    }

    #[test]
    fn valid_ids_round_trip_and_sort_like_kopia() {
        // Kopia's list also starts with "", its empty id, which is `None` here.
        let ordered = [
            "0012abcd",
            "12345678",
            "ffffffff",
            "g01234567",
            "g01234568",
            "yffffffff",
            "z00000000",
            "z00000001",
            "zffffffff",
        ];
        let ids: Vec<ContentId> = ordered.iter().map(|s| id(s)).collect();
        for (i, a) in ids.iter().enumerate() {
            assert_eq!(a.to_string(), ordered[i]);
            for (j, b) in ids.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a} vs {b}");
                assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()));
            }
        }
        assert!("".parse::<ContentId>().is_err());
    }

    #[test]
    fn from_hash() {
        assert_eq!(
            ContentId::new(None, &[0x12, 0x34]).unwrap().to_string(),
            "1234"
        );
        assert_eq!(
            ContentId::new(Some(b'x'), &[0x12, 0x34])
                .unwrap()
                .to_string(),
            "x1234"
        );
        let long: Vec<u8> = (0..32u8).map(|i| i % 16).collect();
        assert_eq!(
            ContentId::new(Some(b'x'), &long).unwrap().to_string(),
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
        );
        let mut too_long = long.clone();
        too_long.push(0);
        let e = ContentId::new(Some(b'x'), &too_long).unwrap_err();
        assert!(e.to_string().contains("hash too long"), "{e}");
        let e = ContentId::new(None, &[]).unwrap_err();
        assert!(e.to_string().contains("hash too short"), "{e}");
        for p in [b'@', b'a', b'f', b'{', b'G', 0] {
            let e = ContentId::new(Some(p), &[1]).unwrap_err();
            assert!(
                e.to_string().contains("invalid prefix, must be empty"),
                "{e}"
            );
        }
    }

    #[test]
    fn invalid_strings() {
        for (s, want) in [
            ("x", "id too short"),
            ("x1", "invalid content hash"),
            ("xx", "invalid content hash"),
            (
                "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f11",
                "hash too long",
            ),
            ("A00", "invalid content prefix"),
            ("@abcd", "invalid content prefix"),
            ("é0", "invalid content prefix"),
            ("xé0", "invalid content hash"),
            ("gé", "invalid content hash"),
        ] {
            let e = s.parse::<ContentId>().unwrap_err().to_string();
            assert!(e.contains(want), "{s:?}: {e}");
        }
    }

    #[test]
    fn hash_prefix_and_pack_kind() {
        for prefix in [None, Some(b'g'), Some(b'z')] {
            for h in [&[1u8, 2][..], &[1, 2, 3, 4]] {
                let c = ContentId::new(prefix, h).unwrap();
                assert_eq!(c.hash(), h);
                assert_eq!(c.prefix(), prefix);
                assert_eq!(c.has_prefix(), prefix.is_some());
                let p = prefix
                    .map(|p| char::from(p).to_string())
                    .unwrap_or_default();
                assert_eq!(c.to_string(), format!("{p}{}", hex::encode(h)));
                assert_eq!(c.pack_prefix(), if prefix.is_some() { "q" } else { "p" });
            }
        }
    }

    #[test]
    fn keys_round_trip() {
        for s in ["aa", "xaa", "00", "k0102030405"] {
            let c = id(s);
            assert_eq!(ContentId::from_key(&c.key()).unwrap(), c);
        }
        assert_eq!(id("xaa").key(), vec![b'x', 0xaa]);
        assert_eq!(id("aa").key(), vec![0, 0xaa]);
        assert!(ContentId::from_key(&[]).is_err());
        assert!(ContentId::from_key(&[0]).is_err());
        assert!(ContentId::from_key(&[b'a', 1]).is_err());
    }

    #[test]
    fn uppercase_hex_is_accepted_and_printed_lowercase() {
        assert_eq!(id("ABCD"), id("abcd"));
        assert_eq!(id("xABCD").to_string(), "xabcd");
    }

    #[test]
    fn proper_prefixes_sort_first() {
        assert!(id("ab") < id("ab00"));
        assert!(id("ab") < id("ab01"));
        assert!(id("ab01") < id("ac"));
        assert!(id("ffff") < id("g00"));
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    /// The word-at-a-time comparison orders ids exactly as comparing (prefix, padded hash,
    /// length) field by field does.
    #[test]
    fn ordering_is_prefix_then_bytes_then_length() {
        let mut ids = Vec::new();
        for prefix in [None, Some(b'k'), Some(b'x')] {
            for len in [1usize, 7, 8, 9, 16, 32] {
                for seed in 0..40u8 {
                    let h: Vec<u8> = (0..len as u8)
                        .map(|i| seed.wrapping_mul(37).wrapping_add(i.wrapping_mul(seed % 5)))
                        .collect();
                    ids.push(ContentId::new(prefix, &h).unwrap());
                }
            }
        }
        for a in &ids {
            for b in &ids {
                let fieldwise = (a.prefix, a.hash, a.len).cmp(&(b.prefix, b.hash, b.len));
                assert_eq!(a.cmp(b), fieldwise, "{a} vs {b}");
            }
        }
    }
}
