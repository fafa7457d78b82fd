//! Snapshot throughput on a generated tree in a temporary directory, into a filesystem
//! repository in another: the first snapshot (every file read, hashed, encrypted and packed)
//! and a re-snapshot of the unchanged tree (every file reused by size and modification time).
//!
//! `cargo bench -p kopr-repo --bench snapshot` measures a 64 MiB tree; under `cargo test`
//! (no `--bench` argument) each benchmark runs once on a 4 MiB tree, to keep the suite fast.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::snapshot::{create_snapshot, UploadOptions};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

const MIB: usize = 1 << 20;

/// Half the bytes in 512 files of 64 KiB over 8 directories, half in 4 files of 8 MiB;
/// `scale` divides every size.
fn make_tree(root: &Path, scale: usize) -> u64 {
    let mut total = 0u64;
    for d in 0..8 {
        let dir = root.join(format!("dir{d}"));
        fs::create_dir_all(&dir).expect("create dir");
        for f in 0..64 {
            let data = random_bytes((d * 100 + f) as u64, (64 << 10) / scale);
            total += data.len() as u64;
            fs::write(dir.join(format!("small{f}.bin")), data).expect("write file");
        }
    }
    for i in 0..4 {
        let data = random_bytes(10_000 + i, 8 * MIB / scale);
        total += data.len() as u64;
        fs::write(root.join(format!("large{i}.bin")), data).expect("write file");
    }
    total
}

fn new_repo(dir: &Path) -> Repository {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::create(dir).expect("storage"));
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").expect("create repository");
    Repository::open(st, "pw", OpenOptions::default()).expect("open repository")
}

fn source(p: &Path) -> SourceInfo {
    SourceInfo {
        host: "bench".into(),
        user_name: "bench".into(),
        path: p.to_string_lossy().into_owned(),
    }
}

fn snapshot(repo: &Repository, src: &Path) {
    let m = create_snapshot(
        repo,
        src,
        &source(src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .expect("snapshot");
    assert_eq!(m.stats.error_count, 0);
}

fn bench_snapshot(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 16 };
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    let total = make_tree(&src, scale);

    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(total));

    let mut n = 0;
    g.bench_function("first", |b| {
        b.iter_batched(
            || {
                n += 1;
                let dir = tmp.path().join(format!("repo-first-{n}"));
                (new_repo(&dir), dir)
            },
            |(repo, dir)| {
                snapshot(&repo, &src);
                (repo, dir)
            },
            BatchSize::PerIteration,
        );
        // Drop the repositories of this round, outside the measurement.
        for i in 1..=n {
            let _ = fs::remove_dir_all(tmp.path().join(format!("repo-first-{i}")));
        }
    });

    let repo = new_repo(&tmp.path().join("repo-unchanged"));
    snapshot(&repo, &src);
    g.bench_function("unchanged", |b| b.iter(|| snapshot(&repo, &src)));
    g.finish();
}

criterion_group!(benches, bench_snapshot);
criterion_main!(benches);
