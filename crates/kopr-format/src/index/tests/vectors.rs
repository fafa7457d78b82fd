//! Regression vectors (lengths and SHA-256 digests of kopr's encoding) and Kopia's sharding sizes.

use super::*;

/// Parameters of one regression vector. These were said to have been run through Kopia's own
/// builder (an index package "at the commit under /tmp/kopia", compiled as a stand-alone Go
/// program), but neither the commit nor the program was recorded, so the lengths and SHA-256
/// digests pinned below only guard kopr's current encoding against changes. Compatibility
/// evidence: `kopia_fixtures` in kopr-repo's tests re-encodes every index blob Kopia 0.23.1
/// wrote in the fixture repositories and compares the bytes.
struct Vector {
    name: &'static str,
    n: u32,
    hash_len: usize,
    pack_mod: u32,
    off_mod: u64,
    len_mod: u64,
    fmod: u32,
    cmod: u32,
    empty_pack_every: u32,
    version: u8,
}

fn vector_entries(p: &Vector) -> Vec<IndexEntry> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for i in 0..p.n {
        let h = Sha256::digest(format!("{}-{i}", p.name));
        let prefix = match i {
            _ if i % 5 == 0 => Some(b'm'),
            _ if i % 7 == 0 => Some(b'y'),
            _ if i % 2 == 0 => Some(b'x'),
            _ => None,
        };
        let pk = i % p.pack_mod;
        let ph = Sha256::digest(format!("pack-{pk}"));
        let mut pack = format!("p{}", hex::encode(&ph[..16]));
        if p.empty_pack_every > 0 && pk.is_multiple_of(p.empty_pack_every) {
            pack.clear();
        }
        let packed = (u64::from(i.wrapping_mul(40503).wrapping_add(7)) % p.len_mod) as u32;
        let e = IndexEntry {
            content_id: ContentId::new(prefix, &h[..p.hash_len]).unwrap(),
            pack_blob_id: pack.as_str().into(),
            pack_offset: (u64::from(i.wrapping_mul(2_654_435_761)) % p.off_mod) as u32,
            packed_length: packed,
            original_length: if p.version == 1 {
                packed
            } else {
                (u64::from(i.wrapping_mul(9973).wrapping_add(1)) % p.len_mod) as u32
            },
            timestamp_seconds: 1_600_000_000 + i64::from(i) * 37,
            deleted: i % 3 == 0,
            format_version: (i % p.fmod) as u8,
            compression_header_id: (i % p.cmod) * 0x100,
            encryption_key_id: 0,
        };
        if i % 11 == 0 {
            out.push(e.clone());
            out.push(IndexEntry {
                pack_blob_id: format!("q{pack}").into(),
                deleted: i % 2 == 0,
                ..e
            });
        } else {
            out.push(e);
        }
    }
    out
}

#[test]
fn bytes_match_the_regression_vectors() {
    use sha2::{Digest, Sha256};
    #[rustfmt::skip]
    let vectors = [
        (Vector { name: "small", n: 5, hash_len: 16, pack_mod: 3, off_mod: 1 << 30, len_mod: 1000, fmod: 1, cmod: 1, empty_pack_every: 0, version: 2 },
         5, 341, "3355ee83d56b7816f35097fffccf87e6bf831a06cb193f5c470e3a620b52546b"),
        (Vector { name: "medium", n: 1000, hash_len: 32, pack_mod: 50, off_mod: 1 << 30, len_mod: 1 << 28, fmod: 3, cmod: 5, empty_pack_every: 0, version: 2 },
         1000, 55606, "1e78fb4737acb317431377cd35d1bf9803b7adc590cc444c51f4ec0b26c359b9"),
        (Vector { name: "manypacks", n: 70000, hash_len: 16, pack_mod: 70000, off_mod: 1 << 20, len_mod: 1 << 24, fmod: 1, cmod: 1, empty_pack_every: 0, version: 2 },
         70000, 5114266, "c062c8a3671916b65ee2ae4407bca340c1ddf5624cf684cef74e233761c34948"),
        (Vector { name: "emptypacks", n: 10, hash_len: 16, pack_mod: 4, off_mod: 1 << 30, len_mod: 1000, fmod: 1, cmod: 1, empty_pack_every: 2, version: 2 },
         10, 440, "686bdaa9daaa0b04f491101b8516c97d7a2544fb64236c93fa8638ccebd02a07"),
        (Vector { name: "v1", n: 1000, hash_len: 20, pack_mod: 50, off_mod: 1 << 31, len_mod: 1 << 31, fmod: 4, cmod: 1, empty_pack_every: 0, version: 1 },
         1000, 44052, "8d765e8aec0860e10b447883a0b1d2536ecd0b2b6ffc6bedb6a3ba2ed4ce4aab"),
        (Vector { name: "v1small", n: 3, hash_len: 4, pack_mod: 2, off_mod: 1 << 31, len_mod: 1 << 31, fmod: 1, cmod: 1, empty_pack_every: 0, version: 1 },
         3, 183, "35217d4b568ee567f01240a1cf0b91667a4dbec59164df60a430db85ceb04376"),
    ];
    for (v, count, len, digest) in vectors {
        let entries = vector_entries(&v);
        let b: IndexBuilder = entries.iter().cloned().collect();
        assert_eq!(b.len(), count, "{}", v.name);
        let bytes = if v.version == 1 {
            b.encode_v1_stable()
        } else {
            b.encode_v2_stable()
        }
        .unwrap();
        assert_eq!(bytes.len(), len, "{}", v.name);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), digest, "{}", v.name);
        let idx = Index::parse(bytes).unwrap();
        assert_eq!(all(&idx), b.into_entries(), "{}", v.name);
    }
}

/// The complete bytes of the "small" regression vector (provenance as for [`Vector`]).
#[test]
fn small_vector_full_bytes() {
    #[rustfmt::skip]
    let v = Vector { name: "small", n: 5, hash_len: 16, pack_mod: 3, off_mod: 1 << 30, len_mod: 1000, fmod: 1, cmod: 1, empty_pack_every: 0, version: 2 };
    let want = hex::decode(concat!(
        "021100100000000500000004010000000000bddd721d34e6f50073cdec77f2c60a925f5e106f9aa66d13",
        "000398000204000000fb5152e8e341db2eebdf15e76874fefe5f5e10251e3779b10003ce0001fe00016d",
        "0329bba3a322efdd7e7e4e08791e82d25f5e1000800000000000010000070002785df37a575fe9c8aa18",
        "fc15390128fdf75f5e104a3c6ef3620003b300000d000378e8537d458a25a621d7a1ccfa92889ff25f5e",
        "109438dde6c400037d000013000121000000d021000000f12200000112210000013400000000000070",
        "386338386163386362303539643137346164393833613366313631363936646270366538303834373066",
        "656631326465393634613863396134343663316436306671703863383861633863623035396431373461",
        "643938336133663136313639366462706263333264326266646134386431343239373331656562353938",
        "393237323831",
    ))
    .unwrap();
    assert_eq!(encode_index_v2_stable(vector_entries(&v)).unwrap(), want);
    #[rustfmt::skip]
    let v1 = Vector { name: "v1small", n: 3, hash_len: 4, pack_mod: 2, off_mod: 1 << 31, len_mod: 1 << 31, fmod: 1, cmod: 1, empty_pack_every: 0, version: 1 };
    let want = hex::decode(concat!(
        "0105001400000003005c6dbaae00005f5e10250021000000531e3779b100009e3e6dc9f3422f00005f5e",
        "1000002200000074800000000000000778a7c24c1900005f5e104a0021000000963c6ef36200013c7570",
        "366538303834373066656631326465393634613863396134343663316436306671703863383861633863",
        "623035396431373461643938336133663136313639366462703863383861633863623035396431373461",
        "643938336133663136313639366462",
    ))
    .unwrap();
    assert_eq!(encode_index_v1_stable(vector_entries(&v1)).unwrap(), want);
}

/// The encoder numbers packs by the address of a name's text when it has seen that address:
/// entries whose names share one allocation per pack (as a writer's do), each their own (as
/// in the vectors), or some of each, encode to the same pinned bytes, in both versions and
/// with more than 2^16 packs.
#[test]
fn shared_and_separate_pack_names_encode_alike() {
    use sha2::{Digest, Sha256};
    #[rustfmt::skip]
    let vectors = [
        (Vector { name: "medium", n: 1000, hash_len: 32, pack_mod: 50, off_mod: 1 << 30, len_mod: 1 << 28, fmod: 3, cmod: 5, empty_pack_every: 0, version: 2 },
         "1e78fb4737acb317431377cd35d1bf9803b7adc590cc444c51f4ec0b26c359b9"),
        (Vector { name: "manypacks", n: 70000, hash_len: 16, pack_mod: 70000, off_mod: 1 << 20, len_mod: 1 << 24, fmod: 1, cmod: 1, empty_pack_every: 0, version: 2 },
         "c062c8a3671916b65ee2ae4407bca340c1ddf5624cf684cef74e233761c34948"),
        (Vector { name: "emptypacks", n: 10, hash_len: 16, pack_mod: 4, off_mod: 1 << 30, len_mod: 1000, fmod: 1, cmod: 1, empty_pack_every: 2, version: 2 },
         "686bdaa9daaa0b04f491101b8516c97d7a2544fb64236c93fa8638ccebd02a07"),
        (Vector { name: "v1", n: 1000, hash_len: 20, pack_mod: 50, off_mod: 1 << 31, len_mod: 1 << 31, fmod: 4, cmod: 1, empty_pack_every: 0, version: 1 },
         "8d765e8aec0860e10b447883a0b1d2536ecd0b2b6ffc6bedb6a3ba2ed4ce4aab"),
    ];
    for (v, digest) in vectors {
        let separate = vector_entries(&v);
        let mut names: std::collections::HashMap<String, crate::BlobId> = Default::default();
        let shared: Vec<IndexEntry> = separate
            .iter()
            .map(|e| IndexEntry {
                pack_blob_id: names
                    .entry(e.pack_blob_id.to_string())
                    .or_insert_with(|| e.pack_blob_id.clone())
                    .clone(),
                ..e.clone()
            })
            .collect();
        let mixed: Vec<IndexEntry> = shared
            .iter()
            .zip(&separate)
            .enumerate()
            .map(|(i, (a, b))| if i % 3 == 0 { b.clone() } else { a.clone() })
            .collect();
        if v.pack_mod < v.n {
            assert!(names.len() < separate.len(), "{}: names are shared", v.name);
        }
        for (how, entries) in [
            ("separate", &separate),
            ("shared", &shared),
            ("mixed", &mixed),
        ] {
            let bytes = encode_index_refs(u32::from(v.version), entries.iter()).unwrap();
            let stable = &bytes[..bytes.len() - RANDOM_SUFFIX_LEN];
            assert_eq!(
                hex::encode(Sha256::digest(stable)),
                digest,
                "{} {how}",
                v.name
            );
        }
    }
}

/// Kopia's sharding (FNV-1a of the id text, modulo the shard count) gives these sizes.
#[test]
fn shard_sizes_match_kopia() {
    use sha2::{Digest, Sha256};
    let b: IndexBuilder = (0..10_000)
        .map(|i| {
            let h = Sha256::digest(format!("shard-{i}"));
            IndexEntry {
                content_id: ContentId::new(None, &h[..16]).unwrap(),
                ..entry("00", "", 0)
            }
        })
        .collect();
    for (size, want) in [
        (
            500,
            vec![
                459, 470, 477, 483, 486, 487, 492, 492, 496, 496, 498, 500, 501, 515, 516, 520,
                522, 526, 532, 532,
            ],
        ),
        (2000, vec![1961, 1963, 2012, 2018, 2046]),
    ] {
        let mut lens: Vec<usize> = b
            .clone()
            .shard(size)
            .unwrap()
            .iter()
            .map(IndexBuilder::len)
            .collect();
        lens.sort_unstable();
        assert_eq!(lens, want);
    }
}
