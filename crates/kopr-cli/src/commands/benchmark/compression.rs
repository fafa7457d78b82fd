//! `benchmark compression`: every compressor over the first 128 MiB of `--data-file`.
//!
//! Compression, then decompression (per `--operations`), each timed over `--repeat` rounds on
//! each of `--parallel` threads. A table per operation shows, per compressor, the compressed
//! size, the ratio (original / compressed), the throughput (of uncompressed bytes) and the
//! allocations made while it ran, sorted fastest first, or by size or allocated bytes.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher as _;
use std::hint::black_box;
use std::io::Read;

use anyhow::{bail, Context as _, Result};
use kopr_format::compression::{self, Compressor};

use super::{rate, run_in_parallel, throughput, CompressionArgs};
use crate::alloc_count;
use crate::units;

/// How much of the file is used, and what `--repeat=0` aims to process per compressor.
const MAX_DATA: usize = 128 << 20;

struct Measured {
    compressor: &'static Compressor,
    bytes_per_second: f64,
    compressed_size: usize,
    allocations: u64,
    alloc_bytes: u64,
}

fn read_data(args: &CompressionArgs) -> Result<Vec<u8>> {
    let path = &args.data_file;
    let f = std::fs::File::open(path)
        .with_context(|| format!("error opening input file {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("stat error {}", path.display()))?
        .len();
    if len > MAX_DATA as u64 {
        eprintln!("NOTICE: The provided input file is too big, using first 128 MiB.");
    }
    let mut data = Vec::new();
    f.take(MAX_DATA as u64)
        .read_to_end(&mut data)
        .with_context(|| format!("error reading file {}", path.display()))?;
    if data.is_empty() {
        bail!("empty data file");
    }
    Ok(data)
}

fn selected(args: &CompressionArgs) -> Vec<&'static Compressor> {
    compression::all()
        .iter()
        .filter(|c| c.is_supported())
        .filter(|c| match &args.algorithms {
            Some(list) if !list.is_empty() => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .any(|p| c.name().starts_with(p)),
            _ => args.deprecated || !c.is_deprecated(),
        })
        .collect()
}

/// `benchmark compression`.
pub fn run(args: &CompressionArgs) -> Result<()> {
    let data = read_data(args)?;
    let repeat = match args.repeat {
        0 => (MAX_DATA / data.len()).max(1) as u64,
        n => n,
    };
    let compressors = selected(args);
    if compressors.is_empty() {
        bail!("no compression algorithm matches --algorithms");
    }
    alloc_count::enable();
    eprintln!(
        "Will repeat each benchmark {repeat} times per compression method (total {}). Override with --repeat=N.",
        units::bytes((repeat as usize).saturating_mul(data.len()) as i64)
    );
    let name = args.data_file.display();
    if args.operations != "decompress" {
        eprintln!(
            "Compressing input file {name:?} ({}) using {} compression methods.",
            units::bytes(data.len() as i64),
            compressors.len()
        );
        let results = compressors
            .iter()
            .map(|c| compress(args, c, &data, repeat))
            .collect::<Result<Vec<_>>>()?;
        print(args, results, data.len());
    }
    if args.operations != "compress" {
        eprintln!(
            "Decompressing input file {name:?} ({}) using {} compression methods.",
            units::bytes(data.len() as i64),
            compressors.len()
        );
        let results = compressors
            .iter()
            .map(|c| decompress(args, c, &data, repeat))
            .collect::<Result<Vec<_>>>()?;
        print(args, results, data.len());
    }
    Ok(())
}

/// Times `work` (one round into a cleared per-thread buffer) and counts its allocations.
fn measure(
    args: &CompressionArgs,
    compressor: &'static Compressor,
    data_len: usize,
    repeat: u64,
    work: impl Fn(&mut Vec<u8>, u64) -> Result<usize> + Sync,
) -> Result<Measured> {
    let (before_count, before_bytes) = alloc_count::totals();
    let (size, elapsed) = run_in_parallel(args.parallel, || -> Result<usize> {
        let mut out = Vec::with_capacity(data_len + data_len / 8 + 1024);
        let mut size = 0;
        for round in 0..repeat {
            out.clear();
            size = work(&mut out, round)?;
            black_box(&out);
        }
        Ok(size)
    });
    let (after_count, after_bytes) = alloc_count::totals();
    let total = args.parallel as f64 * data_len as f64 * repeat as f64;
    Ok(Measured {
        compressor,
        bytes_per_second: throughput(total, elapsed),
        compressed_size: size?,
        allocations: after_count - before_count,
        alloc_bytes: after_bytes - before_bytes,
    })
}

fn compress(
    args: &CompressionArgs,
    c: &'static Compressor,
    data: &[u8],
    repeat: u64,
) -> Result<Measured> {
    eprintln!("Benchmarking compressor '{}'...", c.name());
    let first_hash = std::sync::OnceLock::new();
    measure(args, c, data.len(), repeat, |out, _| {
        c.compress(data, out)
            .with_context(|| format!("compression {:?} failed", c.name()))?;
        if args.verify_stable {
            let mut h = DefaultHasher::new();
            h.write(out);
            let h = h.finish();
            if *first_hash.get_or_init(|| h) != h {
                bail!("compression {:?} is not stable", c.name());
            }
        }
        Ok(out.len())
    })
}

fn decompress(
    args: &CompressionArgs,
    c: &'static Compressor,
    data: &[u8],
    repeat: u64,
) -> Result<Measured> {
    let mut compressed = Vec::new();
    c.compress(data, &mut compressed)
        .with_context(|| format!("unable to compress data using {}", c.name()))?;
    eprintln!("Benchmarking decompressor '{}'...", c.name());
    measure(args, c, data.len(), repeat, |out, round| {
        compression::decompress_limited(&compressed, out, data.len())
            .with_context(|| format!("decompression {:?} failed", c.name()))?;
        if round == 0 && out.as_slice() != data {
            bail!("decompression {:?} returned other data", c.name());
        }
        Ok(compressed.len())
    })
}

fn print(args: &CompressionArgs, mut results: Vec<Measured>, original: usize) {
    if args.by_size {
        results.sort_by_key(|r| r.compressed_size);
    } else if args.by_alloc {
        results.sort_by_key(|r| r.alloc_bytes);
    } else {
        results.sort_by(|a, b| b.bytes_per_second.total_cmp(&a.bytes_per_second));
    }
    println!(
        "     {:<26} {:<12} {:<7} {:<12} Allocs   Memory Usage",
        "Compression", "Compressed", "Ratio", "Throughput"
    );
    println!("{}", "-".repeat(104));
    for (i, r) in results.iter().enumerate() {
        let ratio = original as f64 / r.compressed_size.max(1) as f64;
        let deprecated = if r.compressor.is_deprecated() {
            " (deprecated)"
        } else {
            ""
        };
        let opt = if args.print_options {
            format!(", --compression={}", r.compressor.name())
        } else {
            String::new()
        };
        println!(
            "{i:>3}. {:<26} {:<12} {:<7} {:>8}/s     {:<8} {}{deprecated}{opt}",
            r.compressor.name(),
            units::bytes(r.compressed_size as i64),
            format!("{ratio:.2}x"),
            rate(r.bytes_per_second),
            r.allocations,
            units::bytes(r.alloc_bytes as i64),
        );
    }
}
