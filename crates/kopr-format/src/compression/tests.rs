//! Tests of compression: known answers, round trips, limits.

/// zstd bodies decode alike whether the frame states its size (one call with a reused
/// context), does not (a stream), holds two frames, or lies about its size.
#[test]
fn zstd_frames_with_and_without_sizes_decode() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 977) as u8)
        .collect();
    let header = 0x1100u32.to_be_bytes();
    let with_size = zstd::bulk::compress(&data, 3).unwrap();
    assert!(zstd::zstd_safe::get_frame_content_size(&with_size)
        .unwrap()
        .is_some());
    let mut streamed = Vec::new();
    {
        let mut e = zstd::stream::Encoder::new(&mut streamed, 3).unwrap();
        e.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut e, &data).unwrap();
        e.finish().unwrap();
    }
    let mut two = with_size.clone();
    two.extend_from_slice(&with_size);
    for (body, want) in [
        (with_size.clone(), data.clone()),
        (streamed, data.clone()),
        (two, [data.clone(), data.clone()].concat()),
    ] {
        // Appended after what the vector holds; into an empty one (decoded straight into its
        // spare room), whatever room it already has.
        let input = [&header[..], &body].concat();
        let mut out = b"kept".to_vec();
        decompress(&input, &mut out).unwrap();
        assert_eq!(&out[..4], b"kept");
        assert!(out[4..] == want[..]);
        for room in [0, 1000, 4 << 20] {
            let mut out = Vec::with_capacity(room);
            decompress(&input, &mut out).unwrap();
            assert!(out == want, "room {room}");
        }
    }
    // A frame whose stated size is short of what it holds is not trusted past that size.
    let mut short = with_size.clone();
    let fhd = short[4];
    assert_eq!(fhd >> 6, 2, "a 4-byte content size field");
    let stated_at = 5 + usize::from(fhd & 0x20 == 0);
    short[stated_at..stated_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let mut out = Vec::with_capacity(4 << 20);
    match decompress(&[&header[..], &short].concat(), &mut out) {
        Ok(_) => assert!(out == data),
        Err(_) => assert!(out.is_empty()),
    }
    // A stated size larger than the limit is refused without allocating it.
    let mut out = Vec::new();
    assert!(decompress_limited(&[&header[..], &with_size].concat(), &mut out, 1000).is_err());
    assert!(out.is_empty());
}

use super::*;
use proptest::prelude::*;

fn samples() -> Vec<Vec<u8>> {
    let mut x = 88172645463325252u64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    vec![
        vec![],
        b"a".to_vec(),
        b"hello hello hello hello".repeat(500),
        random,
        vec![0u8; 3 << 20],
    ]
}

#[test]
fn every_supported_compressor_round_trips() {
    for c in all().iter().filter(|c| c.is_supported()) {
        for s in samples() {
            let mut buf = Vec::new();
            c.compress(&s, &mut buf).unwrap();
            assert_eq!(&buf[..4], &c.header_id().0.to_be_bytes());
            let mut out = Vec::new();
            assert_eq!(
                decompress(&buf, &mut out).unwrap(),
                c.header_id(),
                "{}",
                c.name()
            );
            assert_eq!(out, s, "{}", c.name());
        }
    }
}

#[test]
fn names_and_ids_match_kopia() {
    let table = [
        ("gzip", 0x1000),
        ("gzip-best-speed", 0x1001),
        ("gzip-best-compression", 0x1002),
        ("zstd", 0x1100),
        ("zstd-fastest", 0x1101),
        ("zstd-better-compression", 0x1102),
        ("zstd-best-compression", 0x1103),
        ("s2-default", 0x1200),
        ("s2-better", 0x1201),
        ("s2-parallel-4", 0x1202),
        ("s2-parallel-8", 0x1203),
        ("pgzip", 0x1300),
        ("pgzip-best-speed", 0x1301),
        ("pgzip-best-compression", 0x1302),
        ("lz4", 0x1400),
        ("deflate-default", 0x1500),
        ("deflate-best-speed", 0x1501),
        ("deflate-best-compression", 0x1502),
    ];
    for (name, id) in table {
        assert_eq!(by_name(name).unwrap().header_id(), HeaderId(id), "{name}");
        assert_eq!(by_header_id(HeaderId(id)).unwrap().name(), name);
    }
    assert_eq!(all().len(), table.len());
    assert!(!by_name("lz4").unwrap().is_supported());
    assert!(by_name("lz4").unwrap().is_deprecated());
    let mut out = b"keep".to_vec();
    assert!(matches!(
        by_name("lz4").unwrap().compress(b"x", &mut out),
        Err(FormatError::UnsupportedAlgorithm { .. })
    ));
    assert_eq!(out, b"keep");
}

/// A content as Kopia up to 0.22 wrote it with `lz4`: header 0x1400, then an LZ4 frame as
/// pierrec/lz4's writer makes it (version 1, independent blocks, content checksum, 4 MiB
/// blocks), built by hand from the LZ4 frame and block specifications: a compressed block
/// (literals `abc`, a 20-byte match at offset 3, literals `XYZ!!`) and a stored block
/// (`tail`), the end mark and the xxHash32 of the content (computed with a separate
/// xxHash32 implementation checked against the format's known values: 02cc5d05 for no
/// bytes, header checksum b9 for these flags).
#[test]
fn reads_kopias_lz4_contents() {
    let frame = [
        "00001400",     // Kopia's header id
        "04224d18",     // LZ4 frame magic
        "6470b9",       // FLG, BD (4 MiB), header checksum
        "0d000000",     // compressed block of 13 bytes
        "3f616263",     // token: 3 literals, long match; "abc"
        "030001",       // offset 3, match length 15 + 1 + 4
        "5058595a2121", // token: 5 literals; "XYZ!!"
        "04000080",     // stored block of 4 bytes
        "7461696c",     // "tail"
        "00000000",     // end mark
        "1bf09543",     // xxHash32 of the content
    ]
    .concat();
    let frame = hex::decode(frame).unwrap();
    let mut out = b">".to_vec();
    assert_eq!(decompress(&frame, &mut out).unwrap(), ids::LZ4_REMOVED);
    assert_eq!(out, b">abcabcabcabcabcabcabcabXYZ!!tail");
    // a wrong content checksum, a wrong header checksum, a cut frame: errors
    for (at, bit) in [(frame.len() - 1, 1u8), (10, 1)] {
        let mut bad = frame.clone();
        bad[at] ^= bit;
        assert!(decompress(&bad, &mut Vec::new()).is_err(), "byte {at}");
    }
    // cut inside a block (a frame cut between blocks reads as ended: the AEAD tag around
    // every content is what catches truncation)
    assert!(decompress(&frame[..20], &mut Vec::new()).is_err());
    // output beyond the cap is refused
    assert!(decompress_limited(&frame, &mut Vec::new(), 10).is_err());
}

#[test]
fn streams_from_independent_encoders_decode() {
    // gzip of "hello\n" written by Python's gzip module (mtime 0), behind Kopia's gzip header
    let mut gz = vec![0, 0, 0x10, 0];
    gz.extend(hex::decode("1f8b08000000000002ffcb48cdc9c9e7020020303a3606000000").unwrap());
    let mut out = Vec::new();
    decompress(&gz, &mut out).unwrap();
    assert_eq!(out, b"hello\n");
    // a zstd frame written at another level than ours decodes
    let mut out = Vec::new();
    let mut good = vec![0, 0, 0x11, 0x01];
    good.extend(zstd::stream::encode_all(&b"hello\n"[..], 19).unwrap());
    decompress(&good, &mut out).unwrap();
    assert_eq!(out, b"hello\n");
    // a hand-made S2 stream with a repeat-offset copy: "abcabcabcabc"
    // literal "abc", copy(offset 3, len 5), repeat(len 4)
    let block = [
        12u8,
        0b0000_1000,
        b'a',
        b'b',
        b'c',
        0b0000_0101,
        3,
        0b0000_0001,
        0,
    ];
    let mut s2s = vec![0, 0, 0x12, 0];
    s2s.extend_from_slice(b"\xff\x06\x00\x00S2sTwO");
    let crc = crc32c::crc32c(b"abcabcabcabc")
        .rotate_right(15)
        .wrapping_add(0xa282_ead8);
    let len = block.len() + 4;
    s2s.extend_from_slice(&[0x00, len as u8, 0, 0]);
    s2s.extend_from_slice(&crc.to_le_bytes());
    s2s.extend_from_slice(&block);
    let mut out = Vec::new();
    decompress(&s2s, &mut out).unwrap();
    assert_eq!(out, b"abcabcabcabc");
}

#[test]
fn corrupt_unknown_and_oversized_inputs_fail() {
    let mut out = Vec::new();
    assert!(decompress(&[0, 0], &mut out).is_err());
    assert!(decompress(&[0, 0, 0x77, 0x77, 1, 2], &mut out).is_err());
    for c in ["zstd", "gzip", "deflate-default", "s2-default"] {
        let mut buf = Vec::new();
        by_name(c)
            .unwrap()
            .compress(&b"some text some text some text".repeat(100), &mut buf)
            .unwrap();
        for cut in [5, buf.len() / 2, buf.len() - 1] {
            let mut out = Vec::new();
            assert!(
                decompress(&buf[..cut], &mut out).is_err(),
                "{c} truncated at {cut}"
            );
        }
        let mut out = Vec::new();
        assert!(
            decompress_limited(&buf, &mut out, 100).is_err(),
            "{c} limit"
        );
    }
}

proptest! {
    #[test]
    fn round_trip_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..5000), i in 0usize..17) {
        let supported: Vec<_> = all().iter().filter(|c| c.is_supported()).collect();
        let c = supported[i];
        let mut buf = Vec::new();
        c.compress(&data, &mut buf).unwrap();
        let mut out = Vec::new();
        decompress(&buf, &mut out).unwrap();
        prop_assert_eq!(out, data);
    }
}

#[test]
fn names_resolve_once_to_compressors() {
    assert!(resolve(None).unwrap().is_none());
    assert!(resolve(Some("")).unwrap().is_none());
    assert!(resolve(Some("none")).unwrap().is_none());
    let c = resolve(Some("zstd-fastest")).unwrap().unwrap();
    assert_eq!(
        (c.name, c.header_id()),
        ("zstd-fastest", by_name("zstd-fastest").unwrap().header_id())
    );
    let err = resolve(Some("zstd-fastets")).unwrap_err().to_string();
    assert!(
        err.contains("unknown compression algorithm: zstd-fastets"),
        "{err}"
    );
    assert_eq!(metadata_default().name, DEFAULT_METADATA_COMPRESSION);
}

#[test]
fn zstd_levels_are_what_the_table_says() {
    // zstd-fastest (the default policy's) is written at libzstd's level 2, zstd at 3: each
    // frame is the one libzstd's own one-shot compression makes at that level (no checksum).
    let text: String = (0..2000)
        .map(|i| format!("let x{i} = {} * {};\n", i * 7919 % 1013, i % 97))
        .collect();
    let frame = |level: i32| {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        c.include_checksum(false).unwrap();
        c.compress(text.as_bytes()).unwrap()
    };
    // The levels make different frames of this text, so the check below tells them apart.
    assert_ne!(frame(1), frame(2));
    for (name, level) in [
        ("zstd-fastest", 2),
        ("zstd", 3),
        ("zstd-better-compression", 7),
    ] {
        let mut out = Vec::new();
        by_name(name)
            .unwrap()
            .compress(text.as_bytes(), &mut out)
            .unwrap();
        assert_eq!(&out[4..], &frame(level)[..], "{name}");
    }
}
