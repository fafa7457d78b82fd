//! Opening a repository fetches its index blobs side by side (on an object store each is a
//! round trip), and still sees every content they list.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{repo_at, restore_all, snap, walk};
use kopr_blob::{BlobMetadata, BlobStorage, PutOptions};
use kopr_repo::{OpenOptions, Repository};

/// Storage whose reads of index blobs take a while, counting how many run at once.
#[derive(Debug)]
struct SlowIndexReads {
    inner: Arc<dyn BlobStorage>,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl BlobStorage for SlowIndexReads {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> kopr_blob::Result<Vec<u8>> {
        if !id.starts_with('x') {
            return self.inner.get_blob(id, offset, length);
        }
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        // Long enough for the other loaders to start their reads meanwhile.
        std::thread::sleep(Duration::from_millis(50));
        let r = self.inner.get_blob(id, offset, length);
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
    fn get_metadata(&self, id: &str) -> kopr_blob::Result<BlobMetadata> {
        self.inner.get_metadata(id)
    }
    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> kopr_blob::Result<()> {
        self.inner.put_blob(id, data, opts)
    }
    fn delete_blob(&self, id: &str) -> kopr_blob::Result<()> {
        self.inner.delete_blob(id)
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> kopr_blob::Result<()>,
    ) -> kopr_blob::Result<()> {
        self.inner.list_blobs(prefix, cb)
    }
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
}

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

    let slow = Arc::new(SlowIndexReads {
        inner: st,
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let repo = Repository::open(slow.clone(), "pw", OpenOptions::default()).unwrap();
    let most = slow.most.load(Ordering::SeqCst);
    assert!(most >= 2, "index blobs read one at a time ({most} at most)");
    // Every snapshot's contents are found through the loaded indexes.
    for (i, (src, m)) in snapshots.iter().enumerate() {
        let dst = tmp.path().join(format!("dst{i}"));
        restore_all(&repo, m, &dst);
        assert_eq!(walk(src), walk(&dst));
    }
}
