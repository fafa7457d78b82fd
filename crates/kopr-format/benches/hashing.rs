//! Throughput of every content hash over a 1 MiB block and a 4 KiB block, and of the
//! default hash over 1,000 short contents (0 to 4 KiB, as many small files give) hashed one
//! at a time and side by side (`Hasher::hash_many`).

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

fn hashing_short_contents(c: &mut Criterion) {
    let data = common::random_bytes(1 << 20, 2);
    let inputs: Vec<&[u8]> = (0..1000usize)
        .map(|i| {
            let (start, len) = ((i * 7919) % 4096, (i * 104_729) % 4097);
            &data[start..start + len]
        })
        .collect();
    let total: usize = inputs.iter().map(|d| d.len()).sum();
    let h = Hasher::new(kopr_format::hashing::DEFAULT_HASH, &[7u8; 32]).unwrap();
    let mut g = c.benchmark_group("hashing/1000-short-contents");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("one-at-a-time", |b| {
        b.iter(|| inputs.iter().map(|d| h.hash(d)).collect::<Vec<_>>())
    });
    g.bench_function("side-by-side", |b| b.iter(|| h.hash_many(&inputs)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = hashing, hashing_short_contents
}
criterion_main!(benches);
