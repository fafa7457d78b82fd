//! A storage wrapper for tests that counts what is read.

use kopr_blob::BlobStorage;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Storage that counts the reads of each blob and how many index blobs, data packs and
/// listings are read at once; it can make reads of data packs panic, and reads of index blobs
/// or data packs, and listings, slow.
#[derive(Debug)]
pub struct CountingStorage {
    inner: Arc<dyn BlobStorage>,
    pub gets: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Every read: blob, offset, length.
    pub reads: std::sync::Mutex<Vec<(String, u64, Option<u64>)>>,
    /// Reads left before a read of a data pack panics.
    pub calm: AtomicI64,
    /// Whether a read of an index blob takes 50 ms (so that others may start meanwhile).
    pub slow_index_reads: AtomicBool,
    index_reads_now: AtomicUsize,
    /// The most index blobs read at once.
    pub index_reads_at_once: AtomicUsize,
    /// Whether a read of a data pack takes 50 ms.
    pub slow_pack_reads: AtomicBool,
    pack_reads_now: AtomicUsize,
    /// The most reads of data packs at once.
    pub pack_reads_at_once: AtomicUsize,
    /// Whether a listing takes 50 ms.
    pub slow_lists: AtomicBool,
    lists_now: AtomicUsize,
    /// The most listings at once.
    pub lists_at_once: AtomicUsize,
}

impl CountingStorage {
    pub fn new(inner: Arc<dyn BlobStorage>) -> Self {
        CountingStorage {
            inner,
            gets: Default::default(),
            reads: Default::default(),
            calm: AtomicI64::new(i64::MAX),
            slow_index_reads: AtomicBool::new(false),
            index_reads_now: AtomicUsize::new(0),
            index_reads_at_once: AtomicUsize::new(0),
            slow_pack_reads: AtomicBool::new(false),
            pack_reads_now: AtomicUsize::new(0),
            pack_reads_at_once: AtomicUsize::new(0),
            slow_lists: AtomicBool::new(false),
            lists_now: AtomicUsize::new(0),
            lists_at_once: AtomicUsize::new(0),
        }
    }

    /// Runs `op` counted in `now` / `at_once`, after 50 ms when `slow`.
    fn counted<T>(
        now: &AtomicUsize,
        at_once: &AtomicUsize,
        slow: &AtomicBool,
        op: impl FnOnce() -> T,
    ) -> T {
        at_once.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        if slow.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let r = op();
        now.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn read(&self, id: &str, offset: u64, length: Option<u64>) -> kopr_blob::Result<Vec<u8>> {
        let (now, at_once, slow) = match id.as_bytes().first() {
            Some(b'x') => (
                &self.index_reads_now,
                &self.index_reads_at_once,
                &self.slow_index_reads,
            ),
            Some(b'p') => (
                &self.pack_reads_now,
                &self.pack_reads_at_once,
                &self.slow_pack_reads,
            ),
            _ => return self.inner.get_blob(id, offset, length),
        };
        Self::counted(now, at_once, slow, || {
            self.inner.get_blob(id, offset, length)
        })
    }
}

impl BlobStorage for CountingStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> kopr_blob::Result<Vec<u8>> {
        let left = self.calm.fetch_sub(1, Ordering::SeqCst);
        if id.starts_with('p') && left <= 0 {
            panic!("storage bug reading {id}");
        }
        *self.gets.lock().unwrap().entry(id.to_string()).or_default() += 1;
        self.reads
            .lock()
            .unwrap()
            .push((id.to_string(), offset, length));
        self.read(id, offset, length)
    }
    fn get_metadata(&self, id: &str) -> kopr_blob::Result<kopr_blob::BlobMetadata> {
        self.inner.get_metadata(id)
    }
    fn put_blob(
        &self,
        id: &str,
        data: &[u8],
        opts: &kopr_blob::PutOptions,
    ) -> kopr_blob::Result<()> {
        self.inner.put_blob(id, data, opts)
    }
    fn delete_blob(&self, id: &str) -> kopr_blob::Result<()> {
        self.inner.delete_blob(id)
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(kopr_blob::BlobMetadata) -> kopr_blob::Result<()>,
    ) -> kopr_blob::Result<()> {
        Self::counted(
            &self.lists_now,
            &self.lists_at_once,
            &self.slow_lists,
            || self.inner.list_blobs(prefix, cb),
        )
    }
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
}
