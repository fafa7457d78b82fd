//! Shared settings and inputs of the format benchmarks.
//!
//! Every group is kept short (a 1 s measurement after a 0.3 s warm-up, 10 samples), so a full
//! `cargo bench -p kopr-format` takes a few minutes and `cargo test --all-targets`, which runs
//! each benchmark once, stays fast.

#![allow(dead_code)] // each bench target uses only some of these

use std::time::Duration;

use criterion::Criterion;
use rand::{RngCore, SeedableRng};

/// Criterion with short measurements.
pub fn quick() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args()
}

/// Whether this is a real `cargo bench` run (not `cargo test`'s run-once check), so large
/// inputs are worth building.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `len` bytes from a fixed seed: incompressible, and different per seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// `len` bytes of compressible, text-like data (words and numbers from a seeded generator).
pub fn text_bytes(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "snapshot ",
        "content ",
        "index ",
        "pack ",
        "blob ",
        "manifest ",
        "policy ",
        "epoch ",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut v = Vec::with_capacity(len + 32);
    while v.len() < len {
        let r = rng.next_u32();
        v.extend_from_slice(WORDS[r as usize % WORDS.len()].as_bytes());
        if r % 3 == 0 {
            v.extend_from_slice(format!("{} ", r % 10_000).as_bytes());
        }
    }
    v.truncate(len);
    v
}
