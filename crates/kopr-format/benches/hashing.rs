//! Throughput of every content hash over a 1 MiB block and a 4 KiB block.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kopr_format::hashing::{supported_hash_algorithms, Hasher};

fn hashing(c: &mut Criterion) {
    for size in [4 << 10, 1 << 20] {
        let data = common::random_bytes(size, 1);
        let mut g = c.benchmark_group(format!("hashing/{}KiB", size >> 10));
        g.throughput(Throughput::Bytes(size as u64));
        for &name in supported_hash_algorithms() {
            let h = Hasher::new(name, &[7u8; 32]).unwrap();
            g.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, d| {
                b.iter(|| h.hash(d))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = hashing
}
criterion_main!(benches);
