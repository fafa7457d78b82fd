//! Object lock on every put of chosen prefixes: a wrapper that adds a retention mode and
//! period to the put options of each blob whose id starts with one of the prefixes, as Kopia
//! does for a repository whose `kopia.blobcfg` configures retention. Which prefixes is the
//! repository format's business; this only applies them.

use std::sync::Arc;
use std::time::Duration;

use crate::{BlobMetadata, BlobStorage, PutOptions, Result};

/// Storage whose puts of blobs with the given prefixes carry object-lock retention.
#[derive(Debug)]
pub struct LockingStorage {
    inner: Arc<dyn BlobStorage>,
    prefixes: Vec<String>,
    mode: String,
    period: Duration,
}

impl LockingStorage {
    /// Locks every blob put under one of `prefixes` in `mode` (`GOVERNANCE` or
    /// `COMPLIANCE`) for `period` from the put.
    pub fn new(
        inner: Arc<dyn BlobStorage>,
        prefixes: &[&str],
        mode: &str,
        period: Duration,
    ) -> Self {
        LockingStorage {
            inner,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            mode: mode.to_string(),
            period,
        }
    }

    /// Whether a put of `id` is locked.
    pub fn locks(&self, id: &str) -> bool {
        self.prefixes.iter().any(|p| id.starts_with(p.as_str()))
    }
}

impl BlobStorage for LockingStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.inner.get_blob(id, offset, length)
    }
    fn read_blob_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        self.inner.read_blob_into(id, offset, out)
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        self.inner.get_metadata(id)
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if !self.locks(id) {
            return self.inner.put_blob(id, data, opts);
        }
        let opts = PutOptions {
            retention_mode: Some(self.mode.clone()),
            retention_period: Some(self.period),
            ..opts.clone()
        };
        self.inner.put_blob(id, data, &opts)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.inner.delete_blob(id)
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        self.inner.list_blobs(prefix, cb)
    }

    fn display_name(&self) -> String {
        self.inner.display_name()
    }

    fn extend_retention(&self, id: &str, mode: &str, period: Duration) -> Result<()> {
        self.inner.extend_retention(id, mode, period)
    }

    fn list_all(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.inner.list_all(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::memory::MemoryStorage;

    #[test]
    fn locks_only_the_chosen_prefixes_and_keeps_other_options() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mem = Arc::new(MemoryStorage::with_object_lock(clock.clone()));
        let period = Duration::from_secs(48 * 3600);
        let st = LockingStorage::new(mem.clone(), &["p", "xn"], "COMPLIANCE", period);
        let before = clock.now();
        st.put_blob("p01", b"a", &PutOptions::default()).unwrap();
        st.put_blob("xn0_1", b"b", &PutOptions::default()).unwrap();
        st.put_blob("_log_1", b"c", &PutOptions::default()).unwrap();
        let (mode, until) = mem.retention_of("p01").expect("p01 locked");
        assert_eq!(mode, "COMPLIANCE");
        assert!(until >= before + chrono::Duration::hours(48));
        assert!(mem.retention_of("xn0_1").is_some());
        assert!(mem.retention_of("_log_1").is_none());
        // do_not_overwrite still applies under the lock.
        let keep = PutOptions {
            do_not_overwrite: true,
            ..PutOptions::default()
        };
        assert!(st.put_blob("p01", b"again", &keep).is_err());
        assert_eq!(st.get_blob("p01", 0, None).unwrap(), b"a");
    }
}
