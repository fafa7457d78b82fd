//! Compression with Kopia's header ids: every compressed payload starts with a 4-byte
//! big-endian id naming the compressor (`0x1101` zstd-fastest, …), followed by the stream.
//!
//! zstd frames, gzip members (also for `pgzip`), raw DEFLATE and S2 streams are what Kopia
//! writes. `lz4` (0x1400) is an LZ4 frame (pierrec/lz4's writer in Kopia up to 0.22: 4 MiB
//! independent blocks, content checksum); Kopia 0.23 dropped it, kopr still reads it, so that
//! repositories written by older Kopia open, and refuses to write it, as Kopia does.

use std::io::{Read, Write};

use crate::error::{FormatError, Result};

/// A compressor's 4-byte id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderId(pub u32);

/// Header ids, as registered by Kopia.
pub mod ids {
    use super::HeaderId;
    /// gzip, default level.
    pub const GZIP: HeaderId = HeaderId(0x1000);
    /// gzip, fastest.
    pub const GZIP_BEST_SPEED: HeaderId = HeaderId(0x1001);
    /// gzip, smallest.
    pub const GZIP_BEST_COMPRESSION: HeaderId = HeaderId(0x1002);
    /// zstd, default.
    pub const ZSTD: HeaderId = HeaderId(0x1100);
    /// zstd, fastest.
    pub const ZSTD_FASTEST: HeaderId = HeaderId(0x1101);
    /// zstd, better compression.
    pub const ZSTD_BETTER: HeaderId = HeaderId(0x1102);
    /// zstd, best compression (deprecated in Kopia).
    pub const ZSTD_BEST: HeaderId = HeaderId(0x1103);
    /// S2 default.
    pub const S2_DEFAULT: HeaderId = HeaderId(0x1200);
    /// S2 better.
    pub const S2_BETTER: HeaderId = HeaderId(0x1201);
    /// S2 with 4 writers.
    pub const S2_PARALLEL_4: HeaderId = HeaderId(0x1202);
    /// S2 with 8 writers.
    pub const S2_PARALLEL_8: HeaderId = HeaderId(0x1203);
    /// parallel gzip, default.
    pub const PGZIP: HeaderId = HeaderId(0x1300);
    /// parallel gzip, fastest.
    pub const PGZIP_BEST_SPEED: HeaderId = HeaderId(0x1301);
    /// parallel gzip, smallest.
    pub const PGZIP_BEST_COMPRESSION: HeaderId = HeaderId(0x1302);
    /// LZ4 frame, written by Kopia up to 0.22 (read only).
    pub const LZ4_REMOVED: HeaderId = HeaderId(0x1400);
    /// raw DEFLATE, default.
    pub const DEFLATE: HeaderId = HeaderId(0x1500);
    /// raw DEFLATE, fastest.
    pub const DEFLATE_BEST_SPEED: HeaderId = HeaderId(0x1501);
    /// raw DEFLATE, smallest.
    pub const DEFLATE_BEST_COMPRESSION: HeaderId = HeaderId(0x1502);
}

/// Compression Kopia uses for metadata (manifests, directories, indirect lists).
pub const DEFAULT_METADATA_COMPRESSION: &str = "zstd-fastest";
/// Largest output `decompress` produces before failing.
pub const DEFAULT_MAX_OUTPUT: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip(u32),
    Zstd(i32),
    Deflate(u32),
    S2,
    /// Read only.
    Lz4,
}

/// One named compressor.
#[derive(Debug)]
pub struct Compressor {
    name: &'static str,
    id: HeaderId,
    kind: Kind,
    deprecated: bool,
}

static ALL: &[Compressor] = &[
    Compressor {
        name: "deflate-best-compression",
        id: ids::DEFLATE_BEST_COMPRESSION,
        kind: Kind::Deflate(9),
        deprecated: false,
    },
    Compressor {
        name: "deflate-best-speed",
        id: ids::DEFLATE_BEST_SPEED,
        kind: Kind::Deflate(1),
        deprecated: false,
    },
    Compressor {
        name: "deflate-default",
        id: ids::DEFLATE,
        kind: Kind::Deflate(6),
        deprecated: false,
    },
    Compressor {
        name: "gzip",
        id: ids::GZIP,
        kind: Kind::Gzip(6),
        deprecated: false,
    },
    Compressor {
        name: "gzip-best-compression",
        id: ids::GZIP_BEST_COMPRESSION,
        kind: Kind::Gzip(9),
        deprecated: false,
    },
    Compressor {
        name: "gzip-best-speed",
        id: ids::GZIP_BEST_SPEED,
        kind: Kind::Gzip(1),
        deprecated: false,
    },
    Compressor {
        name: "lz4",
        id: ids::LZ4_REMOVED,
        kind: Kind::Lz4,
        deprecated: true,
    },
    Compressor {
        name: "pgzip",
        id: ids::PGZIP,
        kind: Kind::Gzip(6),
        deprecated: false,
    },
    Compressor {
        name: "pgzip-best-compression",
        id: ids::PGZIP_BEST_COMPRESSION,
        kind: Kind::Gzip(9),
        deprecated: false,
    },
    Compressor {
        name: "pgzip-best-speed",
        id: ids::PGZIP_BEST_SPEED,
        kind: Kind::Gzip(1),
        deprecated: false,
    },
    Compressor {
        name: "s2-better",
        id: ids::S2_BETTER,
        kind: Kind::S2,
        deprecated: false,
    },
    Compressor {
        name: "s2-default",
        id: ids::S2_DEFAULT,
        kind: Kind::S2,
        deprecated: false,
    },
    Compressor {
        name: "s2-parallel-4",
        id: ids::S2_PARALLEL_4,
        kind: Kind::S2,
        deprecated: false,
    },
    Compressor {
        name: "s2-parallel-8",
        id: ids::S2_PARALLEL_8,
        kind: Kind::S2,
        deprecated: false,
    },
    Compressor {
        name: "zstd",
        id: ids::ZSTD,
        kind: Kind::Zstd(3),
        deprecated: false,
    },
    Compressor {
        name: "zstd-best-compression",
        id: ids::ZSTD_BEST,
        kind: Kind::Zstd(11),
        deprecated: true,
    },
    Compressor {
        name: "zstd-better-compression",
        id: ids::ZSTD_BETTER,
        kind: Kind::Zstd(7),
        deprecated: false,
    },
    Compressor {
        name: "zstd-fastest",
        id: ids::ZSTD_FASTEST,
        kind: Kind::Zstd(1),
        deprecated: false,
    },
];

/// Every compressor Kopia registers, sorted by name.
pub fn all() -> &'static [Compressor] {
    ALL
}

/// The compressor with this name.
pub fn by_name(name: &str) -> Option<&'static Compressor> {
    ALL.iter().find(|c| c.name == name)
}

/// The compressor with this header id.
pub fn by_header_id(id: HeaderId) -> Option<&'static Compressor> {
    ALL.iter().find(|c| c.id == id)
}

fn err(what: &str, e: impl std::fmt::Display) -> FormatError {
    FormatError::malformed("compressed data", format!("{what}: {e}"))
}

impl Compressor {
    /// Kopia's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The 4-byte header id.
    pub fn header_id(&self) -> HeaderId {
        self.id
    }

    /// Deprecated in Kopia (still readable).
    pub fn is_deprecated(&self) -> bool {
        self.deprecated
    }

    /// Whether kopr can write (and read) it; `lz4` is only read.
    pub fn is_supported(&self) -> bool {
        self.kind != Kind::Lz4
    }

    /// Appends the header and the compressed stream of `input` to `out`.
    pub fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.id.0.to_be_bytes());
        match self.kind {
            Kind::Zstd(level) => zstd_compress(level, input, out)?,
            Kind::Gzip(level) => {
                let mut enc =
                    flate2::write::GzEncoder::new(&mut *out, flate2::Compression::new(level));
                enc.write_all(input).map_err(|e| err("gzip", e))?;
                enc.finish().map_err(|e| err("gzip", e))?;
            }
            Kind::Deflate(level) => {
                let mut enc =
                    flate2::write::DeflateEncoder::new(&mut *out, flate2::Compression::new(level));
                enc.write_all(input).map_err(|e| err("deflate", e))?;
                enc.finish().map_err(|e| err("deflate", e))?;
            }
            Kind::S2 => s2::encode_stream(input, out)?,
            Kind::Lz4 => {
                out.truncate(out.len() - 4);
                return Err(FormatError::UnsupportedAlgorithm {
                    kind: "compression",
                    name: self.name.into(),
                });
            }
        }
        Ok(())
    }
}

thread_local! {
    /// One zstd context per level and thread, reused: creating one per content costs more than
    /// compressing a small content.
    static ZSTD_CONTEXTS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends one zstd frame of `input` (no checksum, as Kopia writes) to `out`, compressing
/// straight from `input` into `out` (the streaming encoder would copy `input` first).
fn zstd_compress(level: i32, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    ZSTD_CONTEXTS.with(|cell| {
        let mut contexts = cell.borrow_mut();
        let idx = match contexts.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                let mut c = zstd::bulk::Compressor::new(level).map_err(|e| err("zstd", e))?;
                c.include_checksum(false).map_err(|e| err("zstd", e))?;
                contexts.push((level, c));
                contexts.len() - 1
            }
        };
        let start = out.len();
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        contexts[idx]
            .1
            .compress_to_buffer(input, &mut cursor)
            .map_err(|e| err("zstd", e))?;
        Ok(())
    })
}

/// Decodes `input` (header + stream) into `out`, returning the header id. Output is limited
/// to [`DEFAULT_MAX_OUTPUT`].
pub fn decompress(input: &[u8], out: &mut Vec<u8>) -> Result<HeaderId> {
    decompress_limited(input, out, DEFAULT_MAX_OUTPUT)
}

/// Like [`decompress`], failing when the output would exceed `max_output` bytes.
pub fn decompress_limited(input: &[u8], out: &mut Vec<u8>, max_output: usize) -> Result<HeaderId> {
    if input.len() < 4 {
        return Err(err("header", "too short"));
    }
    let id = HeaderId(u32::from_be_bytes([input[0], input[1], input[2], input[3]]));
    let c = by_header_id(id)
        .ok_or_else(|| err("header", format!("unknown compression header {:08x}", id.0)))?;
    let body = &input[4..];
    let start = out.len();
    let limit = max_output as u64 + 1;
    let res = match c.kind {
        Kind::Zstd(_) => zstd_decompress(body, out, max_output, limit),
        Kind::Gzip(_) => flate2::read::MultiGzDecoder::new(body)
            .take(limit)
            .read_to_end(out)
            .map_err(|e| err("gzip", e)),
        Kind::Deflate(_) => flate2::read::DeflateDecoder::new(body)
            .take(limit)
            .read_to_end(out)
            .map_err(|e| err("deflate", e)),
        Kind::S2 => s2::decode_stream(body, out, max_output).map(|_| 0),
        Kind::Lz4 => lz4_flex::frame::FrameDecoder::new(body)
            .take(limit)
            .read_to_end(out)
            .map_err(|e| err("lz4", e)),
    };
    res?;
    if out.len() - start > max_output {
        out.truncate(start);
        return Err(err("output", format!("more than {max_output} bytes")));
    }
    Ok(id)
}

thread_local! {
    /// One zstd decompression context per thread, reused content after content.
    static ZSTD_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a zstd body: in one call with this thread's reused context when the frame
/// states its size (frames kopr writes, and Kopia's one-shot ones), else as a stream. A fresh
/// streaming decoder per content costs a context and a window buffer each time.
fn zstd_decompress(body: &[u8], out: &mut Vec<u8>, max_output: usize, limit: u64) -> Result<usize> {
    let stream = |out: &mut Vec<u8>| {
        zstd::stream::Decoder::new(body)
            .map_err(|e| err("zstd", e))?
            .take(limit)
            .read_to_end(out)
            .map_err(|e| err("zstd", e))
    };
    let size = match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n <= max_output as u64 => n as usize,
        _ => return stream(out),
    };
    let bulk = ZSTD_DECOMPRESSOR.with(|cell| -> Option<Result<usize>> {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        let d = slot.as_mut()?;
        let start = out.len();
        out.resize(start + size, 0);
        let r = d.decompress_to_buffer(body, &mut out[start..]);
        Some(match r {
            // A frame that holds more than one frame's stated size is read as a stream.
            Ok(n) if n == size => Ok(n),
            Ok(_) | Err(_) => {
                out.truncate(start);
                Err(err("zstd", "frame size"))
            }
        })
    });
    match bulk {
        Some(Ok(n)) => Ok(n),
        _ => stream(out),
    }
}

/// S2 streams (klauspost/compress): chunks of `type ‖ 3-byte length ‖ body` after the stream
/// identifier `S2sTwO`; data chunks carry a masked CRC-32C of the uncompressed bytes. Blocks
/// are snappy blocks, plus S2's repeat-offset copies.
pub mod s2 {
    use super::err;
    use crate::error::Result;

    const MAGIC: &[u8] = b"\xff\x06\x00\x00S2sTwO";
    const MAX_BLOCK: usize = 1 << 20;

    fn masked_crc(data: &[u8]) -> u32 {
        let c = crc32c::crc32c(data);
        (c.rotate_right(15)).wrapping_add(0xa282_ead8)
    }

    /// Encodes `input` as an S2 stream (snappy-compatible blocks, which S2 readers accept).
    pub fn encode_stream(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(MAGIC);
        let mut enc = snap::raw::Encoder::new();
        for block in input.chunks(MAX_BLOCK) {
            let compressed = enc.compress_vec(block).map_err(|e| err("s2", e))?;
            let (kind, body): (u8, &[u8]) = if compressed.len() < block.len() {
                (0x00, &compressed)
            } else {
                (0x01, block)
            };
            let len = body.len() + 4;
            out.push(kind);
            out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
            out.extend_from_slice(&masked_crc(block).to_le_bytes());
            out.extend_from_slice(body);
        }
        Ok(())
    }

    /// Decodes an S2 (or snappy-framed) stream, appending to `out`.
    pub fn decode_stream(mut input: &[u8], out: &mut Vec<u8>, max_output: usize) -> Result<()> {
        let start = out.len();
        let mut seen_magic = false;
        while !input.is_empty() {
            if input.len() < 4 {
                return Err(err("s2", "truncated chunk header"));
            }
            let kind = input[0];
            let len = u32::from_le_bytes([input[1], input[2], input[3], 0]) as usize;
            let body = input
                .get(4..4 + len)
                .ok_or_else(|| err("s2", "truncated chunk"))?;
            input = &input[4 + len..];
            match kind {
                0xff => {
                    if body != b"S2sTwO" && body != b"sNaPpY" {
                        return Err(err("s2", "bad stream identifier"));
                    }
                    seen_magic = true;
                }
                0x00 | 0x01 => {
                    if !seen_magic {
                        return Err(err("s2", "missing stream identifier"));
                    }
                    if body.len() < 4 {
                        return Err(err("s2", "short data chunk"));
                    }
                    let crc = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let at = out.len();
                    if kind == 0x00 {
                        decode_block(&body[4..], out, max_output.saturating_sub(at - start))?;
                    } else {
                        out.extend_from_slice(&body[4..]);
                    }
                    if out.len() - start > max_output {
                        return Err(err("s2", "output too large"));
                    }
                    if masked_crc(&out[at..]) != crc {
                        return Err(err("s2", "checksum mismatch"));
                    }
                }
                0x02..=0x7f => return Err(err("s2", format!("unskippable chunk type {kind:#x}"))),
                _ => {} // padding and skippable chunks
            }
        }
        Ok(())
    }

    fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate().take(10) {
            v |= u64::from(x & 0x7f) << (7 * i);
            if x < 0x80 {
                return Some((v, i + 1));
            }
        }
        None
    }

    /// Decodes one S2/snappy block.
    pub fn decode_block(src: &[u8], out: &mut Vec<u8>, max_output: usize) -> Result<()> {
        let bad = |d: &str| err("s2 block", d);
        let (dlen, n) = uvarint(src).ok_or_else(|| bad("bad length"))?;
        let dlen = usize::try_from(dlen).map_err(|_| bad("length"))?;
        if dlen > max_output.min(4 << 20) {
            return Err(bad("block too large"));
        }
        let base = out.len();
        out.reserve(dlen);
        let mut s = n;
        let mut last_offset = 0usize;
        let get = |i: usize| src.get(i).copied().ok_or_else(|| bad("truncated"));
        while s < src.len() {
            let tag = src[s];
            match tag & 3 {
                0 => {
                    let mut len = (tag >> 2) as usize;
                    s += 1;
                    if len >= 60 {
                        let extra = len - 59;
                        let mut v = 0usize;
                        for i in 0..extra {
                            v |= (get(s + i)? as usize) << (8 * i);
                        }
                        s += extra;
                        len = v;
                    }
                    len += 1;
                    let lit = src.get(s..s + len).ok_or_else(|| bad("literal past end"))?;
                    out.extend_from_slice(lit);
                    s += len;
                }
                1 => {
                    let v = ((tag >> 2) & 7) as usize;
                    let offset = (((tag as usize) & 0xe0) << 3) | get(s + 1)? as usize;
                    s += 2;
                    if offset == 0 {
                        // S2 repeat: reuse the previous offset; values 5..7 extend the length.
                        let len = match v {
                            5 => {
                                s += 1;
                                get(s - 1)? as usize + 8
                            }
                            6 => {
                                s += 2;
                                (get(s - 2)? as usize | (get(s - 1)? as usize) << 8) + (1 << 8) + 4
                            }
                            7 => {
                                s += 3;
                                (get(s - 3)? as usize
                                    | (get(s - 2)? as usize) << 8
                                    | (get(s - 1)? as usize) << 16)
                                    + (1 << 16)
                                    + 4
                            }
                            _ => v + 4,
                        };
                        copy(out, base, last_offset, len, dlen).ok_or_else(|| bad("bad repeat"))?;
                    } else {
                        last_offset = offset;
                        copy(out, base, offset, v + 4, dlen).ok_or_else(|| bad("bad copy"))?;
                    }
                }
                2 => {
                    let len = (tag >> 2) as usize + 1;
                    let offset = get(s + 1)? as usize | (get(s + 2)? as usize) << 8;
                    s += 3;
                    last_offset = offset;
                    copy(out, base, offset, len, dlen).ok_or_else(|| bad("bad copy"))?;
                }
                _ => {
                    let len = (tag >> 2) as usize + 1;
                    let offset =
                        u32::from_le_bytes([get(s + 1)?, get(s + 2)?, get(s + 3)?, get(s + 4)?])
                            as usize;
                    s += 5;
                    last_offset = offset;
                    copy(out, base, offset, len, dlen).ok_or_else(|| bad("bad copy"))?;
                }
            }
            if out.len() - base > dlen {
                return Err(bad("block longer than declared"));
            }
        }
        if out.len() - base != dlen {
            return Err(bad("block shorter than declared"));
        }
        Ok(())
    }

    fn copy(out: &mut Vec<u8>, base: usize, offset: usize, len: usize, dlen: usize) -> Option<()> {
        let produced = out.len() - base;
        if offset == 0 || offset > produced || produced + len > dlen {
            return None;
        }
        let from = out.len() - offset;
        for i in 0..len {
            let b = out[from + i];
            out.push(b);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
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
            let mut out = b"kept".to_vec();
            decompress(&[&header[..], &body].concat(), &mut out).unwrap();
            assert_eq!(&out[..4], b"kept");
            assert!(out[4..] == want[..]);
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
}
