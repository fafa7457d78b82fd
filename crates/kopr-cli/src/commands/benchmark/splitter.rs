//! `benchmark splitter`: every splitter over `--block-count` blocks of seeded random data.
//!
//! Each block is split as one stream by a fresh splitter. One line per splitter is printed
//! as it finishes, then all of them sorted fastest first, with the count of chunks, their
//! smallest, percentile, largest and average sizes. With `--print-options`, the fastest
//! content-defined splitter is recommended, as Kopia does (by its explicit name, never the
//! legacy alias `DYNAMIC`).

use std::hint::black_box;
use std::time::Duration;

use anyhow::Result;
use kopr_format::splitter::{supported_splitters, SplitterFactory};
use rand::{RngCore, SeedableRng};

use super::{rate, run_in_parallel, throughput, SplitterArgs, SEPARATOR};

struct Measured {
    splitter: &'static str,
    elapsed: Duration,
    bytes_per_second: f64,
    /// Chunk lengths, sorted.
    lengths: Vec<usize>,
}

impl Measured {
    fn stats(&self) -> String {
        let l = &self.lengths;
        let pct = |p: usize| l[l.len() * p / 100];
        let avg = l.iter().sum::<usize>() / l.len();
        format!(
            "count:{} min:{} 10th:{} 25th:{} 50th:{} 75th:{} 90th:{} max:{} avg:{avg}",
            l.len(),
            l[0],
            pct(10),
            pct(25),
            pct(50),
            pct(75),
            pct(90),
            l[l.len() - 1],
        )
    }
}

/// Chunk lengths of each block split as a separate stream.
fn split_blocks(factory: &SplitterFactory, blocks: &[Vec<u8>]) -> Vec<usize> {
    let mut lengths = Vec::new();
    for block in blocks {
        let mut s = factory.create();
        let mut d = black_box(block.as_slice());
        while !d.is_empty() {
            match s.next_split_point(d) {
                Some(n) => {
                    lengths.push(n);
                    d = &d[n..];
                }
                None => {
                    lengths.push(d.len());
                    break;
                }
            }
        }
    }
    lengths
}

/// `benchmark splitter`.
pub fn run(args: &SplitterArgs) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.rand_seed);
    let blocks: Vec<Vec<u8>> = (0..args.block_count)
        .map(|_| {
            let mut b = vec![0u8; args.data_size];
            rng.fill_bytes(&mut b);
            b
        })
        .collect();
    eprintln!(
        "splitting {} blocks of {} bytes each, parallelism {}",
        args.block_count, args.data_size, args.parallel
    );
    let total = args.parallel as f64 * args.block_count as f64 * args.data_size as f64;

    let mut results = Vec::new();
    for &name in supported_splitters() {
        let factory = SplitterFactory::new(name)?;
        let (mut lengths, elapsed) =
            run_in_parallel(args.parallel, || split_blocks(&factory, &blocks));
        lengths.sort_unstable();
        let m = Measured {
            splitter: name,
            elapsed,
            bytes_per_second: throughput(total, elapsed),
            lengths,
        };
        println!(
            "{:<25} {:>12}/s {}",
            m.splitter,
            rate(m.bytes_per_second),
            m.stats()
        );
        results.push(m);
    }

    results.sort_by_key(|m| m.elapsed);
    println!("{SEPARATOR}");
    for (i, m) in results.iter().enumerate() {
        println!(
            "{i:>3}. {:<25} {:<12}/s {}",
            m.splitter,
            rate(m.bytes_per_second),
            m.stats()
        );
    }
    if args.print_options {
        // Content-defined splitters only, by their explicit names (the legacy `DYNAMIC` is
        // DYNAMIC-4M-BUZHASH under another name).
        if let Some(best) = results.iter().find(|m| m.splitter.starts_with("DYNAMIC-")) {
            println!(
                "Fastest option for this machine is: --object-splitter={}",
                best.splitter
            );
        }
    }
    Ok(())
}
