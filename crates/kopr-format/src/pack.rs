//! Pack blob framing: what surrounds the encrypted contents inside a `p`/`q` pack blob.
//!
//! A pack is `[random preamble][content]*[random padding][encrypted local index][postamble]`.
//! The local index is a copy of the pack's index entries (so lost index blobs can be rebuilt
//! from the packs); the postamble, read from the end, says where it is and how to decrypt it:
//! `uvarint(1) uvarint(len(iv)) iv uvarint(offset) uvarint(length) crc32be(...) len-byte`.
//! [`start_pack`] and [`finish_pack`] assemble that frame around the contents a writer appends;
//! [`read_local_index`] opens it again.

use rand::RngCore;

use crate::encryption::Encryptor;
use crate::error::{FormatError, Result};
use crate::hashing::Hasher;

/// Length of the random bytes a pack starts with.
pub const PREAMBLE_LEN: usize = 32;
/// Packs are padded with random bytes to a multiple of this before the local index.
pub const PADDING_UNIT: usize = 4096;
/// Pack blob id prefix for data contents (no content-id prefix).
pub const PACK_PREFIX_DATA: &str = "p";
/// Pack blob id prefix for metadata contents (prefixed content ids).
pub const PACK_PREFIX_METADATA: &str = "q";
/// Random bytes in a pack blob id.
pub const PACK_ID_RANDOM_BYTES: usize = 16;

/// The IV of a content inside a pack: the last 16 bytes of its hash.
pub fn content_iv(content_hash: &[u8]) -> &[u8] {
    let n = content_hash.len();
    &content_hash[n.saturating_sub(16)..]
}

/// Number of random padding bytes added after `len` bytes of pack data (always 1..=4096).
pub fn padding_len(len: usize) -> usize {
    PADDING_UNIT - (len % PADDING_UNIT)
}

/// Locates and authenticates the local index copy at the end of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postamble {
    /// IV (hash of the plaintext local index) used to encrypt it.
    pub local_index_iv: Vec<u8>,
    /// Offset of the encrypted local index in the pack.
    pub local_index_offset: u32,
    /// Length of the encrypted local index.
    pub local_index_length: u32,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

impl Postamble {
    /// Encodes the postamble, including its checksum and trailing length byte.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(48 + self.local_index_iv.len());
        put_uvarint(&mut out, 1);
        put_uvarint(&mut out, self.local_index_iv.len() as u64);
        out.extend_from_slice(&self.local_index_iv);
        put_uvarint(&mut out, u64::from(self.local_index_offset));
        put_uvarint(&mut out, u64::from(self.local_index_length));
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        let n = out.len();
        if n > 255 {
            return Err(FormatError::InvalidInput(format!(
                "postamble too long: {n}"
            )));
        }
        out.push(n as u8);
        Ok(out)
    }

    /// Finds the postamble at the end of `pack` (or of its tail). `None` if absent or damaged.
    pub fn find(pack: &[u8]) -> Option<Postamble> {
        let (&last, rest) = pack.split_last()?;
        let len = usize::from(last);
        if len < 5 || len > rest.len() {
            return None;
        }
        let body = &rest[rest.len() - len..];
        let (payload, crc) = body.split_at(len - 4);
        let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(payload) != crc {
            return None;
        }
        let (flags, n) = get_uvarint(payload)?;
        if flags != 1 {
            return None;
        }
        let p = &payload[n..];
        let (iv_len, n) = get_uvarint(p)?;
        let p = &p[n..];
        let iv_len = usize::try_from(iv_len).ok()?;
        if iv_len > p.len() {
            return None;
        }
        let (iv, p) = p.split_at(iv_len);
        let (off, n) = get_uvarint(p)?;
        let p = &p[n..];
        let (length, _) = get_uvarint(p)?;
        Some(Postamble {
            local_index_iv: iv.to_vec(),
            local_index_offset: u32::try_from(off).ok()?,
            local_index_length: u32::try_from(length).ok()?,
        })
    }

    /// The encrypted local index bytes inside `pack`, bounds-checked.
    pub fn local_index<'a>(&self, pack: &'a [u8]) -> Result<&'a [u8]> {
        let start = self.local_index_offset as usize;
        let end = start
            .checked_add(self.local_index_length as usize)
            .filter(|&e| e <= pack.len())
            .ok_or_else(|| FormatError::malformed("pack", "local index outside the pack"))?;
        Ok(&pack[start..end])
    }
}

/// Starts a pack in `data` (emptied first, its capacity kept, so a writer can reserve room for
/// a whole pack once and reuse the buffer): `prefix` (a copy of the format blob in
/// repositories without password change, as Kopia writes them; else empty), then
/// [`PREAMBLE_LEN`] random bytes.
pub fn start_pack(data: &mut Vec<u8>, prefix: &[u8]) {
    data.clear();
    data.extend_from_slice(prefix);
    let start = data.len();
    data.resize(start + PREAMBLE_LEN, 0);
    rand::rngs::OsRng.fill_bytes(&mut data[start..]);
}

/// Ends a pack: random padding to a multiple of [`PADDING_UNIT`], the local index (the plain
/// bytes of an index blob listing the pack's contents) encrypted under the hash of its
/// plaintext, and the postamble that locates it.
pub fn finish_pack(
    out: &mut Vec<u8>,
    local_index: &[u8],
    hasher: &Hasher,
    encryptor: &Encryptor,
) -> Result<()> {
    let pad = padding_len(out.len());
    out.reserve(pad + local_index.len() + encryptor.overhead() + 128);
    let start = out.len();
    out.resize(start + pad, 0);
    rand::rngs::OsRng.fill_bytes(&mut out[start..]);
    let iv = hasher.hash(local_index);
    let offset = out.len();
    encryptor.encrypt(local_index, iv.as_bytes(), out);
    let postamble = Postamble {
        local_index_iv: iv.as_bytes().to_vec(),
        local_index_offset: offset as u32,
        local_index_length: (out.len() - offset) as u32,
    };
    out.extend_from_slice(&postamble.to_bytes()?);
    Ok(())
}

/// The plain bytes of the local index at the end of a whole pack (the inverse of
/// [`finish_pack`]): the postamble found, the encrypted copy bounds-checked and decrypted.
pub fn read_local_index(pack: &[u8], encryptor: &Encryptor) -> Result<Vec<u8>> {
    let post = Postamble::find(pack).ok_or_else(|| {
        FormatError::malformed("local index", "no readable postamble at the pack's end")
    })?;
    let encrypted = post.local_index(pack)?;
    let mut plain = Vec::with_capacity(encrypted.len());
    encryptor
        .decrypt(encrypted, &post.local_index_iv, &mut plain)
        .map_err(|e| FormatError::malformed("local index", format!("it does not decrypt: {e}")))?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_pack_gives_back_its_local_index() {
        let hasher = Hasher::new("BLAKE3-256-128", &[7; 32]).unwrap();
        let enc = Encryptor::new("AES256-GCM-HMAC-SHA256", &[9; 32]).unwrap();
        let mut pack = vec![5; 100];
        start_pack(&mut pack, b"FORMAT");
        assert_eq!(&pack[..6], b"FORMAT");
        assert_eq!(pack.len(), 6 + PREAMBLE_LEN);
        pack.extend_from_slice(&[1; 5000]);
        let contents_end = pack.len();
        finish_pack(&mut pack, b"the local index", &hasher, &enc).unwrap();
        let post = Postamble::find(&pack).unwrap();
        // Padding to a multiple of the unit, then the encrypted copy under its plaintext's hash.
        assert_eq!(post.local_index_offset as usize % PADDING_UNIT, 0);
        assert!(post.local_index_offset as usize > contents_end);
        assert_eq!(
            post.local_index_iv,
            hasher.hash(b"the local index").as_bytes()
        );
        assert_eq!(read_local_index(&pack, &enc).unwrap(), b"the local index");
        // Another key, or a damaged end, is an error, not garbage.
        let other = Encryptor::new("AES256-GCM-HMAC-SHA256", &[8; 32]).unwrap();
        assert!(read_local_index(&pack, &other).is_err());
        let n = pack.len();
        pack[n - 2] ^= 1;
        assert!(read_local_index(&pack, &enc).is_err());
    }

    #[test]
    fn postamble_known_bytes() {
        let p = Postamble {
            local_index_iv: vec![0xaa; 16],
            local_index_offset: 300,
            local_index_length: 5,
        };
        let b = p.to_bytes().unwrap();
        // 01 10 <16 x aa> ac02 05 <crc32 be> len
        let mut expect = vec![0x01, 0x10];
        expect.extend_from_slice(&[0xaa; 16]);
        expect.extend_from_slice(&[0xac, 0x02, 0x05]);
        let crc = crc32fast::hash(&expect);
        expect.extend_from_slice(&crc.to_be_bytes());
        expect.push(25);
        assert_eq!(b, expect);
    }

    #[test]
    fn postamble_round_trip_after_data() {
        let p = Postamble {
            local_index_iv: (0..32).collect(),
            local_index_offset: 4096,
            local_index_length: 777,
        };
        let mut pack = vec![7u8; 5000];
        pack.extend(p.to_bytes().unwrap());
        assert_eq!(Postamble::find(&pack), Some(p));
    }

    #[test]
    fn damaged_postamble_is_none() {
        let p = Postamble {
            local_index_iv: vec![1; 16],
            local_index_offset: 1,
            local_index_length: 2,
        };
        let good = p.to_bytes().unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            if let Some(found) = Postamble::find(&bad) {
                assert_eq!(
                    found, p,
                    "flipping byte {i} must not yield a different postamble"
                );
            }
        }
        assert_eq!(Postamble::find(&[]), None);
        assert_eq!(Postamble::find(&[200]), None);
    }

    #[test]
    fn padding_is_kopias() {
        assert_eq!(padding_len(0), 4096);
        assert_eq!(padding_len(1), 4095);
        assert_eq!(padding_len(4096), 4096);
        assert_eq!(content_iv(&[1u8; 32]), &[1u8; 16]);
        assert_eq!(content_iv(&[2u8; 16]), &[2u8; 16]);
    }
}
