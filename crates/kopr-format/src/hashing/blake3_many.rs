//! BLAKE3 keyed hashes of many short inputs at once.
//!
//! BLAKE3 hashes one long input fast by compressing up to 16 of its chunks side by side
//! (AVX-512), but an input of a few KiB has one or two chunks, so it is hashed one 64-byte
//! block after another. [`keyed_hash_many`] gives every input the answer of
//! `blake3::keyed_hash`, while compressing the same-shaped runs of blocks of *different*
//! inputs side by side:
//! * each full chunk of an input longer than one chunk, grouped by its chunk counter;
//! * the full blocks before the last block of every other chunk (the short last chunk of an
//!   input, or the only chunk of an input of at most 1 KiB), grouped by their number and
//!   chunk counter;
//!
//! then one compression per such chunk for its last block, and the parent nodes.
//!
//! It stands on `blake3::platform`, which the blake3 crate calls unstable: the dependency is
//! pinned to one version, and the tests compare every length over several chunks, alone and
//! in batches, with `blake3::keyed_hash`.

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, Mode};
use blake3::platform::{le_bytes_from_words_32, words_from_le_bytes_32, Platform};
use blake3::{IncrementCounter, BLOCK_LEN, CHUNK_LEN, OUT_LEN};

// BLAKE3's domain flags (the specification's table 3).
const CHUNK_START: u8 = 1 << 0;
const CHUNK_END: u8 = 1 << 1;
const ROOT: u8 = 1 << 3;
const KEYED_HASH: u8 = 1 << 4;

const BLOCKS_PER_CHUNK: usize = CHUNK_LEN / BLOCK_LEN;

/// A run of whole blocks at the start of one chunk, compressed side by side with the runs
/// of other inputs that have as many blocks and the same chunk counter.
#[derive(Clone, Copy)]
struct Run {
    blocks: usize,
    counter: u64,
    input: usize,
    start: usize,
    /// Where its chaining value goes in the table of chunk values.
    slot: usize,
}

/// The last block of a chunk that is short, or the root: compressed alone.
#[derive(Clone, Copy)]
struct LastBlock {
    counter: u64,
    input: usize,
    start: usize,
    len: usize,
    slot: usize,
    /// No run before it: the block starts its chunk from the key.
    first: bool,
    root: bool,
}

/// The keyed BLAKE3 hash of every input, in order: the same as `blake3::keyed_hash` of each.
pub fn keyed_hash_many(key: &[u8; OUT_LEN], inputs: &[&[u8]]) -> Vec<[u8; OUT_LEN]> {
    hash_side_by_side(key, inputs).unwrap_or_else(|| one_by_one(key, inputs))
}

fn one_by_one(key: &[u8; OUT_LEN], inputs: &[&[u8]]) -> Vec<[u8; OUT_LEN]> {
    inputs
        .iter()
        .map(|i| *blake3::keyed_hash(key, i).as_bytes())
        .collect()
}

fn chunks_of(len: usize) -> usize {
    len.div_ceil(CHUNK_LEN).max(1)
}

/// `None` only if a run could not be cut as planned, which cannot happen: the caller then
/// hashes one input at a time.
fn hash_side_by_side(key: &[u8; OUT_LEN], inputs: &[&[u8]]) -> Option<Vec<[u8; OUT_LEN]>> {
    let platform = Platform::detect();
    let key_words = words_from_le_bytes_32(key);
    let mut runs = Vec::with_capacity(inputs.len() * 2);
    let mut last_blocks = Vec::with_capacity(inputs.len());
    let mut first_slot = Vec::with_capacity(inputs.len());
    let mut slots = 0;
    for (input, data) in inputs.iter().enumerate() {
        first_slot.push(slots);
        let chunks = chunks_of(data.len());
        for c in 0..chunks {
            let start = c * CHUNK_LEN;
            let len = data.len().min(start + CHUNK_LEN) - start;
            let slot = slots + c;
            let counter = c as u64;
            // A full chunk of a longer input is one run, ended with CHUNK_END. Any other
            // chunk's run is every block but the last, which carries CHUNK_END (and ROOT for
            // a lone chunk) and is compressed alone.
            let whole = len == CHUNK_LEN && chunks > 1;
            let blocks = match whole {
                true => BLOCKS_PER_CHUNK,
                false => len.div_ceil(BLOCK_LEN).max(1) - 1,
            };
            if blocks > 0 {
                runs.push(Run {
                    blocks,
                    counter,
                    input,
                    start,
                    slot,
                });
            }
            if whole {
                continue;
            }
            let last = start + blocks * BLOCK_LEN;
            last_blocks.push(LastBlock {
                counter,
                input,
                start: last,
                len: start + len - last,
                slot,
                first: blocks == 0,
                root: chunks == 1,
            });
        }
        slots += chunks;
    }

    let mut cvs = vec![key_words; slots];
    runs.sort_unstable_by_key(|r| (r.blocks, r.counter));
    let mut out = Vec::new();
    for group in runs.chunk_by(|a, b| (a.blocks, a.counter) == (b.blocks, b.counter)) {
        let ends_chunk = group[0].blocks == BLOCKS_PER_CHUNK;
        out.clear();
        out.resize(group.len() * OUT_LEN, 0);
        let done = match group[0].blocks {
            1 => run_group::<64>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            2 => run_group::<128>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            3 => run_group::<192>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            4 => run_group::<256>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            5 => run_group::<320>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            6 => run_group::<384>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            7 => run_group::<448>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            8 => run_group::<512>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            9 => run_group::<576>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            10 => run_group::<640>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            11 => run_group::<704>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            12 => run_group::<768>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            13 => run_group::<832>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            14 => run_group::<896>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            15 => run_group::<960>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            16 => run_group::<1024>(&platform, inputs, group, &key_words, ends_chunk, &mut out),
            _ => None,
        };
        done?;
        for (r, cv) in group.iter().zip(out.chunks_exact(OUT_LEN)) {
            cvs[r.slot] = words_from_le_bytes_32(cv.first_chunk()?);
        }
    }

    for b in &last_blocks {
        let mut block = [0u8; BLOCK_LEN];
        block[..b.len].copy_from_slice(inputs[b.input].get(b.start..b.start + b.len)?);
        let mut flags = KEYED_HASH | CHUNK_END;
        if b.first {
            flags |= CHUNK_START;
        }
        if b.root {
            flags |= ROOT;
        }
        let cv = &mut cvs[b.slot];
        if b.first {
            *cv = key_words;
        }
        platform.compress_in_place(cv, &block, b.len as u8, b.counter, flags);
    }

    let mode = Mode::KeyedHash(key);
    let hashes = inputs
        .iter()
        .zip(first_slot)
        .map(|(data, first)| {
            let chunk_values = &cvs[first..first + chunks_of(data.len())];
            match chunk_values {
                // A lone chunk's last block was compressed with ROOT: its value is the hash.
                [root] => le_bytes_from_words_32(root),
                _ => {
                    let left = left_chunks(chunk_values.len());
                    let (l, r) = chunk_values.split_at(left);
                    *merge_subtrees_root(&subtree(l, mode), &subtree(r, mode), mode).as_bytes()
                }
            }
        })
        .collect();
    Some(hashes)
}

/// Compresses the runs of one group side by side, their chaining values into `out`.
fn run_group<const N: usize>(
    platform: &Platform,
    inputs: &[&[u8]],
    group: &[Run],
    key_words: &[u32; 8],
    ends_chunk: bool,
    out: &mut [u8],
) -> Option<()> {
    let blocks: Option<Vec<&[u8; N]>> = group
        .iter()
        .map(|r| inputs[r.input].get(r.start..)?.first_chunk::<N>())
        .collect();
    let flags_end = if ends_chunk { CHUNK_END } else { 0 };
    platform.hash_many(
        &blocks?,
        key_words,
        group[0].counter,
        IncrementCounter::No,
        KEYED_HASH,
        CHUNK_START,
        flags_end,
        out,
    );
    Some(())
}

/// The chunks in the left subtree of a tree of `n` (at least 2): the largest power of two
/// below `n`, as BLAKE3 builds its trees.
fn left_chunks(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The chaining value of a non-root subtree of chunk values.
fn subtree(chunk_values: &[[u32; 8]], mode: Mode<'_>) -> ChainingValue {
    match chunk_values {
        [one] => le_bytes_from_words_32(one),
        _ => {
            let (l, r) = chunk_values.split_at(left_chunks(chunk_values.len()));
            merge_subtrees_non_root(&subtree(l, mode), &subtree(r, mode), mode)
        }
    }
}

#[cfg(test)]
mod tests;
