//! Throughput of the splitters over 16 MiB of random data: both rolling hashes at three
//! nominal sizes, and the fixed splitter.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kopr_format::splitter::split_all;

const SPLITTERS: &[&str] = &[
    "DYNAMIC-1M-BUZHASH",
    "DYNAMIC-4M-BUZHASH",
    "DYNAMIC-8M-BUZHASH",
    "DYNAMIC-1M-RABINKARP",
    "DYNAMIC-4M-RABINKARP",
    "DYNAMIC-8M-RABINKARP",
    "FIXED-4M",
];

fn splitting(c: &mut Criterion) {
    let data = common::random_bytes(16 << 20, 3);
    let mut g = c.benchmark_group("splitting");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for &name in SPLITTERS {
        g.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, d| {
            b.iter(|| split_all(name, d).unwrap().len())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = splitting
}
criterion_main!(benches);
