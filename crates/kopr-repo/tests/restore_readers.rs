//! A restore reads its file ranges on `RestoreOptions::parallel` readers at once (16 unless
//! told otherwise): on an object store each read waits a round trip.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::counting::CountingStorage;
use common::{repo_at, snap, walk};
use kopr_repo::snapshot::{restore, RestoreOptions, DEFAULT_RESTORE_READERS};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

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
    let mut most = |parallel: usize, name: &str| {
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
