//! `benchmark …`: how fast each of Kopia's algorithms runs on this machine.
//!
//! Mirrors `kopia benchmark`: `hashing`, `encryption` and `crypto` time the algorithms over a
//! zero-filled block, `splitter` times every splitter over seeded random data, and
//! `compression` times every compressor over a file, `ecc` the error correction at Kopia's
//! overheads. Each prints its results sorted with the
//! best first, in Kopia's layout, and, where Kopia does, the flag that selects the best one.
//! No repository is needed.
//!
//! The [`crypto`] module runs `hashing`, `encryption` and `crypto`; [`splitter`] and
//! [`compression`] run the commands of the same names.

mod compression;
mod crypto;
mod ecc;
mod splitter;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Subcommand};

/// The line Kopia prints around result tables.
const SEPARATOR: &str = "-----------------------------------------------------------------";

/// `benchmark …`
#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// Run compression benchmarks.
    Compression(CompressionArgs),
    /// Run combined hash and encryption benchmarks.
    Crypto(HashArgs),
    /// Run splitter benchmarks.
    Splitter(SplitterArgs),
    /// Run hashing function benchmarks.
    #[command(visible_alias = "hash")]
    Hashing(HashArgs),
    /// Run encryption benchmarks.
    Encryption(EncryptionArgs),
    /// Run ECC benchmarks.
    Ecc(EccArgs),
}

/// Flags of `ecc`.
#[derive(Debug, Args)]
pub struct EccArgs {
    /// Size of a block to encrypt (1MB = 1 MiB, as in Kopia).
    #[arg(long = "block-size", default_value = "10MB", value_parser = parse_size)]
    pub block_size: usize,
    /// Number of repetitions.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    /// Number of parallel threads.
    #[arg(long, default_value_t = 1, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Print out options usable for repository creation.
    #[arg(long = "print-options")]
    pub print_options: bool,
}

/// Flags of `hashing` and `crypto`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Number of repetitions.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    #[command(flatten)]
    pub block: BlockArgs,
}

/// Flags of `encryption` (more repetitions by default, as in Kopia).
#[derive(Debug, Args)]
pub struct EncryptionArgs {
    /// Number of repetitions.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    #[command(flatten)]
    pub block: BlockArgs,
}

/// Flags shared by `hashing`, `encryption` and `crypto`.
#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Size of a block to process (1KB = 1024 bytes, as in Kopia).
    #[arg(long = "block-size", default_value = "1MB", value_parser = parse_size)]
    pub block_size: usize,
    /// Number of parallel threads.
    #[arg(long, default_value_t = 1, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Print out options usable for repository creation.
    #[arg(long = "print-options")]
    pub print_options: bool,
    /// Include deprecated algorithms (no effect, as in Kopia).
    #[arg(long, hide = true)]
    pub deprecated: bool,
}

/// Flags of `splitter`.
#[derive(Debug, Args)]
pub struct SplitterArgs {
    /// Random seed.
    #[arg(long = "rand-seed", default_value_t = 42)]
    pub rand_seed: u64,
    /// Size of a data block to split (1MB = 1 MiB, as in Kopia).
    #[arg(long = "data-size", default_value = "32MB", value_parser = parse_size)]
    pub data_size: usize,
    /// Number of data blocks to split.
    #[arg(long = "block-count", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub block_count: u64,
    /// Print out the fastest dynamic splitter option.
    #[arg(long = "print-options")]
    pub print_options: bool,
    /// Number of parallel threads.
    #[arg(long, default_value_t = 1, value_parser = parse_parallel)]
    pub parallel: usize,
}

/// Flags of `compression`.
#[derive(Debug, Args)]
pub struct CompressionArgs {
    /// Number of repetitions (0: as many as make 128 MiB).
    #[arg(long, default_value_t = 0)]
    pub repeat: u64,
    /// Use data from the given file.
    #[arg(long = "data-file", required = true)]
    pub data_file: PathBuf,
    /// Sort results by size.
    #[arg(long = "by-size")]
    pub by_size: bool,
    /// Sort results by allocated bytes.
    #[arg(long = "by-alloc")]
    pub by_alloc: bool,
    /// Number of parallel threads.
    #[arg(long, default_value_t = 1, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Operations.
    #[arg(long, default_value = "both", value_parser = ["compress", "decompress", "both"])]
    pub operations: String,
    /// Verify that compression is stable.
    #[arg(long = "verify-stable")]
    pub verify_stable: bool,
    /// Print out options usable for repository creation.
    #[arg(long = "print-options")]
    pub print_options: bool,
    /// Include deprecated compression algorithms.
    #[arg(long)]
    pub deprecated: bool,
    /// Comma-separated list of algorithms (name prefixes) to benchmark.
    #[arg(long)]
    pub algorithms: Option<String>,
}

/// Runs one benchmark command.
pub fn run(cmd: BenchmarkCommand) -> Result<()> {
    match cmd {
        BenchmarkCommand::Hashing(a) => crypto::hashing(&a.block, a.repeat),
        BenchmarkCommand::Encryption(a) => crypto::encryption(&a.block, a.repeat),
        BenchmarkCommand::Crypto(a) => crypto::combined(&a.block, a.repeat),
        BenchmarkCommand::Splitter(a) => splitter::run(&a),
        BenchmarkCommand::Compression(a) => compression::run(&a),
        BenchmarkCommand::Ecc(a) => ecc::run(&a),
    }
}

/// Runs `work` on `parallel` threads at once (one of them the calling thread), and returns
/// the calling thread's result and the time until all had finished.
fn run_in_parallel<T: Send>(parallel: usize, work: impl Fn() -> T + Sync) -> (T, Duration) {
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let others: Vec<_> = (1..parallel).map(|_| s.spawn(&work)).collect();
        let mine = work();
        for h in others {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        mine
    });
    (result, start.elapsed())
}

/// Bytes per second for `bytes` processed in `elapsed`.
fn throughput(bytes: f64, elapsed: Duration) -> f64 {
    bytes / elapsed.as_secs_f64().max(1e-9)
}

/// A rate as Kopia prints it: `1.2 GB` (the caller appends `/s` or `/ second`).
fn rate(bytes_per_second: f64) -> String {
    crate::units::bytes(bytes_per_second as i64)
}

/// `--parallel`: a positive thread count.
fn parse_parallel(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 1024".into()),
    }
}

/// A positive size in bytes as Kopia's byte flags take it: a number with an optional unit,
/// where `K`, `KB` and `KiB` all mean 1024 (likewise `M`, `G`, `T`), and `B` or no unit bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid size {s:?} (try 1MB, 64KiB or 4096)");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes <= usize::MAX as f64) {
        return Err(format!("size {s:?} must be at least 1 byte"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_kopia_base2_bytes() {
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("1.5kb"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("abc").is_err());
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn parallel_runs_every_thread() {
        let n = std::sync::atomic::AtomicUsize::new(0);
        let (first, _) = run_in_parallel(3, || n.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        assert!(first < 3);
        assert_eq!(n.into_inner(), 3);
    }
}
