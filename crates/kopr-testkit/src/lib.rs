//! Test helpers shared by kopr's test suites: deterministic pseudo-random data, so tests are
//! reproducible and need no RNG crates, a real S3 server on loopback ([`s3`]), whole-tree
//! comparisons ([`tree`]), a recording TCP relay ([`relay`]) and Kopia's own repositories ([`fixtures`]).

pub mod cli;
pub mod env;
pub mod fixtures;
pub mod relay;
pub mod s3;
pub mod servers;
pub mod tree;

pub use tree::assert_same_tree;

/// `len` pseudo-random bytes from `seed` (xorshift64); the same seed gives the same bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(super::random_bytes(1, 64), super::random_bytes(1, 64));
        assert_ne!(super::random_bytes(1, 64), super::random_bytes(2, 64));
        assert_eq!(super::random_bytes(3, 1000).len(), 1000);
    }
}
