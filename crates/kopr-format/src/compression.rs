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
    // The default policy's compressor. Written at libzstd's level 2, not 1: on a compiler
    // toolchain's tree (52,000 files, 1.4 GB) the repository is 4% smaller (as small as
    // restic's) for 7% more compression CPU, and the snapshot stays as fast as an uncompressed
    // one (which writes 3.5 times the bytes). Any level reads back alike, in Kopia too.
    Compressor {
        name: "zstd-fastest",
        id: ids::ZSTD_FASTEST,
        kind: Kind::Zstd(2),
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

/// A policy's or flag's compression, resolved once where it enters (so writers hold a
/// compressor, not a name to look up per chunk): `None` for none (empty or `none`), an error
/// for a name Kopia does not register.
pub fn resolve(name: Option<&str>) -> Result<Option<&'static Compressor>> {
    match name.map(str::trim) {
        None | Some("") | Some("none") => Ok(None),
        Some(n) => by_name(n).map(Some).ok_or_else(|| {
            FormatError::InvalidInput(format!("unknown compression algorithm: {n}"))
        }),
    }
}

/// The compressor of directory listings and indirect object lists ([`DEFAULT_METADATA_COMPRESSION`]).
pub fn metadata_default() -> &'static Compressor {
    // The name is one of ALL's (a unit test checks it).
    by_name(DEFAULT_METADATA_COMPRESSION).unwrap_or(&ALL[ALL.len() - 1])
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
        let r = if start == 0 {
            // Straight into the vector's spare room: zeroing it first would cost a pass over
            // every restored byte.
            out.reserve_exact(size);
            d.decompress_to_buffer(body, out)
        } else {
            out.resize(start + size, 0);
            d.decompress_to_buffer(body, &mut out[start..])
        };
        Some(match r {
            // A frame that holds more than one frame's stated size is read as a stream.
            Ok(n) if n == size && out.len() == start + size => Ok(n),
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

mod entropy;
/// S2 streams (klauspost/compress): chunks of `type ‖ 3-byte length ‖ body` after the stream
/// identifier `S2sTwO`; data chunks carry a masked CRC-32C of the uncompressed bytes. Blocks
/// are snappy blocks, plus S2's repeat-offset copies.
pub mod s2;

pub use entropy::looks_incompressible;

#[cfg(test)]
mod tests;
