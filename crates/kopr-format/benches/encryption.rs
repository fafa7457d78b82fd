//! Throughput of sealing and opening a 1 MiB content with every encryption algorithm.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kopr_format::encryption::{supported_encryption_algorithms, Encryptor};

fn encryption(c: &mut Criterion) {
    let data = common::random_bytes(1 << 20, 2);
    let content_id = [5u8; 16];
    let mut g = c.benchmark_group("encryption");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for &name in supported_encryption_algorithms() {
        let enc = Encryptor::new(name, &[9u8; 32]).unwrap();
        let mut out = Vec::with_capacity(data.len() + enc.overhead());
        g.bench_function(BenchmarkId::new("encrypt", name), |b| {
            b.iter(|| {
                out.clear();
                enc.encrypt(&data, &content_id, &mut out);
            })
        });
        let mut sealed = Vec::new();
        enc.encrypt(&data, &content_id, &mut sealed);
        let mut plain = Vec::with_capacity(data.len());
        g.bench_function(BenchmarkId::new("decrypt", name), |b| {
            b.iter(|| {
                plain.clear();
                enc.decrypt(&sealed, &content_id, &mut plain).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = encryption
}
criterion_main!(benches);
