//! Reads that each cost a round trip on an object store: opening a repository lists its epoch
//! blobs side by side, fetches its index blobs side by side and still sees every content they
//! list; a restore reads as many
//! file ranges at once as it is told (16 by default); manifests are read once into the local
//! content cache and from there by the next command.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::counting::CountingStorage;
use common::{repo_at, restore_all, snap, walk};
use kopr_repo::snapshot::{list_snapshots, restore, RestoreOptions, DEFAULT_RESTORE_READERS};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

#[test]
fn index_blobs_are_fetched_side_by_side_and_all_are_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    // Each snapshot writes its own index blobs.
    let mut snapshots = Vec::new();
    for i in 0..4 {
        let src = tmp.path().join(format!("src{i}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), format!("file of snapshot {i}")).unwrap();
        snapshots.push((src.clone(), snap(&repo, &src)));
    }
    drop(repo);
    let indexes = st.list_all("x").unwrap().len();
    assert!(indexes >= 4, "{indexes} index blobs");

    // Reads of index blobs take 50 ms, long enough for the other loaders to start meanwhile.
    let slow = Arc::new(CountingStorage::new(st));
    slow.slow_index_reads.store(true, Ordering::SeqCst);
    let repo = Repository::open(slow.clone(), "pw", OpenOptions::default()).unwrap();
    let most = slow.index_reads_at_once.load(Ordering::SeqCst);
    assert!(most >= 2, "index blobs read one at a time ({most} at most)");
    // Every snapshot's contents are found through the loaded indexes.
    for (i, (src, m)) in snapshots.iter().enumerate() {
        let dst = tmp.path().join(format!("dst{i}"));
        restore_all(&repo, m, &dst);
        assert_eq!(walk(src), walk(&dst));
    }
}

#[test]
fn opening_a_repository_lists_the_epoch_blobs_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    drop(repo);
    let slow = Arc::new(CountingStorage::new(st));
    slow.slow_lists.store(true, Ordering::SeqCst);
    let repo = Repository::open(slow.clone(), "pw", OpenOptions::default()).unwrap();
    list_snapshots(&repo, None).unwrap();
    // Markers, watermarks, compactions and range checkpoints at once; then the epochs.
    let most = slow.lists_at_once.load(Ordering::SeqCst);
    assert!(most >= 4, "listed {most} prefixes at once at most");
}

#[test]
fn a_restore_reads_as_many_ranges_at_once_as_it_is_told() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    // Each snapshot of one part writes its own data pack; the whole tree then needs 24 packs.
    let src = tmp.path().join("src");
    for i in 0..24u64 {
        let part = src.join(format!("part{i:02}"));
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("f"), random_bytes(i, 64 << 10)).unwrap();
        snap(&repo, &part);
    }
    let whole = snap(&repo, &src);
    drop(repo);
    assert!(st.list_all("p").unwrap().len() >= 24);

    // Reads of data packs take 50 ms, long enough for every reader to start meanwhile.
    let slow = Arc::new(CountingStorage::new(st));
    slow.slow_pack_reads.store(true, Ordering::SeqCst);
    let repo = Repository::open(slow.clone(), "pw", OpenOptions::default()).unwrap();
    let root = whole.root_entry.as_ref().unwrap();
    let most = |parallel: usize, name: &str| {
        slow.pack_reads_at_once.store(0, Ordering::SeqCst);
        let dst = tmp.path().join(name);
        let opts = RestoreOptions {
            parallel,
            ..Default::default()
        };
        restore(&repo, root, &dst, opts).unwrap();
        assert_eq!(walk(&src), walk(&dst));
        slow.pack_reads_at_once.load(Ordering::SeqCst)
    };
    assert_eq!(most(3, "three"), 3);
    assert_eq!(most(1, "one"), 1);
    let default = most(0, "default");
    assert!(
        default > 8 && default <= DEFAULT_RESTORE_READERS,
        "{default} reads at once by default"
    );
}

#[test]
fn manifests_are_read_from_the_local_cache_by_the_next_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"first").unwrap();
    snap(&repo, &src);
    drop(repo);
    let counting = Arc::new(CountingStorage::new(st));
    let cache = tmp.path().join("cache");
    let open = || {
        let opts = OpenOptions {
            cache_dir: Some(cache.clone()),
            content_cache_bytes: 1 << 30,
            ..Default::default()
        };
        Repository::open(counting.clone(), "pw", opts).unwrap()
    };
    let manifest_reads = || -> Vec<String> {
        let mut gets = counting.gets.lock().unwrap();
        let q: Vec<String> = gets
            .keys()
            .filter(|id| id.starts_with('q'))
            .cloned()
            .collect();
        gets.clear();
        q
    };
    let snapshots = |repo: &Repository| list_snapshots(repo, None).unwrap().len();

    // The first command fetches the manifest pack; the next reads it from the cache.
    assert_eq!(snapshots(&open()), 1);
    assert_eq!(manifest_reads().len(), 1);
    assert_eq!(snapshots(&open()), 1);
    assert_eq!(manifest_reads(), Vec::<String>::new());

    // A snapshot made meanwhile is seen, and only its manifest pack is fetched.
    std::fs::write(src.join("f"), b"second").unwrap();
    let writer = open();
    snap(&writer, &src);
    drop(writer);
    manifest_reads();
    assert_eq!(snapshots(&open()), 2);
    assert_eq!(manifest_reads().len(), 1);
    assert_eq!(snapshots(&open()), 2);
    assert_eq!(manifest_reads(), Vec::<String>::new());

    // A damaged cached copy is fetched again.
    for pack in std::fs::read_dir(cache.join("contents")).unwrap().flatten() {
        for range in std::fs::read_dir(pack.path()).unwrap().flatten() {
            let b: Vec<u8> = std::fs::read(range.path()).unwrap();
            std::fs::write(range.path(), b.iter().map(|x| x ^ 1).collect::<Vec<u8>>()).unwrap();
        }
    }
    assert_eq!(snapshots(&open()), 2);
    assert_eq!(manifest_reads().len(), 2);
}
