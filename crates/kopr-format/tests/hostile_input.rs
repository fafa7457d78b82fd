//! Hostile input: every parser of data read from storage, fed valid samples with random
//! damage (bit flips, truncation, insertion, splices) and arbitrary bytes, returns an error
//! or a value; none panics, none writes past its output cap. The same samples seed the
//! cargo-fuzz corpora in `fuzz/corpus/` (regenerate with
//! `cargo test -p kopr-format --test hostile_input -- --ignored write_fuzz_seeds`).

use kopr_format::compression;
use kopr_format::hostile::{parse, FUZZ_KEY, TARGETS};
use kopr_format::index::{IndexBuilder, IndexEntry};
use kopr_format::maintenance::Schedule;
use kopr_format::manifest::{encode_batch, ManifestEntry};
use kopr_format::object_id::{encode_indirect, IndirectEntry, ObjectId};
use kopr_format::pack::Postamble;
use kopr_format::repository_blob::{RepositoryBlob, RepositoryConfig};
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, Permissions, DIRECTORY_STREAM};
use proptest::prelude::*;

fn content(n: u8) -> kopr_format::index::ContentId {
    kopr_format::index::ContentId::new(None, &[n; 16]).unwrap()
}

fn samples(target: &str) -> Vec<Vec<u8>> {
    match target {
        "repository_blob" => {
            let mut b = RepositoryBlob::new("kopr", "0.1", "testing-only-insecure");
            let cfg = RepositoryConfig::new_default(
                "BLAKE2B-256-128",
                "AES256-GCM-HMAC-SHA256",
                "DYNAMIC-4M-BUZHASH",
            );
            b.encrypt_config(&cfg, &FUZZ_KEY).unwrap();
            vec![b.to_bytes()]
        }
        "index" => {
            let mut bld = IndexBuilder::new();
            for i in 0..20u8 {
                bld.add(IndexEntry {
                    content_id: content(i),
                    pack_blob_id: format!("p{:032x}", i % 3),
                    pack_offset: u32::from(i) * 100,
                    packed_length: 100,
                    original_length: 80,
                    timestamp_seconds: 1_700_000_000 + i64::from(i),
                    deleted: i % 5 == 0,
                    format_version: 2,
                    compression_header_id: 0,
                    encryption_key_id: 0,
                });
            }
            vec![
                bld.encode_v2_stable().unwrap(),
                bld.encode_v1_stable().unwrap(),
            ]
        }
        "pack_postamble" => {
            let mut pack = vec![0u8; 64];
            pack.extend_from_slice(&[1, 2, 3, 4, 5]);
            let p = Postamble {
                local_index_iv: vec![9; 16],
                local_index_offset: 64,
                local_index_length: 5,
            };
            pack.extend_from_slice(&p.to_bytes().unwrap());
            vec![pack]
        }
        "manifest_batch" => {
            let e = ManifestEntry {
                id: "0123456789abcdef0123456789abcdef".into(),
                labels: [("type".to_string(), "snapshot".to_string())].into(),
                modified: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
                deleted: false,
                data: serde_json::value::RawValue::from_string("{\"a\":1}".into()).unwrap(),
            };
            vec![encode_batch(&[e]).unwrap()]
        }
        "directory" => {
            let d = DirManifest {
                stream: DIRECTORY_STREAM.into(),
                entries: vec![DirEntry {
                    name: "f".into(),
                    entry_type: EntryType::File,
                    permissions: Permissions(0o644),
                    file_size: 3,
                    mod_time: 1_700_000_000_000_000_000,
                    user_id: 1,
                    group_id: 1,
                    object_id: ObjectId::direct(content(1)),
                    dir_summary: None,
                }],
                summary: None,
            };
            vec![d.encode()]
        }
        "decompress" => {
            let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
            compression::all()
                .iter()
                .filter(|c| c.is_supported())
                .map(|c| {
                    let mut out = Vec::new();
                    c.compress(&data, &mut out).unwrap();
                    out
                })
                .collect()
        }
        "indirect" => {
            let entries = vec![
                IndirectEntry {
                    start: 0,
                    length: 10,
                    object: ObjectId::direct(content(2)),
                },
                IndirectEntry {
                    start: 10,
                    length: 5,
                    object: ObjectId::direct(content(3)),
                },
            ];
            vec![encode_indirect(&entries)]
        }
        "ids" => vec![
            ObjectId::direct(content(4)).to_string().into_bytes(),
            format!("I{}", ObjectId::direct(content(5))).into_bytes(),
            format!("k{}", hex::encode([6u8; 16])).into_bytes(),
        ],
        "schedule" => {
            let mut s = Schedule {
                next_full: chrono::DateTime::from_timestamp(1_700_000_000, 0),
                ..Default::default()
            };
            s.report_run(
                "snapshot-gc",
                kopr_format::maintenance::RunInfo {
                    start: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                    end: chrono::DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
                    success: true,
                    error: String::new(),
                    extra: None,
                },
            );
            vec![s.seal_with_nonce(&FUZZ_KEY, &[3; 12]).unwrap()]
        }
        other => panic!("no samples for {other}"),
    }
}

#[test]
fn every_target_has_samples_that_parse() {
    for t in TARGETS {
        for s in samples(t) {
            assert!(parse(t, &s), "a valid {t} sample must parse");
        }
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, m)| Damage::Flip(i, m)),
        any::<usize>().prop_map(Damage::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        (
            any::<usize>(),
            proptest::collection::vec(
                prop_oneof![Just(0u8), Just(0xff), Just(0x7f), any::<u8>()],
                1..12
            )
        )
            .prop_map(|(i, b)| Damage::Overwrite(i, b)),
    ]
}

fn apply(mut data: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        if data.is_empty() {
            break;
        }
        match d {
            Damage::Flip(i, m) => {
                let i = i % data.len();
                data[i] ^= m;
            }
            Damage::Truncate(i) => data.truncate(i % data.len()),
            Damage::Insert(i, b) => {
                let i = i % (data.len() + 1);
                data.splice(i..i, b.iter().copied());
            }
            Damage::Overwrite(i, b) => {
                let i = i % data.len();
                for (k, v) in b.iter().enumerate() {
                    if let Some(x) = data.get_mut(i + k) {
                        *x = *v;
                    }
                }
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_samples_never_panic(
        t in 0..TARGETS.len(),
        pick in any::<usize>(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let target = TARGETS[t];
        let s = samples(target);
        let data = apply(s[pick % s.len()].clone(), &damages);
        let _ = parse(target, &data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(t in 0..TARGETS.len(), data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(TARGETS[t], &data);
    }
}

#[test]
#[ignore = "writes the fuzz seed corpora"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for t in TARGETS {
        let dir = root.join(t);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in samples(t).into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
