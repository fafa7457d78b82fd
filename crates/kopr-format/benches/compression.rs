//! Throughput of every supported, non-deprecated compressor over 256 KiB of text-like data,
//! compressing and decompressing (throughput counts uncompressed bytes), and of the guess that
//! skips compressing data that would not shrink (`looks_incompressible`), on a short file's
//! worth of random bytes and on a chunk (both sampled, 1 KiB and 4 KiB).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kopr_format::compression;

fn compressors() -> impl Iterator<Item = &'static compression::Compressor> {
    compression::all()
        .iter()
        .filter(|c| c.is_supported() && !c.is_deprecated())
}

fn compression(c: &mut Criterion) {
    let data = common::text_bytes(256 << 10);
    let mut g = c.benchmark_group("compression");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for comp in compressors() {
        let mut out = Vec::with_capacity(data.len() + 1024);
        g.bench_function(BenchmarkId::new("compress", comp.name()), |b| {
            b.iter(|| {
                out.clear();
                comp.compress(&data, &mut out).unwrap();
            })
        });
        let mut packed = Vec::new();
        comp.compress(&data, &mut packed).unwrap();
        g.bench_function(BenchmarkId::new("decompress", comp.name()), |b| {
            b.iter(|| {
                out.clear();
                compression::decompress(&packed, &mut out).unwrap();
            })
        });
    }
    g.finish();
}

fn incompressible_guess(c: &mut Criterion) {
    let mut g = c.benchmark_group("looks_incompressible");
    for len in [4 << 10, 1 << 20] {
        let data = common::random_bytes(len, 3);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(len), |b| {
            b.iter(|| assert!(compression::looks_incompressible(&data)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = compression, incompressible_guess
}
criterion_main!(benches);
