use sha2::{Digest, Sha256};

use super::*;

/// The index blob `x/n0_/4dd663e58c87b8b4d89b7f6e88b64e63-s1e131d60d880615c147-c1` of the Kopia
/// 0.23.1 fixture `ecc` (REED-SOLOMON-CRC32, 2%): 232 bytes, the small class (6 data and 2
/// parity shards of 25 bytes).
const FIXTURE_INDEX_BLOB: &str = "\
9954b30b9f0d481e5a2e688df30bf3a19edef3662f740e190e50aabe93f3139a0828a4ca22a0dc1c3e07dcf33516dd1d\
19882757ce15ea07071a4fc349480000008fe52ad88087fc9a1fea47ea99109d60688b8829b139bcd055c0468eb33b5c\
bba56ef31a1205dea7d40b75ab8988c0ad411967d53983f582370b582ed3bfe8d517deb930d45ea7613c37a932bd3ae3\
221778b02c54c546d1f3e12a2604887f2dc4463c23cc738288fba0de5afbfa2c16c8a5611f4a52fc579f45894c059ba7\
2feb4d14f10a3cd621a80ea139109a82b4634bccadcb0c1427651fd3d69d82223ef41ca554000000";

/// What the blob holds under its ECC: the AEAD-sealed index (143 bytes; sha256, and its first
/// bytes, the nonce, decoded independently of this module from the layout).
const FIXTURE_SEALED_LEN: usize = 143;
const FIXTURE_SEALED_SHA256: &str =
    "71429ae438a251125d0447002976e45e673372c731fdfff890ef21e7669ded31";

fn pattern(len: usize) -> Vec<u8> {
    // Kopia's ECC tests fill their input this way.
    (0..len).map(|i| (i % 255) as u8 + 1).collect()
}

fn round_trip(ecc: &ReedSolomonCrc32, input: &[u8]) -> Vec<u8> {
    let mut enc = vec![0xee; 3];
    ecc.encode(input, &mut enc);
    assert_eq!(&enc[..3], &[0xee; 3], "encode appends");
    let enc = enc.split_off(3);
    assert_eq!(
        enc.len(),
        ecc.encoded_len(input.len()),
        "len {}",
        input.len()
    );
    let mut out = b"keep".to_vec();
    assert_eq!(ecc.decode(&enc, &mut out).unwrap(), 0);
    assert_eq!(&out[..4], b"keep", "decode appends");
    assert!(out[4..] == *input, "round trip of {} bytes", input.len());
    enc
}

#[test]
fn decodes_a_real_kopia_blob_and_re_encodes_it_byte_for_byte() {
    let blob = hex::decode(FIXTURE_INDEX_BLOB).unwrap();
    assert_eq!(blob.len(), 232);
    let ecc = ReedSolomonCrc32::new(2).unwrap();
    let mut sealed = Vec::new();
    assert_eq!(ecc.decode(&blob, &mut sealed).unwrap(), 0);
    assert_eq!(sealed.len(), FIXTURE_SEALED_LEN);
    assert_eq!(hex::encode(Sha256::digest(&sealed)), FIXTURE_SEALED_SHA256);
    assert_eq!(hex::encode(&sealed[..12]), "e52ad88087fc9a1fea47ea99");
    // Same parity (Backblaze's matrix, as klauspost/reedsolomon) and layout as Kopia's.
    let mut again = Vec::new();
    ecc.encode(&sealed, &mut again);
    assert_eq!(again, blob);
}

#[test]
fn a_damaged_real_blob_is_repaired() {
    let blob = hex::decode(FIXTURE_INDEX_BLOB).unwrap();
    let ecc = ReedSolomonCrc32::new(2).unwrap();
    let mut want = Vec::new();
    ecc.decode(&blob, &mut want).unwrap();
    // 2 parity shards of 4+25 bytes, then 6 data shards: wreck data shards 0 and 4.
    let mut bad = blob.clone();
    for b in &mut bad[58 + 4..58 + 29] {
        *b ^= 0x5a;
    }
    bad[58 + 4 * 29 + 10] ^= 1;
    let mut out = Vec::new();
    assert_eq!(ecc.decode(&bad, &mut out).unwrap(), 2);
    assert_eq!(out, want);
    // a third damaged shard (parity 1) is one too many
    bad[30] ^= 0x80;
    let mut out = b"x".to_vec();
    let err = ecc.decode(&bad, &mut out).unwrap_err();
    assert!(
        err.to_string()
            .contains("block 0 has 3 damaged shards of 8, only 2 can be rebuilt"),
        "{err}"
    );
    assert_eq!(out, b"x");
}

#[test]
fn shard_counts_follow_kopias_rule() {
    // Kopia's repo/ecc/ecc_utils_test.go TestComputeShares.
    assert_eq!(compute_shards(0.1), (254, 2));
    assert_eq!(compute_shards(1.0), (200, 2));
    assert_eq!(compute_shards(2.0), (128, 2));
    assert_eq!(compute_shards(10.0), (128, 12));
    // Whole coders: 2% is the fixture's (164 data shards: its log blob re-encodes exactly, see
    // tests/ecc_fixture.rs); the others are Kopia's formula worked by hand.
    for (pct, data, parity, shard) in [
        (1, 254, 2, 1024),
        (2, 164, 2, 512),
        (3, 139, 2, 256),
        (4, 228, 2, 128),
        (5, 128, 2, 128),
        (6, 128, 3, 128),
        (10, 128, 4, 64),
        (20, 128, 17, 64),
        (100, 128, 120, 64),
        (1000, 128, 128, 64),
    ] {
        let e = ReedSolomonCrc32::new(pct).unwrap();
        assert_eq!(
            (e.data_shards(), e.parity_shards(), e.max_shard_size()),
            (data, parity, shard),
            "{pct}%"
        );
    }
}

#[test]
fn encoded_sizes_match_kopias() {
    // Kopia's repo/ecc/ecc_rs_crc_test.go: (overhead, max shard, input length, bytes added).
    for (pct, shard, len, added) in [
        (2, 1024, 1, 39),
        (2, 1024, 10 * 1024, 810),
        (10, 1024, 1024 * 1024, 115_128),
    ] {
        let e = ReedSolomonCrc32::with_max_shard_size(pct, shard).unwrap();
        let enc = round_trip(&e, &pattern(len));
        assert_eq!(enc.len() - len, added, "{pct}% {shard} {len}");
    }
}

#[test]
fn the_stored_length_gives_back_the_layout() {
    // Every length up to four blocks of the 2% coder (Kopia checks the same up to 10 MiB).
    let e = ReedSolomonCrc32::new(2).unwrap();
    let mut last = 0;
    for len in 0..4 * 164 * 512 {
        let s = e.sizes_from_original(len);
        let stored = e.encoded_len(len);
        assert_eq!(e.sizes_from_stored(stored), s, "len {len}");
        assert!(stored >= last, "len {len}");
        last = stored;
    }
    for pct in [1, 3, 5, 10, 20] {
        let e = ReedSolomonCrc32::new(pct).unwrap();
        for len in (0..300_000).step_by(7) {
            let s = e.sizes_from_original(len);
            assert_eq!(
                e.sizes_from_stored(e.encoded_len(len)),
                s,
                "{pct}% len {len}"
            );
        }
    }
}

#[test]
fn round_trips_across_the_size_classes() {
    for pct in [1, 2, 5, 10, 20, 100] {
        let e = ReedSolomonCrc32::new(pct).unwrap();
        let big = e.threshold_blocks_input;
        let small = e.threshold_parity_input;
        let block = e.data_shards * e.max_shard_size;
        let mut lens = vec![0, 1, 2, 3, 4, 5, 8, 20, 100, 1000, 5000, 200_000];
        for edge in [small, big, block, 2 * block, 3 * block + 17] {
            lens.extend([edge.saturating_sub(5), edge - 4, edge - 3, edge + 1]);
        }
        for len in lens {
            round_trip(&e, &pattern(len));
        }
    }
}

/// Offsets of the shards of an encoding of `len` bytes: (parity slots, data slots), each the
/// offset of a CRC followed by its shard.
fn slots(e: &ReedSolomonCrc32, len: usize) -> (Vec<usize>, Vec<usize>) {
    let s = e.sizes_from_original(len);
    let slot = CRC_SIZE + s.shard_size;
    let parity: Vec<usize> = (0..s.blocks * s.parity_shards).map(|i| i * slot).collect();
    let start = parity.len() * slot;
    let stored = e.encoded_len(len);
    let data = (0..)
        .map(|i| start + i * slot)
        .take_while(|o| *o < stored)
        .collect();
    (parity, data)
}

#[test]
fn damage_up_to_the_parity_count_per_block_is_repaired() {
    let e = ReedSolomonCrc32::new(10).unwrap(); // 128 + 4 shards of 64 bytes
    for len in [10, 3000, 3 * 128 * 64 + 999] {
        let input = pattern(len);
        let enc = round_trip(&e, &input);
        let sizes = e.sizes_from_original(len);
        let (parity, data) = slots(&e, len);
        let p = sizes.parity_shards;
        // In every block: a damaged data shard, a damaged data CRC, and damaged parity.
        let mut bad = enc.clone();
        let mut damaged = 0;
        for b in 0..sizes.blocks {
            let block_data = &data[b * sizes.data_shards..];
            let mut hits = vec![block_data[0] + CRC_SIZE + 1, block_data[1]];
            hits.extend(parity[b * p..(b + 1) * p].iter().take(p - 2).copied());
            let n = bad.len();
            for at in hits.into_iter().filter(|at| *at < n) {
                bad[at] ^= 0xff;
                damaged += 1;
            }
        }
        let mut out = Vec::new();
        assert_eq!(e.decode(&bad, &mut out).unwrap(), damaged, "len {len}");
        assert_eq!(out, input, "len {len}");
        // one more damaged data shard in the last block is beyond repair
        let last_block = &data[(sizes.blocks - 1) * sizes.data_shards..];
        let at = last_block[2] + CRC_SIZE;
        if at < bad.len() {
            bad[at] ^= 1;
            let mut out = Vec::new();
            let err = e.decode(&bad, &mut out).unwrap_err().to_string();
            assert!(err.contains(&format!("only {p} can be rebuilt")), "{err}");
            assert!(out.is_empty());
        }
    }
}

#[test]
fn every_single_byte_flip_is_repaired() {
    let e = ReedSolomonCrc32::new(2).unwrap();
    for len in [1, 500, 3 * 164 * 512 + 100] {
        let input = pattern(len);
        let enc = round_trip(&e, &input);
        let step = if enc.len() > 10_000 { 97 } else { 1 };
        for i in (0..enc.len()).step_by(step) {
            let mut bad = enc.clone();
            bad[i] ^= 0x41;
            let mut out = Vec::new();
            assert_eq!(e.decode(&bad, &mut out).unwrap(), 1, "len {len} byte {i}");
            assert!(out == input, "len {len} byte {i}");
        }
    }
}

#[test]
fn wrong_lengths_and_bad_prefixes_are_errors() {
    let e = ReedSolomonCrc32::new(2).unwrap();
    let enc = round_trip(&e, &pattern(5000));
    // truncated or extended blobs fall into another layout: an error, never a panic
    for len in [0, 1, 7, 100, enc.len() - 1, enc.len() / 2] {
        let mut out = Vec::new();
        let _ = e.decode(&enc[..len], &mut out);
    }
    let mut longer = enc.clone();
    longer.extend_from_slice(&[0; 1000]);
    assert!(e.decode(&longer, &mut Vec::new()).is_err());
    // a length prefix larger than the data, with a correct CRC: refused, not trusted
    let mut lie = Vec::new();
    let mut data = [0u8; 6 * 10];
    data[..4].copy_from_slice(&1000u32.to_be_bytes());
    let coder = ReedSolomon::new(6, 2).unwrap();
    let shards: Vec<&[u8]> = data.chunks(10).collect();
    let mut parity = vec![vec![0u8; 10]; 2];
    coder.encode_sep(&shards, &mut parity).unwrap();
    for s in parity.iter().map(|p| &p[..]).chain(shards.iter().copied()) {
        lie.extend_from_slice(&crc32fast::hash(s).to_be_bytes());
        lie.extend_from_slice(s);
    }
    let err = e.decode(&lie, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("length 1000 does not fit"), "{err}");
}

#[test]
fn algorithm_names_and_switches() {
    assert_eq!(supported_ecc_algorithms(), &["REED-SOLOMON-CRC32"]);
    assert_eq!(DEFAULT_ECC, REED_SOLOMON_CRC32);
    assert!(from_format("", 5).unwrap().is_none());
    assert!(from_format(REED_SOLOMON_CRC32, 0).unwrap().is_none());
    assert!(from_format(REED_SOLOMON_CRC32, -3).unwrap().is_none());
    let e = from_format(REED_SOLOMON_CRC32, 2).unwrap().unwrap();
    assert_eq!(
        (e.algorithm(), e.overhead_percent()),
        (REED_SOLOMON_CRC32, 2)
    );
    assert!(matches!(
        from_format("LDPC", 2),
        Err(FormatError::UnsupportedAlgorithm { .. })
    ));
    assert!(ReedSolomonCrc32::new(0).is_err());
    assert!(ReedSolomonCrc32::with_max_shard_size(2, 0).is_err());
}
