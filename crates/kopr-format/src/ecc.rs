//! Error correction: Kopia's `REED-SOLOMON-CRC32` layer around encrypted bytes.
//!
//! When a repository's format names an ECC algorithm with a positive overhead, everything the
//! repository's encryptor seals (contents in packs, the local index of a pack, whole-blob
//! crypto of index, session and log blobs) is wrapped once more: `ecc(aead(plain))`, and
//! unwrapped in the reverse order. The format blobs (`kopia.repository`, `kopia.blobcfg`) and
//! `kopia.maintenance` use their own keys and carry no ECC.
//!
//! Layout (Kopia's `repo/ecc`): the input is prefixed with its length (4 bytes, big-endian)
//! and zero-padded to whole blocks of `data_shards` shards of `shard_size` bytes. For every
//! block, Reed-Solomon over GF(2⁸) (Backblaze's systematic Vandermonde matrix, as
//! klauspost/reedsolomon builds it) computes `parity_shards` parity shards. The output is all
//! parity shards of all blocks, then all data shards, each shard preceded by the CRC-32 (IEEE,
//! big-endian) of the whole, zero-padded, shard:
//!
//! ```text
//! ([CRC32][parity shard])* ([CRC32][data shard])*
//! ```
//!
//! Three size classes, from the input length plus the 4-byte prefix (`n`):
//! * `n <= 2·4·(D+P)`: one block of 6 data and 2 parity shards of `ceil(n/6)` bytes, stored
//!   whole (padding included);
//! * `n <= D·max_shard`: one block of `D`+`P` shards of `ceil(n/D)` bytes, stored whole;
//! * larger: `ceil(n/(D·max_shard))` blocks of `max_shard`-byte shards; the trailing padding of
//!   the data (whole padding shards and the tail of the last shard, not their CRCs' inputs) is
//!   not stored, the reader restores it as zeros.
//!
//! The reader recovers the class from the stored length alone. `max_shard` comes from the
//! overhead percent (1 → 1024, 2 → 512, 3 → 256, ≤6 → 128, else 64); the shard counts from
//! the overhead left once the CRCs are paid for (start from 128 data shards and take that
//! share as parity; when that is a single parity shard use 2 and as many data shards, 128 to
//! 254, as the overhead allows), computed in single precision as Kopia does.
//!
//! On reading, a shard whose CRC does not match is an erasure; up to `P` erasures per block
//! are rebuilt from the others, more is an error.

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::error::{FormatError, Result};

/// Kopia's name of the Reed-Solomon + CRC-32 algorithm (its only one, and its default).
pub const REED_SOLOMON_CRC32: &str = "REED-SOLOMON-CRC32";

/// The algorithm `repository create --ecc` defaults to.
pub const DEFAULT_ECC: &str = REED_SOLOMON_CRC32;

const ALGORITHMS: &[&str] = &[REED_SOLOMON_CRC32];

const LENGTH_SIZE: usize = 4;
const CRC_SIZE: usize = 4;
const SMALL_DATA_SHARDS: usize = 6;
const SMALL_PARITY_SHARDS: usize = 2;

/// The names of all supported error-correction algorithms, sorted as Kopia lists them.
pub fn supported_ecc_algorithms() -> &'static [&'static str] {
    ALGORITHMS
}

/// The error correction a repository's format asks for: `None` when `algorithm` is empty or
/// `overhead_percent` is not positive (ECC off, as Kopia reads it), an error for an unknown
/// algorithm.
pub fn from_format(algorithm: &str, overhead_percent: i64) -> Result<Option<ReedSolomonCrc32>> {
    if algorithm.is_empty() || overhead_percent <= 0 {
        return Ok(None);
    }
    match algorithm {
        REED_SOLOMON_CRC32 => ReedSolomonCrc32::new(overhead_percent).map(Some),
        other => Err(FormatError::UnsupportedAlgorithm {
            kind: "error correction",
            name: other.to_string(),
        }),
    }
}

/// Reed-Solomon erasure coding with CRC-32 detection of damaged shards, as Kopia writes it.
///
/// `Send + Sync`: one instance serves every thread.
pub struct ReedSolomonCrc32 {
    overhead_percent: i64,
    max_shard_size: usize,
    data_shards: usize,
    parity_shards: usize,
    threshold_parity_input: usize,
    threshold_parity_output: usize,
    threshold_blocks_input: usize,
    threshold_blocks_output: usize,
    big: ReedSolomon,
    small: ReedSolomon,
}

impl std::fmt::Debug for ReedSolomonCrc32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReedSolomonCrc32")
            .field("overhead_percent", &self.overhead_percent)
            .field("data_shards", &self.data_shards)
            .field("parity_shards", &self.parity_shards)
            .field("max_shard_size", &self.max_shard_size)
            .finish()
    }
}

/// How the encoding of an input is laid out (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Blocks of shards.
    pub blocks: usize,
    /// Bytes of every shard (each stored after its 4-byte CRC).
    pub shard_size: usize,
    /// Data shards per block.
    pub data_shards: usize,
    /// Parity shards per block, all stored first, block after block.
    pub parity_shards: usize,
}

/// How one input is cut into blocks and shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    blocks: usize,
    shard_size: usize,
    data_shards: usize,
    parity_shards: usize,
    store_padding: bool,
    small: bool,
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// Kopia's shard counts for the overhead left after the CRCs (`space_overhead`, in percent).
fn compute_shards(space_overhead: f32) -> (usize, usize) {
    let apply = |val: usize, percent: f32| (val as f64 * f64::from(percent)).floor() as i64;
    let mut data = 128usize;
    let mut parity = apply(data, space_overhead / 100.0).clamp(1, 128) as usize;
    if parity == 1 {
        parity = 2;
        data = apply(parity, 100.0 / space_overhead).clamp(128, 254) as usize;
    }
    (data, parity)
}

fn rs_error(e: reed_solomon_erasure::Error) -> FormatError {
    FormatError::malformed("error-corrected data", format!("reed-solomon: {e:?}"))
}

impl ReedSolomonCrc32 {
    /// The coder for `overhead_percent` (positive) with Kopia's shard size for it.
    pub fn new(overhead_percent: i64) -> Result<Self> {
        let max_shard_size = match overhead_percent {
            1 => 1024,
            2 => 512,
            3 => 256,
            ..=6 => 128,
            _ => 64,
        };
        Self::with_max_shard_size(overhead_percent, max_shard_size)
    }

    /// The coder for `overhead_percent` with shards of at most `max_shard_size` bytes.
    pub fn with_max_shard_size(overhead_percent: i64, max_shard_size: usize) -> Result<Self> {
        if overhead_percent <= 0 || max_shard_size == 0 {
            return Err(FormatError::InvalidInput(format!(
                "error correction needs a positive overhead and shard size, not {overhead_percent}% and {max_shard_size}"
            )));
        }
        // The CRCs' share of the overhead is paid first (single precision, as Kopia computes).
        let free = (overhead_percent as f32 - 400.0 / max_shard_size as f32).max(0.01);
        let (data_shards, parity_shards) = compute_shards(free);
        let threshold_parity_input = 2 * CRC_SIZE * (data_shards + parity_shards);
        let threshold_parity_output = (SMALL_DATA_SHARDS + SMALL_PARITY_SHARDS)
            * (CRC_SIZE + ceil_div(threshold_parity_input, SMALL_DATA_SHARDS));
        let threshold_blocks_input = data_shards * max_shard_size;
        let threshold_blocks_output = (data_shards + parity_shards) * (CRC_SIZE + max_shard_size);
        Ok(ReedSolomonCrc32 {
            overhead_percent,
            max_shard_size,
            data_shards,
            parity_shards,
            threshold_parity_input,
            threshold_parity_output,
            threshold_blocks_input,
            threshold_blocks_output,
            big: ReedSolomon::new(data_shards, parity_shards).map_err(rs_error)?,
            small: ReedSolomon::new(SMALL_DATA_SHARDS, SMALL_PARITY_SHARDS).map_err(rs_error)?,
        })
    }

    /// The algorithm's name, as stored in the repository format.
    pub fn algorithm(&self) -> &'static str {
        REED_SOLOMON_CRC32
    }

    /// The overhead percent this coder was built for.
    pub fn overhead_percent(&self) -> i64 {
        self.overhead_percent
    }

    /// Data shards per block of a large input.
    pub fn data_shards(&self) -> usize {
        self.data_shards
    }

    /// Parity shards per block of a large input: damaged shards a block can lose and rebuild.
    pub fn parity_shards(&self) -> usize {
        self.parity_shards
    }

    /// Shard size of a large input.
    pub fn max_shard_size(&self) -> usize {
        self.max_shard_size
    }

    fn sizes_from_original(&self, len: usize) -> Sizes {
        let n = len + LENGTH_SIZE;
        if n <= self.threshold_parity_input {
            Sizes {
                blocks: 1,
                shard_size: ceil_div(n, SMALL_DATA_SHARDS),
                data_shards: SMALL_DATA_SHARDS,
                parity_shards: SMALL_PARITY_SHARDS,
                store_padding: true,
                small: true,
            }
        } else if n <= self.threshold_blocks_input {
            Sizes {
                blocks: 1,
                shard_size: ceil_div(n, self.data_shards),
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                store_padding: true,
                small: false,
            }
        } else {
            Sizes {
                blocks: ceil_div(n, self.data_shards * self.max_shard_size),
                shard_size: self.max_shard_size,
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                store_padding: false,
                small: false,
            }
        }
    }

    fn sizes_from_stored(&self, len: usize) -> Sizes {
        let one_block = |data_shards: usize, parity_shards: usize, small: bool| Sizes {
            blocks: 1,
            shard_size: ceil_div(len, data_shards + parity_shards).max(1 + CRC_SIZE) - CRC_SIZE,
            data_shards,
            parity_shards,
            store_padding: true,
            small,
        };
        if len <= self.threshold_parity_output {
            one_block(SMALL_DATA_SHARDS, SMALL_PARITY_SHARDS, true)
        } else if len <= self.threshold_blocks_output {
            one_block(self.data_shards, self.parity_shards, false)
        } else {
            let per_block =
                (self.data_shards + self.parity_shards) * (CRC_SIZE + self.max_shard_size);
            Sizes {
                blocks: ceil_div(len, per_block),
                shard_size: self.max_shard_size,
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                store_padding: false,
                small: false,
            }
        }
    }

    fn coder(&self, sizes: &Sizes) -> &ReedSolomon {
        if sizes.small {
            &self.small
        } else {
            &self.big
        }
    }

    /// The layout of the encoding of an input of `len` bytes.
    pub fn layout(&self, len: usize) -> Layout {
        let s = self.sizes_from_original(len);
        Layout {
            blocks: s.blocks,
            shard_size: s.shard_size,
            data_shards: s.data_shards,
            parity_shards: s.parity_shards,
        }
    }

    /// Bytes [`ReedSolomonCrc32::encode`] writes for an input of `len` bytes.
    pub fn encoded_len(&self, len: usize) -> usize {
        let s = self.sizes_from_original(len);
        let parity = s.blocks * s.parity_shards * (CRC_SIZE + s.shard_size);
        let data = if s.store_padding {
            s.blocks * s.data_shards * s.shard_size
        } else {
            len + LENGTH_SIZE
        };
        parity + data + ceil_div(data, s.shard_size) * CRC_SIZE
    }

    /// Appends the error-corrected form of `input` to `out`.
    ///
    /// # Panics
    ///
    /// If `input` is 4 GiB or more (the length prefix has 32 bits), far beyond any blob
    /// Kopia writes.
    pub fn encode(&self, input: &[u8], out: &mut Vec<u8>) {
        let len = u32::try_from(input.len())
            .unwrap_or_else(|_| panic!("{} bytes are too many to error-correct", input.len()));
        let sizes = self.sizes_from_original(input.len());
        let s = sizes.shard_size;
        let block_data = sizes.data_shards * s;
        let mut data = vec![0u8; block_data * sizes.blocks];
        data[..LENGTH_SIZE].copy_from_slice(&len.to_be_bytes());
        data[LENGTH_SIZE..LENGTH_SIZE + input.len()].copy_from_slice(input);
        out.reserve(self.encoded_len(input.len()));

        let coder = self.coder(&sizes);
        let mut parity = vec![0u8; sizes.parity_shards * s];
        for block in data.chunks_exact(block_data) {
            let shards: Vec<&[u8]> = block.chunks_exact(s).collect();
            let mut parity_shards: Vec<&mut [u8]> = parity.chunks_exact_mut(s).collect();
            // Shard counts and sizes are consistent by construction.
            if let Err(e) = coder.encode_sep(&shards, &mut parity_shards) {
                panic!("reed-solomon encoding of consistent shards failed: {e:?}");
            }
            for shard in parity.chunks_exact(s) {
                out.extend_from_slice(&crc32fast::hash(shard).to_be_bytes());
                out.extend_from_slice(shard);
            }
        }

        let stored = if sizes.store_padding {
            data.len()
        } else {
            input.len() + LENGTH_SIZE
        };
        for (i, shard) in data.chunks_exact(s).enumerate() {
            let start = i * s;
            if start >= stored {
                break;
            }
            out.extend_from_slice(&crc32fast::hash(shard).to_be_bytes());
            out.extend_from_slice(&shard[..s.min(stored - start)]);
        }
    }

    /// Decodes `input` (as written by [`ReedSolomonCrc32::encode`]), rebuilding shards whose
    /// CRC does not match, and appends the original bytes to `out`. Returns how many shards
    /// were rebuilt.
    ///
    /// More damaged shards in a block than it has parity shards, or a length prefix that does
    /// not fit, is [`FormatError::Malformed`] and leaves `out` as it was.
    pub fn decode(&self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let sizes = self.sizes_from_stored(input.len());
        let s = sizes.shard_size;
        let slot = CRC_SIZE + s;
        let parity_len = sizes.blocks * sizes.parity_shards * slot;
        let total = sizes.blocks * (sizes.data_shards + sizes.parity_shards) * slot;
        // The stored length always fits the class it implies (see `sizes_from_stored`).
        let mut buf = vec![0u8; total.max(input.len())];
        buf[..input.len()].copy_from_slice(input);
        // Data shards starting at or past this offset (of the data part) are unstored padding.
        let padding_start = input.len().saturating_sub(parity_len);
        let (parity_part, data_part) = buf.split_at_mut(parity_len);

        let coder = self.coder(&sizes);
        let start = out.len();
        let mut repaired = 0;
        let mut data_slots = data_part.chunks_exact_mut(slot).enumerate();
        let mut parity_slots = parity_part.chunks_exact_mut(slot);
        for block in 0..sizes.blocks {
            let mut shards: Vec<(&mut [u8], bool)> =
                Vec::with_capacity(sizes.data_shards + sizes.parity_shards);
            for _ in 0..sizes.data_shards {
                let Some((i, slot_bytes)) = data_slots.next() else {
                    break;
                };
                let (crc, shard) = slot_bytes.split_at_mut(CRC_SIZE);
                let ok = i * slot >= padding_start || crc_matches(crc, shard);
                shards.push((shard, ok));
            }
            for _ in 0..sizes.parity_shards {
                let Some(slot_bytes) = parity_slots.next() else {
                    break;
                };
                let (crc, shard) = slot_bytes.split_at_mut(CRC_SIZE);
                let ok = crc_matches(crc, shard);
                shards.push((shard, ok));
            }
            let damaged = shards.iter().filter(|(_, ok)| !ok).count();
            let damaged_data = shards[..sizes.data_shards]
                .iter()
                .filter(|(_, ok)| !ok)
                .count();
            if damaged > sizes.parity_shards {
                out.truncate(start);
                return Err(beyond_repair(block, damaged, &sizes));
            }
            if damaged_data > 0 {
                if let Err(e) = coder.reconstruct_data(&mut shards) {
                    out.truncate(start);
                    return Err(rs_error(e));
                }
            }
            repaired += damaged;
            for (shard, _) in &shards[..sizes.data_shards] {
                out.extend_from_slice(shard);
            }
        }

        strip_length(out, start, input.len())?;
        Ok(repaired)
    }
}

/// The error of a block with more damaged shards than its parity rebuilds.
fn beyond_repair(block: usize, damaged: usize, sizes: &Sizes) -> FormatError {
    FormatError::malformed(
        "error-corrected data",
        format!(
            "block {block} has {damaged} damaged shards of {}, only {} can be rebuilt",
            sizes.data_shards + sizes.parity_shards,
            sizes.parity_shards
        ),
    )
}

/// Drops the length prefix of the data recovered into `out[start..]` and the padding after
/// the length it gives; `stored` is the stored length, for the message.
fn strip_length(out: &mut Vec<u8>, start: usize, stored: usize) -> Result<()> {
    let recovered = out.len() - start;
    let len_bytes: [u8; LENGTH_SIZE] = out[start..]
        .get(..LENGTH_SIZE)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    let original = u32::from_be_bytes(len_bytes) as usize;
    if recovered < LENGTH_SIZE || original > recovered - LENGTH_SIZE {
        out.truncate(start);
        return Err(FormatError::malformed(
            "error-corrected data",
            format!("length {original} does not fit the {recovered} bytes of {stored} stored"),
        ));
    }
    out.copy_within(start + LENGTH_SIZE..start + LENGTH_SIZE + original, start);
    out.truncate(start + original);
    Ok(())
}

fn crc_matches(crc: &[u8], shard: &[u8]) -> bool {
    crc == crc32fast::hash(shard).to_be_bytes()
}

#[cfg(test)]
mod tests;
