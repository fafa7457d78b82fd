//! Hostile input: deterministic mutations and truncations never panic; proptest round trips.

use super::*;

/// Deterministic mutations in the style of Kopia's fuzz test: flip a few bytes, insert and
/// delete short runs; parsing and reading must never panic.
pub(super) fn fuzz(original: &[u8], rounds: u32) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    for _ in 0..rounds {
        let mut d = original.to_vec();
        for _ in 0..next(3) {
            let at = next(d.len());
            d[at] = next(256) as u8;
        }
        for _ in 0..next(3) {
            let at = next(d.len());
            let ins: Vec<u8> = (0..next(20)).map(|_| next(256) as u8).collect();
            d.splice(at..at, ins);
        }
        for _ in 0..next(3) {
            let at = next(d.len());
            let n = next(10);
            if at + n <= d.len() {
                d.drain(at..at + n);
            }
        }
        exercise(d);
    }
}

fn exercise(d: Vec<u8>) {
    if let Ok(idx) = Index::parse_with_v1_overhead(d, 27) {
        let ids: Vec<ContentId> = idx
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.content_id)
            .take(10)
            .collect();
        for id in ids {
            let _ = idx.get(&id);
        }
        let _ = idx.get(&"00112233445566778899aabbccddeeff00112233".parse().unwrap());
    }
}

#[test]
fn truncations_and_flips_never_panic() {
    for version in [1u8, 2] {
        let entries = kopia_like_entries(version);
        let good = if version == 1 {
            encode_index_v1_stable(entries)
        } else {
            encode_index_v2_stable(entries)
        }
        .unwrap();
        for n in 0..good.len() {
            exercise(good[..n].to_vec());
        }
        for i in 0..good.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= x;
                exercise(bad);
            }
        }
    }
}

fn arb_entry(hash_len: usize) -> impl Strategy<Value = IndexEntry> {
    (
        proptest::option::of(b'g'..=b'z'),
        proptest::collection::vec(any::<u8>(), hash_len),
        prop_oneof![0u32..5, 0u32..100_000],
        prop_oneof![0u32..1000, 0u32..(1 << 30)],
        prop_oneof![0u32..(1 << 24), 0u32..(1 << 28)],
        prop_oneof![0u32..(1 << 24), 0u32..(1 << 28)],
        prop_oneof![0i64..3, 0i64..=i64::from(u32::MAX)],
        any::<bool>(),
        prop_oneof![Just(0u32), Just(0x1100), Just(0x1300), any::<u32>()],
        0u8..3,
        0u8..2,
    )
        .prop_map(
            |(p, h, pack, off, pl, ol, ts, del, comp, fv, key)| IndexEntry {
                content_id: ContentId::new(p, &h).unwrap(),
                pack_blob_id: if pack == 4 {
                    Default::default()
                } else {
                    format!("p{pack:x}-s1").into()
                },
                pack_offset: off,
                packed_length: pl,
                original_length: ol,
                timestamp_seconds: ts,
                deleted: del,
                format_version: fv,
                compression_header_id: comp,
                encryption_key_id: key,
            },
        )
}

fn arb_entries() -> impl Strategy<Value = Vec<IndexEntry>> {
    prop_oneof![Just(1usize), Just(4), Just(20), Just(32)].prop_flat_map(|n| {
        proptest::collection::vec(arb_entry(n), 1..150).prop_map(|mut v| {
            // repeat some ids with other details to exercise deduplication
            let extra: Vec<IndexEntry> = v
                .iter()
                .step_by(7)
                .map(|e| IndexEntry {
                    timestamp_seconds: e.timestamp_seconds ^ 1,
                    deleted: !e.deleted,
                    ..e.clone()
                })
                .collect();
            v.extend(extra);
            v
        })
    })
}

fn expected(entries: &[IndexEntry]) -> BTreeMap<ContentId, IndexEntry> {
    let mut m: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
    for e in entries {
        match m.get(&e.content_id) {
            Some(old) if !pick_winner(e, old) => {}
            _ => {
                m.insert(e.content_id, e.clone());
            }
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn v2_round_trip(entries in arb_entries(), absent in proptest::collection::vec(any::<u8>(), 1..=32)) {
        let want = expected(&entries);
        let bytes = encode_index_v2(entries.clone()).unwrap();
        let idx = Index::parse(bytes).unwrap();
        prop_assert_eq!(idx.len(), want.len());
        let got: Vec<IndexEntry> = idx.iter().collect::<Result<_>>().unwrap();
        let want_list: Vec<IndexEntry> = want.values().cloned().collect();
        prop_assert_eq!(&got, &want_list);
        for e in want.values() {
            let found = idx.get(&e.content_id).unwrap();
            prop_assert_eq!(found.as_ref(), Some(e));
        }
        for p in [None, Some(b'k')] {
            let id = ContentId::new(p, &absent).unwrap();
            let found = idx.get(&id).unwrap();
            prop_assert_eq!(found.as_ref(), want.get(&id));
        }
    }

    #[test]
    fn v1_round_trip(entries in arb_entries()) {
        let entries: Vec<IndexEntry> = entries
            .into_iter()
            .map(|e| IndexEntry {
                compression_header_id: 0,
                encryption_key_id: 0,
                original_length: e.packed_length.wrapping_sub(27),
                pack_blob_id: if e.pack_blob_id.is_empty() { "p".into() } else { e.pack_blob_id },
                ..e
            })
            .collect();
        let want: Vec<IndexEntry> = expected(&entries).into_values().collect();
        let idx = Index::parse_with_v1_overhead(encode_index_v1(entries).unwrap(), 27).unwrap();
        let got: Vec<IndexEntry> = idx.iter().collect::<Result<_>>().unwrap();
        prop_assert_eq!(&got, &want);
        for e in &want {
            let found = idx.get(&e.content_id).unwrap();
            prop_assert_eq!(found.as_ref(), Some(e));
        }
    }

    #[test]
    fn id_order_is_text_order(a in arb_entry(3), b in arb_entry(3), n in 1usize..=32, m in 1usize..=32) {
        prop_assert_eq!(
            a.content_id.cmp(&b.content_id),
            a.content_id.to_string().cmp(&b.content_id.to_string())
        );
        // different hash lengths too
        let x = ContentId::new(a.content_id.prefix(), &[a.content_id.hash()[0]; 32][..n]).unwrap();
        let y = ContentId::new(b.content_id.prefix(), &[b.content_id.hash()[0]; 32][..m]).unwrap();
        prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        prop_assert_eq!(x.to_string().parse::<ContentId>().unwrap(), x);
    }

    #[test]
    fn random_mutations_never_panic(entries in arb_entries(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut bytes = encode_index_v2_stable(entries).unwrap();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let n = bytes.len();
        bytes.truncate(n - cut % (n / 4 + 1));
        exercise(bytes);
    }
}
