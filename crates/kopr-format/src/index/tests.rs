//! Cross-module tests: hand-built bytes, round trips, hostile input.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

mod hostile;
mod vectors;

use hostile::fuzz;

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

fn all(idx: &Index) -> Vec<IndexEntry> {
    idx.iter().map(|e| e.unwrap()).collect()
}

/// Two entries given out of order, two packs, two formats, one deleted: built by hand from
/// the layout description, independently of the encoder.
#[test]
fn handcrafted_v2() {
    let mut a = entry("k0102", "pB", 0x10);
    a.compression_header_id = 0x1100;
    a.deleted = true;
    let b = entry("0a0b", "pA", 0x0020_0000);
    let mut want: Vec<u8> = vec![
        2, // version
        3, // key size: prefix byte + 2 hash bytes
        0, 17, // entry size: two formats need the format byte
        0, 0, 0, 2, // entries
        0, 0, 0, 2, // packs
        2, // formats
        0, 0, 0, 0, // base timestamp
    ];
    // "0a0b" sorts first (no prefix), so its pack pA is pack 0 and its format is format 0
    want.extend_from_slice(&[0, 0x0a, 0x0b]);
    want.extend_from_slice(&[0x65, 0x53, 0xf1, 0x00]); // 1_700_000_000
    want.extend_from_slice(&[0x00, 0x20, 0x00, 0x00]); // offset, live
    want.extend_from_slice(&[0, 0, 80, 0, 0, 100]); // original, packed
    want.extend_from_slice(&[0, 0, 0]); // pack 0, format 0
    want.extend_from_slice(&[b'k', 0x01, 0x02]);
    want.extend_from_slice(&[0x65, 0x53, 0xf1, 0x00]);
    want.extend_from_slice(&[0x80, 0, 0, 0x10]); // deleted flag + offset
    want.extend_from_slice(&[0, 0, 80, 0, 0, 100]);
    want.extend_from_slice(&[0, 1, 1]); // pack 1, format 1
    let names_at = (want.len() + 2 * 5 + 2 * 6) as u8;
    want.extend_from_slice(&[2, 0, 0, 0, names_at]); // pA
    want.extend_from_slice(&[2, 0, 0, 0, names_at + 2]); // pB
    want.extend_from_slice(&[0, 0, 0, 0, 2, 0]); // format 0: no compression, v2, key 0
    want.extend_from_slice(&[0, 0, 0x11, 0, 2, 0]); // format 1: 0x1100
    want.extend_from_slice(b"pApB");

    assert_eq!(
        encode_index_v2_stable([a.clone(), b.clone()]).unwrap(),
        want
    );
    let idx = Index::parse(want.clone()).unwrap();
    assert_eq!(idx.version(), 2);
    assert_eq!(idx.len(), 2);
    assert_eq!(all(&idx), vec![b.clone(), a.clone()]);
    assert_eq!(idx.get(&a.content_id).unwrap(), Some(a.clone()));
    assert_eq!(idx.get(&b.content_id).unwrap(), Some(b));
    assert_eq!(idx.get(&"0a0c".parse().unwrap()).unwrap(), None);
    assert_eq!(idx.get(&"0a".parse().unwrap()).unwrap(), None);

    // a base timestamp is added on read (Kopia writes 0 but honours it)
    let mut based = want;
    based[16] = 5;
    let idx = Index::parse(based).unwrap();
    let got = idx.get(&a.content_id).unwrap().unwrap();
    assert_eq!(got.timestamp_seconds, a.timestamp_seconds + 5);
}

/// Single entry, single format: the smallest layout, with an empty pack id (Kopia allows it
/// in v2: zero-length name pointing at the start of the names area).
#[test]
fn handcrafted_v2_minimal_with_empty_pack() {
    let e = IndexEntry {
        pack_blob_id: Default::default(),
        timestamp_seconds: 0,
        ..entry("xabcd", "", 7)
    };
    let mut want = vec![2u8, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0];
    want.extend_from_slice(&[
        b'x', 0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 80, 0, 0, 100, 0, 0,
    ]);
    let names_at = (want.len() + 5 + 6) as u8;
    want.extend_from_slice(&[0, 0, 0, 0, names_at]);
    want.extend_from_slice(&[0, 0, 0, 0, 2, 0]);
    assert_eq!(encode_index_v2_stable([e.clone()]).unwrap(), want);
    assert_eq!(all(&Index::parse(want).unwrap()), vec![e]);
}

#[test]
fn handcrafted_v1() {
    let a = entry("0a0b", "pA", 0x20);
    let mut b = entry("k0102", "pA", 0x10);
    b.deleted = true;
    let mut want: Vec<u8> = vec![1, 3, 0, 20, 0, 0, 0, 2];
    let names_at = (8 + 2 * 23) as u8;
    for (key, off) in [
        ([0u8, 0x0a, 0x0b], [0u8, 0, 0, 0x20]),
        ([b'k', 1, 2], [0x80, 0, 0, 0x10]),
    ] {
        want.extend_from_slice(&key);
        want.extend_from_slice(&[0, 0, 0x65, 0x53, 0xf1, 0x00]); // u48 timestamp
        want.extend_from_slice(&[2, 2]); // format version, name length
        want.extend_from_slice(&[0, 0, 0, names_at]);
        want.extend_from_slice(&off);
        want.extend_from_slice(&[0, 0, 0, 100]);
    }
    want.extend_from_slice(b"pA");
    assert_eq!(
        encode_index_v1_stable([b.clone(), a.clone()]).unwrap(),
        want
    );
    let idx = Index::parse_with_v1_overhead(want.clone(), 20).unwrap();
    assert_eq!(idx.version(), 1);
    assert_eq!(all(&idx), vec![a.clone(), b.clone()]);
    assert_eq!(idx.get(&b.content_id).unwrap(), Some(b.clone()));
    let plain = Index::parse(want).unwrap();
    assert_eq!(
        plain.get(&a.content_id).unwrap().unwrap().original_length,
        100
    );

    let empty = Index::parse(encode_index_v1_stable([]).unwrap()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.get(&a.content_id).unwrap(), None);
}

#[test]
fn optional_entry_bytes_appear_only_when_needed() {
    let mut a = entry("aa", "p1", 0);
    let mut b = entry("bb", "p1", 0);
    let size = |bytes: &[u8]| u16::from_be_bytes([bytes[2], bytes[3]]);
    assert_eq!(
        size(&encode_index_v2_stable([a.clone(), b.clone()]).unwrap()),
        16
    );
    b.compression_header_id = 0x1100;
    assert_eq!(
        size(&encode_index_v2_stable([a.clone(), b.clone()]).unwrap()),
        17
    );
    a.original_length = 20 << 20;
    b.packed_length = (1 << 28) - 1;
    let big = encode_index_v2_stable([a.clone(), b.clone()]).unwrap();
    assert_eq!(size(&big), 19);
    let idx = Index::parse(big).unwrap();
    assert_eq!(all(&idx), vec![a, b]);
}

#[test]
fn many_packs_use_the_extended_pack_byte() {
    let n = (1 << 16) + 3;
    let entries: Vec<IndexEntry> = (0..n as u32)
        .map(|i| {
            let mut e = entry("00", &format!("p{i:x}"), i);
            e.content_id = ContentId::new(None, &i.to_be_bytes()).unwrap();
            e
        })
        .collect();
    let bytes = encode_index_v2_stable(entries.clone()).unwrap();
    assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), 18);
    let idx = Index::parse(bytes).unwrap();
    assert_eq!(idx.len(), n);
    for e in entries.iter().rev().take(10) {
        assert_eq!(idx.get(&e.content_id).unwrap().as_ref(), Some(e));
    }
    assert_eq!(all(&idx), entries);
}

/// Kopia's TestPackIndexV2TooManyUniqueFormats.
#[test]
fn at_most_255_formats() {
    let mk = |i: u32| {
        let mut e = entry("00", "", 0);
        e.content_id = ContentId::new(None, &i.to_be_bytes()).unwrap();
        e.pack_blob_id = e.content_id.to_string().into();
        e.format_version = 1;
        e.compression_header_id = 1000 + i;
        e
    };
    let mut entries: Vec<IndexEntry> = (0..255).map(mk).collect();
    let bytes = encode_index_v2_stable(entries.clone()).unwrap();
    assert_eq!(bytes[12], 255);
    let idx = Index::parse(bytes).unwrap();
    assert_eq!(all(&idx), entries);
    entries.push(mk(255));
    let err = encode_index_v2_stable(entries).unwrap_err().to_string();
    assert!(
        err.contains("unsupported - too many unique formats 256 (max 255)"),
        "{err}"
    );
}

#[test]
fn random_suffix_is_ignored_and_differs() {
    let e = entry("aa", "p", 0);
    let a = encode_index_v2([e.clone()]).unwrap();
    let b = encode_index_v2([e.clone()]).unwrap();
    let stable = encode_index_v2_stable([e.clone()]).unwrap();
    assert_eq!(a.len(), stable.len() + RANDOM_SUFFIX_LEN);
    assert_eq!(a[..stable.len()], stable[..]);
    assert_ne!(a, b);
    assert_eq!(all(&Index::parse(a).unwrap()), vec![e.clone()]);
    let v1 = encode_index_v1([e.clone()]).unwrap();
    assert_eq!(
        all(&Index::parse(v1).unwrap()),
        vec![IndexEntry {
            original_length: 100,
            ..e
        }]
    );
}

#[test]
fn dedup_keeps_the_winner() {
    let a = entry("aa", "p1", 0);
    let newer_deleted = IndexEntry {
        timestamp_seconds: a.timestamp_seconds + 1,
        deleted: true,
        ..a.clone()
    };
    let idx = Index::parse(encode_index_v2([a.clone(), newer_deleted.clone()]).unwrap()).unwrap();
    assert_eq!(all(&idx), vec![newer_deleted.clone()]);
    let idx = Index::parse(encode_index_v2([newer_deleted.clone(), a]).unwrap()).unwrap();
    assert_eq!(all(&idx), vec![newer_deleted]);
}

#[test]
fn header_checks() {
    assert!(Index::parse(vec![]).is_err());
    assert!(Index::parse(vec![3; 40]).is_err());
    let good = encode_index_v2_stable([entry("aa", "p", 0)]).unwrap();
    for (at, value) in [
        (1, 1u8),
        (1, 34),
        (3, 15),
        (3, 20),
        (7, 2),
        (11, 9),
        (12, 3),
    ] {
        let mut bad = good.clone();
        bad[at] = value;
        assert!(Index::parse(bad).is_err(), "byte {at} = {value}");
    }
    // a pack name pointing past the end
    let mut bad = good.clone();
    let pack_info = bad.len() - 1 - 6 - 5;
    bad[pack_info + 4] = 0xff;
    assert!(Index::parse(bad).is_err());
    // the wrong key size is absent, not an error
    let idx = Index::parse(good).unwrap();
    assert_eq!(idx.get(&"aabb".parse().unwrap()).unwrap(), None);
}

/// Builds data like Kopia's testPackIndex: deleted and live contents, with and without
/// prefixes, many packs and formats.
fn kopia_like_entries(version: u8) -> Vec<IndexEntry> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for (kind, deleted) in [("deleted-packed", true), ("packed", false)] {
        for i in 0..100u32 {
            let h = Sha256::digest(format!("{kind}{i}"));
            let prefix = match i {
                _ if i % 5 == 0 => Some(b'm'),
                _ if i % 7 == 0 => Some(b'y'),
                _ if i % 2 == 0 => Some(b'x'),
                _ => None,
            };
            let r = |salt: u32| {
                let d = Sha256::digest(format!("{salt}-{i}"));
                u32::from_be_bytes([d[0], d[1], d[2], d[3]])
            };
            let packed = r(2) % (1 << 28);
            out.push(IndexEntry {
                content_id: ContentId::new(prefix, &h[..20]).unwrap(),
                pack_blob_id: hex::encode(Sha256::digest(i.to_string())).into(),
                pack_offset: r(1) & ((1 << 28) - 1),
                packed_length: packed,
                original_length: if version == 1 {
                    packed.wrapping_sub(27)
                } else {
                    r(4) & ((1 << 28) - 1)
                },
                timestamp_seconds: i64::from(r(3) >> 1),
                deleted,
                format_version: (i % 100) as u8,
                compression_header_id: if version == 1 { 0 } else { i % 100 },
                encryption_key_id: if version == 1 { 0 } else { (i % 100) as u8 },
            });
        }
    }
    out
}

#[test]
fn kopia_like_pack_index_both_versions() {
    for version in [1u8, 2] {
        let entries = kopia_like_entries(version);
        let b: IndexBuilder = entries.iter().cloned().collect();
        let stable = if version == 1 {
            b.encode_v1_stable()
        } else {
            b.encode_v2_stable()
        }
        .unwrap();
        // the same entries in another order encode identically
        let rev: IndexBuilder = entries.iter().rev().cloned().collect();
        let stable2 = if version == 1 {
            rev.encode_v1_stable()
        } else {
            rev.encode_v2_stable()
        }
        .unwrap();
        assert_eq!(stable, stable2);
        let idx = Index::parse_with_v1_overhead(stable.clone(), 27).unwrap();
        assert_eq!(idx.version(), version);
        for e in &entries {
            assert_eq!(idx.get(&e.content_id).unwrap().as_ref(), Some(e));
        }
        assert_eq!(all(&idx), b.clone().into_entries());
        for i in 0..100u32 {
            use sha2::{Digest, Sha256};
            let h = Sha256::digest(format!("no-such-content{i}"));
            for p in [None, Some(b'x'), Some(b'm')] {
                let id = ContentId::new(p, &h[..20]).unwrap();
                assert_eq!(idx.get(&id).unwrap(), None);
            }
        }
        fuzz(&stable, 3000);
    }
}

#[test]
fn iter_prefix_finds_exactly_the_prefixed_entries_in_both_versions() {
    let mut b = IndexBuilder::new();
    let ids = [
        "00112233445566778899aabbccddeeff",
        "ffeeddccbbaa99887766554433221100",
        "k00112233445566778899aabbccddeeff",
        "kffeeddccbbaa99887766554433221100",
        "m00112233445566778899aabbccddeeff",
        "m11112233445566778899aabbccddeeff",
        "x00112233445566778899aabbccddeeff",
    ];
    for (i, id) in ids.iter().enumerate() {
        b.add(entry(id, "p0", i as u32));
    }
    for bytes in [b.encode_v2_stable().unwrap(), b.encode_v1_stable().unwrap()] {
        let idx = Index::parse(bytes).unwrap();
        let got = |p: u8| -> Vec<String> {
            idx.iter_prefix(p)
                .map(|e| e.unwrap().content_id.to_string())
                .collect()
        };
        assert_eq!(got(b'm'), vec![ids[4].to_string(), ids[5].to_string()]);
        assert_eq!(got(b'k'), vec![ids[2].to_string(), ids[3].to_string()]);
        assert_eq!(got(b'x'), vec![ids[6].to_string()]);
        assert!(got(b'q').is_empty());
        assert!(got(b'z').is_empty());
    }
}

#[test]
fn content_ids_print_as_prefix_and_lowercase_hex_and_parse_back() {
    for len in 1..=32usize {
        let hash: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        for prefix in [None, Some(b'g'), Some(b'k'), Some(b'z')] {
            let id = ContentId::new(prefix, &hash).unwrap();
            let text = id.to_string();
            let want = format!(
                "{}{}",
                prefix.map(char::from).map(String::from).unwrap_or_default(),
                hex::encode(&hash)
            );
            assert_eq!(text, want, "{len} bytes, prefix {prefix:?}");
            assert_eq!(text.parse::<ContentId>().unwrap(), id);
            assert_eq!(format!("{id:?}"), format!("ContentId({want})"));
        }
    }
}

#[test]
fn borrowed_entries_encode_as_owned_ones_do() {
    // Out of order, with repeated ids (a deleted and a newer entry of one content), in both
    // versions: the same bytes as the owned encoders, but for the random suffix.
    let mut entries: Vec<IndexEntry> = (0..50u32)
        .map(|i| {
            let mut e = entry(&format!("{:02x}", (i * 37) % 50), &format!("p{}", i % 3), i);
            e.timestamp_seconds = 1_000 + i64::from(i % 7);
            e
        })
        .collect();
    let mut deleted = entries[3].clone();
    deleted.deleted = true;
    deleted.timestamp_seconds += 10;
    entries.push(deleted);
    entries.push(entries[5].clone());
    let stable = |mut v: Vec<u8>| {
        v.truncate(v.len() - RANDOM_SUFFIX_LEN);
        v
    };
    assert_eq!(
        stable(encode_index_refs(2, &entries).unwrap()),
        encode_index_v2_stable(entries.clone()).unwrap()
    );
    assert_eq!(
        stable(encode_index_refs(1, entries.iter()).unwrap()),
        encode_index_v1_stable(entries.clone()).unwrap()
    );
    assert!(encode_index_refs(3, &entries).is_err());
}
