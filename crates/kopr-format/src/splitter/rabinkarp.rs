//! The 64-bit Rabin-Karp rolling fingerprint of Kopia's `*-RABINKARP` splitters.
//!
//! Bytes are coefficients of a polynomial over GF(2) in `x^8`: the digest of a
//! window `w[0..64]` (oldest first) is `sum(w[k] * x^(8 * (63 - k))) mod P` for a
//! fixed irreducible polynomial `P` of degree 53, so it always fits in 53 bits. A
//! window of zero bytes hashes to 0.
//!
//! Sliding uses two tables: `OUT[b] = b * x^(8 * 63) mod P` cancels the leaving
//! byte, and `REDUCE[t]` folds the 8 bits pushed above degree 53 by the shift back
//! below it (`(t * x^53 mod P) | t * x^53`, so one XOR both clears and reduces).

use super::{RollingHash, WINDOW_SIZE};

/// The modulus: the default polynomial of the `rollinghash/rabinkarp64` Go package
/// (v4.0.0) that Kopia links, i.e. the first irreducible candidate drawn from Go's
/// `math/rand` source seeded with 1 (checked in the tests).
pub(super) const POLYNOMIAL: u64 = 0x002e_3e3e_4a30_5605;

const DEGREE: u32 = degree(POLYNOMIAL);
/// Where the top 8 bits of a reduced digest start.
const TOP_SHIFT: u32 = DEGREE - 8;

/// Kopia's Rabin-Karp rolling fingerprint over a 64-byte window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RabinKarp64 {
    value: u64,
}

impl RabinKarp64 {
    /// The current 64-bit digest.
    #[inline]
    pub fn sum64(&self) -> u64 {
        self.value
    }
}

impl RollingHash for RabinKarp64 {
    #[inline(always)]
    fn roll(&mut self, leaving: u8, entering: u8) {
        let v = self.value ^ OUT[leaving as usize];
        let top = (v >> TOP_SHIFT) as u8;
        self.value = ((v << 8) | u64::from(entering)) ^ REDUCE[top as usize];
    }

    #[inline(always)]
    fn digest(&self) -> u64 {
        self.value
    }
}

/// Degree of a nonzero polynomial.
const fn degree(p: u64) -> u32 {
    63 - p.leading_zeros()
}

/// `x mod p` over GF(2).
pub(super) const fn pol_mod(mut x: u64, p: u64) -> u64 {
    let dp = degree(p);
    while x != 0 && degree(x) >= dp {
        x ^= p << (degree(x) - dp);
    }
    x
}

pub(super) const OUT: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut h = pol_mod(b as u64, POLYNOMIAL);
        let mut i = 0;
        while i < WINDOW_SIZE - 1 {
            h = pol_mod(h << 8, POLYNOMIAL);
            i += 1;
        }
        table[b] = h;
        b += 1;
    }
    table
};

pub(super) const REDUCE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let high = (b as u64) << DEGREE;
        table[b] = pol_mod(high, POLYNOMIAL) | high;
        b += 1;
    }
    table
};
