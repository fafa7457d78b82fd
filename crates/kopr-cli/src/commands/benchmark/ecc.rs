//! `benchmark ecc`: error-correction encoding and decoding speed, and the space it costs.
//!
//! As Kopia's: a block filled with `i % 255 + 1` is encoded `--repeat` times on each of
//! `--parallel` threads for every algorithm at 1, 2, 5, 10 and 20% overhead, then its encoding
//! is decoded as often with the first data shard of every block damaged, so that decoding
//! rebuilds a shard each time. Rows are sorted by the slower of the two directions, fastest
//! first, with the growth of the encoded block and its size.

use std::hint::black_box;

use anyhow::{bail, Result};
use kopr_format::ecc::{supported_ecc_algorithms, ReedSolomonCrc32};

use super::{rate, run_in_parallel, throughput, EccArgs};

/// The overheads Kopia's benchmark tries, in percent.
const OVERHEADS: [i64; 5] = [1, 2, 5, 10, 20];

/// Kopia's line around the ECC table (wider than the other benchmarks').
const SEPARATOR: &str =
    "---------------------------------------------------------------------------------------";

struct Measured {
    algorithm: &'static str,
    overhead: i64,
    encoding: f64,
    decoding: f64,
    size: usize,
    growth: f64,
}

/// The block, encoded, with the first byte of the first data shard of every block flipped.
fn damaged_encoding(ecc: &ReedSolomonCrc32, data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = Vec::new();
    ecc.encode(data, &mut enc);
    let layout = ecc.layout(data.len());
    let slot = 4 + layout.shard_size;
    let data_start = layout.blocks * layout.parity_shards * slot;
    for b in 0..layout.blocks {
        enc[data_start + b * layout.data_shards * slot + 4] ^= 0xff;
    }
    let mut out = Vec::new();
    let rebuilt = ecc.decode(&enc, &mut out)?;
    if rebuilt != layout.blocks || out != data {
        bail!("the damaged benchmark block does not decode as expected");
    }
    Ok(enc)
}

/// `benchmark ecc`.
pub fn run(args: &EccArgs) -> Result<()> {
    let data: Vec<u8> = (0..args.block_size).map(|i| (i % 255) as u8 + 1).collect();
    let mut results = Vec::new();
    for &algorithm in supported_ecc_algorithms() {
        for overhead in OVERHEADS {
            let Ok(Some(ecc)) = kopr_format::ecc::from_format(algorithm, overhead) else {
                continue;
            };
            eprintln!(
                "Benchmarking ECC encoding '{algorithm}' with {overhead} space overhead... ({} x {} bytes, parallelism {})",
                args.repeat, args.block_size, args.parallel
            );
            let encoding = measure(args, |out| {
                ecc.encode(black_box(&data), out);
                Ok(())
            })?;
            eprintln!(
                "Benchmarking ECC decoding '{algorithm}' with {overhead} space overhead... ({} x {} bytes, parallelism {})",
                args.repeat, args.block_size, args.parallel
            );
            let encoded = damaged_encoding(&ecc, &data)?;
            let decoding = measure(args, |out| {
                ecc.decode(black_box(&encoded), out)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("decoding failed: {e}"))
            })?;
            results.push(Measured {
                algorithm,
                overhead,
                encoding,
                decoding,
                size: encoded.len(),
                growth: encoded.len() as f64 / args.block_size as f64 - 1.0,
            });
        }
    }
    if results.is_empty() {
        bail!("no algorithm could be benchmarked");
    }
    results.sort_by(|a, b| {
        b.encoding
            .min(b.decoding)
            .total_cmp(&a.encoding.min(a.decoding))
    });
    println!(
        "     {:<30} {:>14} {:>14}   {:>10}",
        "ECC", "Throughput", "Throughput", "Growth"
    );
    println!(
        "     {:<30} {:>14} {:>14}   {:>6}",
        "", "Encoding", "Decoding", ""
    );
    println!("{SEPARATOR}");
    for (i, r) in results.iter().enumerate() {
        let opt = if args.print_options {
            format!(",   {}", flags(r))
        } else {
            String::new()
        };
        println!(
            "{i:>3}. {:<30} {:>12}/s {:>12}/s   {:>6}% [{}]{opt}",
            format!("{} - {}%", r.algorithm, r.overhead),
            rate(r.encoding),
            rate(r.decoding),
            (r.growth * 100.0).round() as i64,
            crate::units::bytes(r.size as i64),
        );
    }
    println!("{SEPARATOR}");
    println!("Fastest option for this machine is: {}", flags(&results[0]));
    Ok(())
}

/// The `repository create` flags that select a result.
fn flags(r: &Measured) -> String {
    format!(
        "--ecc={} --ecc-overhead-percent={}",
        r.algorithm, r.overhead
    )
}

/// Runs `work` `--repeat` times on each of `--parallel` threads, one output buffer per thread
/// cleared before each run; bytes per second of the input block.
fn measure(args: &EccArgs, work: impl Fn(&mut Vec<u8>) -> Result<()> + Sync) -> Result<f64> {
    let (result, elapsed) = run_in_parallel(args.parallel, || -> Result<()> {
        let mut out = Vec::new();
        for _ in 0..args.repeat {
            out.clear();
            work(&mut out)?;
            black_box(&out);
        }
        Ok(())
    });
    result?;
    let total = args.parallel as f64 * args.block_size as f64 * args.repeat as f64;
    Ok(throughput(total, elapsed))
}
