//! A cheap guess, before compressing, of whether data can shrink: already-compressed or
//! encrypted data (media, archives, random bytes) has nearly uniform byte frequencies, and
//! compressing it costs CPU for nothing (the result is then stored uncompressed anyway).
//!
//! The guess counts the bytes of a sample: the whole data up to 1 KiB, else evenly spaced
//! windows of 64 bytes covering a quarter of it, at least 1 KiB and at most 4 KiB (so a short
//! file's guess costs a quarter of counting all of it). It estimates the collision
//! probability Σp² of the byte distribution (an unbiased estimate: (Σc² − n) / (n(n − 1))),
//! which for 1 KiB of random bytes lies 3 standard deviations below the limit. Its Rényi entropy
//! −log2 Σp² bounds the Shannon entropy from below, so when it is at least 7.9 bits per byte
//! no order-0 (Huffman) coding can save more than about 1.3%. Data shorter than 256 bytes is
//! always tried. Long repeats of random bytes (which LZ matching would find) are not seen by
//! the guess; deduplication catches those that span chunks.

/// Inputs up to this long are counted whole; longer ones are sampled, at least this much.
const MIN_SAMPLE: usize = 1024;
/// The most that is counted.
const MAX_SAMPLE: usize = 4096;
/// Size of each window of a sampled larger input.
const WINDOW: usize = 64;
/// Inputs shorter than this are always tried.
const MIN_LEN: usize = 256;
/// Data is guessed incompressible when Σp² ≤ 1 / LIMIT (2^7.9 ≈ 239: a Rényi entropy of at
/// least about 7.9 bits per byte).
const LIMIT: u64 = 239;

/// Whether `data` looks like it would not shrink (nearly uniform byte frequencies).
pub fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < MIN_LEN {
        return false;
    }
    let mut counts = [0u32; 256];
    let mut n = 0u64;
    if data.len() <= MIN_SAMPLE {
        count(&mut counts, data);
        n = data.len() as u64;
    } else {
        let windows = (data.len() / 4).clamp(MIN_SAMPLE, MAX_SAMPLE) / WINDOW;
        let step = (data.len() - WINDOW) / (windows - 1);
        for i in 0..windows {
            let start = i * step;
            count(&mut counts, &data[start..start + WINDOW]);
            n += WINDOW as u64;
        }
    }
    let sum_sq: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    // (Σc² − n) / (n(n − 1)) ≤ 1 / LIMIT, in integers.
    (sum_sq - n) * LIMIT <= n * (n - 1)
}

/// Adds the byte counts of `bytes` to `counts`.
fn count(counts: &mut [u32; 256], bytes: &[u8]) {
    for &b in bytes {
        counts[b as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    #[test]
    fn random_bytes_look_incompressible_from_a_kilobyte_on() {
        for (len, seed) in [(1024, 1), (2048, 2), (4096, 3), (100_000, 4), (4 << 20, 5)] {
            assert!(looks_incompressible(&random(len, seed)), "{len} bytes");
        }
        // Short inputs are always tried.
        assert!(!looks_incompressible(&random(200, 6)));
    }

    #[test]
    fn short_random_files_are_recognised_from_their_sample() {
        // 1 KiB sampled out of up to 4 KiB: random data is rarely taken for compressible
        // (which costs only a compression attempt).
        let tried = (0..1000u64)
            .filter(|&seed| {
                !looks_incompressible(&random(1025 + (seed as usize * 37) % 3072, seed))
            })
            .count();
        assert!(tried <= 10, "{tried} of 1000 tried");
        // The windows span the whole file: text in most of it is seen.
        let mut mixed = random(4000, 21);
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
        mixed[1000..].copy_from_slice(&text.as_bytes()[..3000]);
        assert!(!looks_incompressible(&mixed));
    }

    #[test]
    fn text_code_zeros_and_base64_are_tried() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        assert!(!looks_incompressible(text.as_bytes()));
        assert!(!looks_incompressible(&vec![0u8; 1 << 20]));
        // Base64 of random bytes: 64 symbols, 6 bits per byte.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(random(30_000, 7));
        assert!(!looks_incompressible(b64.as_bytes()));
        // Half random, half zeros (sampled across the whole input).
        let mut half = random(1 << 20, 8);
        half[512 << 10..].fill(0);
        assert!(!looks_incompressible(&half));
        // Random bytes with every fourth byte fixed: about 6.4 bits of entropy per byte.
        let mut skewed = random(8192, 9);
        for b in skewed.iter_mut().step_by(4) {
            *b = b' ';
        }
        assert!(!looks_incompressible(&skewed));
    }

    #[test]
    fn what_is_guessed_incompressible_does_not_shrink_with_zstd() {
        // The guess's promise, checked against the compressor it saves.
        let zstd = crate::compression::by_name("zstd-fastest").unwrap();
        for (len, seed) in [(1024, 11), (3000, 12), (1 << 20, 13)] {
            let data = random(len, seed);
            assert!(looks_incompressible(&data));
            let mut out = Vec::new();
            zstd.compress(&data, &mut out).unwrap();
            assert!(out.len() >= data.len(), "{len}: {} bytes", out.len());
        }
    }
}
