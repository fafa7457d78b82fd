//! S2 streams (klauspost/compress): chunks of `type ‖ 3-byte length ‖ body` after the stream
//! identifier `S2sTwO`; data chunks carry a masked CRC-32C of the uncompressed bytes. Blocks
//! are snappy blocks, plus S2's repeat-offset copies.

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
    let (dlen, n) = block_header(src, max_output)?;
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
                    let (len, next) = repeat_len(src, s, v)?;
                    s = next;
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

/// The block's decoded length (at most `max_output`, and 4 MiB as S2's blocks) and the length
/// of the varint that holds it.
fn block_header(src: &[u8], max_output: usize) -> Result<(usize, usize)> {
    let bad = |d: &str| err("s2 block", d);
    let (dlen, n) = uvarint(src).ok_or_else(|| bad("bad length"))?;
    let dlen = usize::try_from(dlen).map_err(|_| bad("length"))?;
    if dlen > max_output.min(4 << 20) {
        return Err(bad("block too large"));
    }
    Ok((dlen, n))
}

/// The length of an S2 repeat with tag value `v` (5..7 add 1 to 3 length bytes, starting at
/// `s`), and where the next tag is.
#[inline]
fn repeat_len(src: &[u8], s: usize, v: usize) -> Result<(usize, usize)> {
    let get = |i: usize| {
        src.get(i)
            .copied()
            .ok_or_else(|| err("s2 block", "truncated"))
    };
    Ok(match v {
        5 => (get(s)? as usize + 8, s + 1),
        6 => (
            (get(s)? as usize | (get(s + 1)? as usize) << 8) + (1 << 8) + 4,
            s + 2,
        ),
        7 => (
            (get(s)? as usize | (get(s + 1)? as usize) << 8 | (get(s + 2)? as usize) << 16)
                + (1 << 16)
                + 4,
            s + 3,
        ),
        _ => (v + 4, s),
    })
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
