//! Hostile input: every parser of data read from storage, fed valid samples with random
//! damage (bit flips, truncation, insertion, splices) and arbitrary bytes, returns an error
//! or a value; none panics, none writes past its output cap. The same samples seed the
//! cargo-fuzz corpora in `fuzz/corpus/` (regenerate with
//! `cargo test -p kopr-format --test hostile_input -- --ignored write_fuzz_seeds`).

use kopr_format::blob_crypto::encrypt_blob;
use kopr_format::compression;
use kopr_format::encryption::{supported_encryption_algorithms, Encryptor};
use kopr_format::hashing::Hasher;
use kopr_format::hostile::{
    ecc_coder, join_blob_input, parse, split_blob_input, ECC_OVERHEADS, FUZZ_KEY, TARGETS,
};
use kopr_format::index::{IndexBuilder, IndexEntry};
use kopr_format::maintenance::Schedule;
use kopr_format::manifest::{encode_batch, ManifestEntry};
use kopr_format::object_id::{encode_indirect, IndirectEntry, ObjectId};
use kopr_format::pack::Postamble;
use kopr_format::repository_blob::{RepositoryBlob, RepositoryConfig};
use kopr_format::session::{generate_session_id, SessionInfo};
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, Permissions, DIRECTORY_STREAM};
use proptest::prelude::*;

fn content(n: u8) -> kopr_format::index::ContentId {
    kopr_format::index::ContentId::new(None, &[n; 16]).unwrap()
}

fn samples(target: &str) -> Vec<Vec<u8>> {
    // Routes to the samples of each target only.
    match target {
        "repository_blob" => repository_blob_samples(),
        "index" => index_samples(),
        "pack_postamble" => pack_postamble_samples(),
        "manifest_batch" => manifest_batch_samples(),
        "directory" => directory_samples(),
        "decompress" => decompress_samples(),
        "ecc" => ecc_samples(),
        "indirect" => indirect_samples(),
        "ids" => ids_samples(),
        "schedule" => schedule_samples(),
        "blob_decrypt" => blob_decrypt_samples(),
        "session_marker" => session_marker_samples(),
        other => panic!("no samples for {other}"),
    }
}

fn repository_blob_samples() -> Vec<Vec<u8>> {
    let mut b = RepositoryBlob::new("kopr", "0.1", "testing-only-insecure");
    let cfg = RepositoryConfig::new_default(
        "BLAKE2B-256-128",
        "AES256-GCM-HMAC-SHA256",
        "DYNAMIC-4M-BUZHASH",
    );
    b.encrypt_config(&cfg, &FUZZ_KEY).unwrap();
    vec![b.to_bytes()]
}

fn index_samples() -> Vec<Vec<u8>> {
    let mut bld = IndexBuilder::new();
    for i in 0..20u8 {
        bld.add(IndexEntry {
            content_id: content(i),
            pack_blob_id: format!("p{:032x}", i % 3).into(),
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

fn pack_postamble_samples() -> Vec<Vec<u8>> {
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

fn manifest_batch_samples() -> Vec<Vec<u8>> {
    let e = ManifestEntry {
        id: "0123456789abcdef0123456789abcdef".into(),
        labels: [("type".to_string(), "snapshot".to_string())].into(),
        modified: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
        deleted: false,
        data: serde_json::value::RawValue::from_string("{\"a\":1}".into()).unwrap(),
    };
    vec![encode_batch(&[e]).unwrap()]
}

fn directory_samples() -> Vec<Vec<u8>> {
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

fn decompress_samples() -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    compression::all()
        .iter()
        .filter(|c| c.is_supported())
        .map(|c| {
            let mut out = Vec::new();
            c.compress(&data, &mut out).unwrap();
            out
        })
        // lz4, read only: "abc" + a 20-byte match + "XYZ!!" + stored "tail", checksummed
        .chain([hex::decode(
            "0000140004224d186470b90d0000003f6162630300015058595a21210400008074\
                 61696c000000001bf09543",
        )
        .unwrap()])
        .collect()
}

fn ecc_samples() -> Vec<Vec<u8>> {
    (0..ECC_OVERHEADS.len() as u8)
        .flat_map(|sel| {
            [0usize, 5, 300, 9000].map(|len| {
                let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let mut out = vec![sel];
                ecc_coder(sel).encode(&data, &mut out);
                out
            })
        })
        .collect()
}

fn indirect_samples() -> Vec<Vec<u8>> {
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

fn ids_samples() -> Vec<Vec<u8>> {
    vec![
        ObjectId::direct(content(4)).to_string().into_bytes(),
        format!("I{}", ObjectId::direct(content(5))).into_bytes(),
        format!("k{}", hex::encode([6u8; 16])).into_bytes(),
    ]
}

fn schedule_samples() -> Vec<Vec<u8>> {
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

fn blob_decrypt_samples() -> Vec<Vec<u8>> {
    let hasher = Hasher::new("BLAKE2B-256-128", &FUZZ_KEY).unwrap();
    let mut out = Vec::new();
    for alg in supported_encryption_algorithms() {
        let enc = Encryptor::new(alg, &FUZZ_KEY).unwrap();
        let marker = session_info().encode().unwrap();
        for (payload, prefix, suffix) in [
            (
                &b"index blob payload"[..],
                "xn0_",
                "s0123456789abcdef12e-c1",
            ),
            (&marker[..], "s", session_info().id.as_str()),
            (&[][..], "_log_", ""),
        ] {
            let (id, blob) = encrypt_blob(&hasher, &enc, payload, prefix, suffix).unwrap();
            out.push(join_blob_input(alg, &id, &blob).unwrap());
        }
    }
    out
}

fn session_marker_samples() -> Vec<Vec<u8>> {
    vec![
        session_info().encode().unwrap(),
        // Kopia's own spelling (fractional seconds, offset) and an unknown field.
        br#"{"id":"s0123456789abcdef12e","startTime":"2024-11-02T10:00:00.123456789+01:00","checkpointTime":"2024-11-02T10:05:00Z","username":"u","hostname":"h","extra":[1]}"#.to_vec(),
    ]
}

fn session_info() -> SessionInfo {
    assert_eq!(generate_session_id(chrono::Utc::now()).len(), 20);
    let t = chrono::DateTime::from_timestamp(1_730_505_600, 0).unwrap();
    SessionInfo {
        // fixed, so the seeds are the same on every run (a generated id has this shape)
        id: "s0011223344556677129".into(),
        start_time: t,
        checkpoint_time: t,
        user: "user".into(),
        host: "host".into(),
    }
}

/// Inputs that must not parse, per target (also written as fuzz seeds).
fn garbage(target: &str) -> Vec<Vec<u8>> {
    let mut g = vec![Vec::new(), vec![0u8; 64], vec![0xffu8; 300]];
    match target {
        "blob_decrypt" => {
            // a valid frame around an id too short for an IV, one that is not hex, one cut in
            // a multi-byte character, and a ciphertext shorter than nonce + tag
            g.push(join_blob_input("AES256-GCM-HMAC-SHA256", "xn0", &[1; 40]).unwrap());
            g.push(join_blob_input("AES256-GCM-HMAC-SHA256", &"z".repeat(40), &[1; 40]).unwrap());
            g.push(join_blob_input("AES256-GCM-HMAC-SHA256", &"é".repeat(20), &[1; 40]).unwrap());
            g.push(join_blob_input("AES256-GCM-HMAC-SHA256", &"a".repeat(32), &[1; 27]).unwrap());
            g.push(vec![1, 255, b'a']);
        }
        "session_marker" => {
            for j in [
                &b"{}"[..],
                b"null",
                b"[1,2",
                br#"{"id":"s1","startTime":"yesterday","checkpointTime":"2024-11-02T10:05:00Z","username":"u","hostname":"h"}"#,
                br#"{"id":"s1","startTime":"+999999-01-01T00:00:00Z","checkpointTime":"2024-11-02T10:05:00Z","username":"u","hostname":"h"}"#,
                br#"{"id":7,"startTime":"2024-11-02T10:05:00Z","checkpointTime":"2024-11-02T10:05:00Z","username":"u","hostname":"h"}"#,
            ] {
                g.push(j.to_vec());
            }
        }
        _ => {}
    }
    g
}

#[test]
fn garbage_never_parses_as_a_blob_or_marker() {
    for t in ["blob_decrypt", "session_marker"] {
        for (i, g) in garbage(t).iter().enumerate() {
            assert!(!parse(t, g), "garbage {i} of {t} parsed");
        }
    }
}

#[test]
fn blob_inputs_split_as_joined() {
    let j = join_blob_input("CHACHA20-POLY1305-HMAC-SHA256", "abc", b"xyz").unwrap();
    let (alg, id, payload) = split_blob_input(&j).unwrap();
    assert_eq!(
        (alg, id.as_str(), payload),
        ("CHACHA20-POLY1305-HMAC-SHA256", "abc", &b"xyz"[..])
    );
    assert!(split_blob_input(&[0]).is_none());
    // an id length past the end takes what is there
    let (_, id, payload) = split_blob_input(&[0, 200, b'a', b'b']).unwrap();
    assert_eq!((id.as_str(), payload), ("ab", &[][..]));
    assert!(join_blob_input("NONE", "a", b"").is_none());
    assert!(join_blob_input("AES256-GCM-HMAC-SHA256", &"a".repeat(256), b"").is_none());
}

#[test]
fn decrypted_blobs_match_what_was_sealed() {
    // The valid samples are real blobs: they open to the exact payload, under the id only.
    let enc = Encryptor::new("AES256-GCM-HMAC-SHA256", &FUZZ_KEY).unwrap();
    let s = samples("blob_decrypt");
    let (_, id, blob) = split_blob_input(&s[1]).unwrap();
    let info = SessionInfo::open(&enc, &id, blob).unwrap();
    assert!(id.ends_with(&info.id));
    let (_, other_id, _) = split_blob_input(&s[0]).unwrap();
    assert!(kopr_format::blob_crypto::decrypt_blob(&enc, blob, &other_id).is_err());
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

/// Writes samples and garbage as the seed corpus of every target that has none yet (the
/// committed corpora are minimized fuzz output; delete one to seed it afresh).
#[test]
#[ignore = "writes the fuzz seed corpora"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for t in TARGETS {
        let dir = root.join(t);
        let seeded = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
        if seeded {
            continue;
        }
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in samples(t).into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
        for (i, g) in garbage(t).into_iter().enumerate() {
            std::fs::write(dir.join(format!("garbage-{i}")), g).unwrap();
        }
    }
}
