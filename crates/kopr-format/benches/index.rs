//! Lookups in a large pack index: about a million contents (100,000 under `cargo test`, which
//! runs each benchmark once), built with the crate's [`IndexBuilder`] and encoded as index v2
//! and v1, then searched for present and absent content ids. And the encoding of an index blob
//! from entries held in a hash map, as a writer holds them until it flushes (a first snapshot
//! of 100,000 small files writes one such blob of 100,000 entries at its end).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kopr_format::index::{ContentId, Index, IndexBuilder, IndexEntry};
use rand::{Rng, SeedableRng};

/// Contents per pack, as a 20 MB pack of ~100 KB contents would hold.
const PER_PACK: usize = 200;

fn random_id(rng: &mut impl Rng) -> ContentId {
    let mut hash = [0u8; 16];
    rng.fill(&mut hash);
    ContentId::new(None, &hash).unwrap()
}

fn entry(i: usize, id: ContentId) -> IndexEntry {
    IndexEntry {
        content_id: id,
        pack_blob_id: format!("p{:032x}", i / PER_PACK).into(),
        pack_offset: ((i % PER_PACK) * 100_000) as u32,
        packed_length: 100_028,
        original_length: 100_000,
        timestamp_seconds: 1_700_000_000 + (i / PER_PACK) as i64,
        deleted: false,
        format_version: 2,
        compression_header_id: 0,
        encryption_key_id: 0,
    }
}

fn index_lookup(c: &mut Criterion) {
    let count = if common::full_run() {
        1_000_000
    } else {
        100_000
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let ids: Vec<ContentId> = (0..count).map(|_| random_id(&mut rng)).collect();
    let builder: IndexBuilder = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| entry(i, id))
        .collect();
    // Probes: ids in the index in random order, and ids that are not.
    let present: Vec<ContentId> = (0..4096).map(|_| ids[rng.gen_range(0..count)]).collect();
    let absent: Vec<ContentId> = (0..4096).map(|_| random_id(&mut rng)).collect();

    let indexes = [
        (
            "v2",
            Index::parse(builder.encode_v2_stable().unwrap()).unwrap(),
        ),
        (
            "v1",
            Index::parse(builder.encode_v1_stable().unwrap()).unwrap(),
        ),
    ];
    let mut g = c.benchmark_group(format!("index_lookup/{count}"));
    for (version, index) in &indexes {
        assert_eq!(index.len(), count);
        for (what, probes) in [("present", &present), ("absent", &absent)] {
            let mut next = probes.iter().cycle();
            g.bench_function(BenchmarkId::new(*version, what), |b| {
                b.iter(|| index.get(next.next().unwrap()).unwrap())
            });
        }
    }
    let mut next = present.iter().cycle();
    g.bench_function(BenchmarkId::new("builder", "present"), |b| {
        b.iter(|| builder.get(next.next().unwrap()).is_some())
    });
    g.finish();
}

fn index_encode(c: &mut Criterion) {
    let count: usize = 100_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    // Entries of one pack share its name, as a writer's do.
    let packs: Vec<_> = (0..count.div_ceil(PER_PACK))
        .map(|p| entry(p * PER_PACK, random_id(&mut rng)).pack_blob_id)
        .collect();
    let held: std::collections::HashMap<ContentId, IndexEntry> = (0..count)
        .map(|i| {
            let id = random_id(&mut rng);
            let e = IndexEntry {
                pack_blob_id: packs[i / PER_PACK].clone(),
                ..entry(i, id)
            };
            (id, e)
        })
        .collect();
    let mut g = c.benchmark_group(format!("index_encode/{count}"));
    g.bench_function("v2_from_map", |b| {
        b.iter(|| kopr_format::index::encode_index_refs(2, held.values()).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = index_lookup, index_encode
}
criterion_main!(benches);
