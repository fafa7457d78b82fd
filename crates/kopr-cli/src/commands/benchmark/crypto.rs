//! `benchmark hashing`, `benchmark encryption` and `benchmark crypto`.
//!
//! Each algorithm (or hash × encryption pair) processes a zero-filled block `--repeat` times
//! on each of `--parallel` threads, keyed with all-zero 32-byte secrets as Kopia does.
//! Results are sorted fastest first and end with the flags that select the fastest.

use std::hint::black_box;

use anyhow::{bail, Result};
use kopr_format::encryption::{supported_encryption_algorithms, Encryptor};
use kopr_format::hashing::{supported_hash_algorithms, Hasher};

use super::{rate, run_in_parallel, throughput, BlockArgs, SEPARATOR};

/// One measured algorithm or pair; `-` stands for the part not measured.
struct Measured {
    hash: &'static str,
    encryption: &'static str,
    bytes_per_second: f64,
}

const SECRET: [u8; 32] = [0; 32];

/// Times `work` (one repetition) `--repeat` times on `--parallel` threads.
fn measure(args: &BlockArgs, repeat: u64, work: impl Fn() + Sync) -> f64 {
    let (_, elapsed) = run_in_parallel(args.parallel, || {
        for _ in 0..repeat {
            work();
        }
    });
    let total = args.parallel as f64 * args.block_size as f64 * repeat as f64;
    throughput(total, elapsed)
}

fn sorted(mut results: Vec<Measured>) -> Result<Vec<Measured>> {
    if results.is_empty() {
        bail!("no algorithm could be benchmarked");
    }
    results.sort_by(|a, b| b.bytes_per_second.total_cmp(&a.bytes_per_second));
    Ok(results)
}

fn announce(what: &str, args: &BlockArgs, repeat: u64) {
    eprintln!(
        "Benchmarking {what} ({} x {} bytes, parallelism {})",
        repeat, args.block_size, args.parallel
    );
}

/// `benchmark hashing`.
pub fn hashing(args: &BlockArgs, repeat: u64) -> Result<()> {
    let data = vec![0u8; args.block_size];
    let mut results = Vec::new();
    for &name in supported_hash_algorithms() {
        let Ok(hasher) = Hasher::new(name, &SECRET) else {
            continue;
        };
        announce(&format!("hash '{name}'"), args, repeat);
        let bytes_per_second = measure(args, repeat, || {
            black_box(hasher.hash(black_box(&data)));
        });
        results.push(Measured {
            hash: name,
            encryption: "-",
            bytes_per_second,
        });
    }
    let results = sorted(results)?;
    println!("     {:<20} Throughput", "Hash");
    println!("{SEPARATOR}");
    for (i, r) in results.iter().enumerate() {
        let opt = if args.print_options {
            format!(",   --block-hash={}", r.hash)
        } else {
            String::new()
        };
        println!(
            "{i:>3}. {:<20} {} / second{opt}",
            r.hash,
            rate(r.bytes_per_second)
        );
    }
    println!("{SEPARATOR}");
    println!(
        "Fastest option for this machine is: --block-hash={}",
        results[0].hash
    );
    Ok(())
}

/// `benchmark encryption`: sealing under a fixed 32-byte content id.
pub fn encryption(args: &BlockArgs, repeat: u64) -> Result<()> {
    let data = vec![0u8; args.block_size];
    let content_id = [0u8; 32];
    let mut results = Vec::new();
    for &name in supported_encryption_algorithms() {
        let Ok(enc) = Encryptor::new(name, &SECRET) else {
            continue;
        };
        announce(&format!("encryption '{name}'"), args, repeat);
        let bytes_per_second = measure_with_buffer(args, repeat, |out| {
            enc.encrypt(black_box(&data), &content_id, out);
        });
        results.push(Measured {
            hash: "-",
            encryption: name,
            bytes_per_second,
        });
    }
    let results = sorted(results)?;
    println!("     {:<30} Throughput", "Encryption");
    println!("{SEPARATOR}");
    for (i, r) in results.iter().enumerate() {
        let opt = if args.print_options {
            format!(",   --encryption={}", r.encryption)
        } else {
            String::new()
        };
        println!(
            "{i:>3}. {:<30} {} / second{opt}",
            r.encryption,
            rate(r.bytes_per_second)
        );
    }
    println!("{SEPARATOR}");
    println!(
        "Fastest option for this machine is: --encryption={}",
        results[0].encryption
    );
    Ok(())
}

/// `benchmark crypto`: hash the block, then seal it under its hash, for every pair.
pub fn combined(args: &BlockArgs, repeat: u64) -> Result<()> {
    let data = vec![0u8; args.block_size];
    let mut results = Vec::new();
    for &hash in supported_hash_algorithms() {
        for &encryption in supported_encryption_algorithms() {
            let (Ok(hasher), Ok(enc)) = (
                Hasher::new(hash, &SECRET),
                Encryptor::new(encryption, &SECRET),
            ) else {
                continue;
            };
            announce(
                &format!("hash '{hash}' and encryption '{encryption}'"),
                args,
                repeat,
            );
            let bytes_per_second = measure_with_buffer(args, repeat, |out| {
                let id = hasher.hash(black_box(&data));
                enc.encrypt(&data, id.as_bytes(), out);
            });
            results.push(Measured {
                hash,
                encryption,
                bytes_per_second,
            });
        }
    }
    let results = sorted(results)?;
    println!("     {:<20} {:<30} Throughput", "Hash", "Encryption");
    println!("{SEPARATOR}");
    for (i, r) in results.iter().enumerate() {
        let opt = if args.print_options {
            format!(",   --block-hash={} --encryption={}", r.hash, r.encryption)
        } else {
            String::new()
        };
        println!(
            "{i:>3}. {:<20} {:<30} {} / second{opt}",
            r.hash,
            r.encryption,
            rate(r.bytes_per_second)
        );
    }
    println!("{SEPARATOR}");
    println!(
        "Fastest option for this machine is: --block-hash={} --encryption={}",
        results[0].hash, results[0].encryption
    );
    Ok(())
}

/// [`measure`] for work that writes into an output buffer, one buffer per thread, cleared
/// before each repetition.
fn measure_with_buffer(args: &BlockArgs, repeat: u64, work: impl Fn(&mut Vec<u8>) + Sync) -> f64 {
    let (_, elapsed) = run_in_parallel(args.parallel, || {
        let mut out = Vec::with_capacity(args.block_size + 64);
        for _ in 0..repeat {
            out.clear();
            work(&mut out);
            black_box(&out);
        }
    });
    let total = args.parallel as f64 * args.block_size as f64 * repeat as f64;
    throughput(total, elapsed)
}
