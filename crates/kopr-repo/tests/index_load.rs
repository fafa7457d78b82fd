//! Opening a repository fetches its index blobs side by side (on an object store each is a
//! round trip), and still sees every content they list.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::counting::CountingStorage;
use common::{repo_at, restore_all, snap, walk};
use kopr_repo::{OpenOptions, Repository};

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
