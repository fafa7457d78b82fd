//! A read-only view of another storage: reads and listings pass through, and every operation
//! that would change the storage (put, delete, extending a lock) fails with
//! [`BlobError::ReadOnly`] before it reaches the storage. A connection made with `--readonly`
//! opens its repository through this wrapper, so no command, present or future, can write.

use std::sync::Arc;
use std::time::Duration;

use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// Storage that refuses every write to the storage it wraps.
#[derive(Debug)]
pub struct ReadOnlyStorage {
    inner: Arc<dyn BlobStorage>,
}

impl ReadOnlyStorage {
    /// Wraps `inner`; nothing can be written through the result.
    pub fn new(inner: Arc<dyn BlobStorage>) -> Self {
        ReadOnlyStorage { inner }
    }

    fn refuse(&self, op: &'static str, id: &str) -> BlobError {
        BlobError::ReadOnly {
            op,
            id: id.to_string(),
        }
    }
}

impl BlobStorage for ReadOnlyStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.inner.get_blob(id, offset, length)
    }
    fn read_blob_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        self.inner.read_blob_into(id, offset, out)
    }
    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        self.inner.get_metadata(id)
    }
    fn put_blob(&self, id: &str, _data: &[u8], _opts: &PutOptions) -> Result<()> {
        Err(self.refuse("write", id))
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        Err(self.refuse("delete", id))
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
    fn extend_retention(&self, id: &str, _mode: &str, _period: Duration) -> Result<()> {
        Err(self.refuse("extend the retention of", id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    #[test]
    fn reads_pass_and_every_write_is_refused_untouched() {
        let mem = Arc::new(MemoryStorage::default());
        mem.put_blob("a", b"one", &PutOptions::default()).unwrap();
        let ro = ReadOnlyStorage::new(mem.clone());
        assert_eq!(ro.get_blob("a", 0, None).unwrap(), b"one");
        assert_eq!(ro.get_metadata("a").unwrap().length, 3);
        assert_eq!(ro.list_all("").unwrap().len(), 1);

        let put = ro.put_blob("b", b"two", &PutOptions::default());
        assert!(
            matches!(put, Err(BlobError::ReadOnly { op: "write", .. })),
            "{put:?}"
        );
        let over = ro.put_blob("a", b"new", &PutOptions::default());
        assert!(matches!(over, Err(BlobError::ReadOnly { .. })), "{over:?}");
        let del = ro.delete_blob("a");
        assert!(
            matches!(del, Err(BlobError::ReadOnly { op: "delete", .. })),
            "{del:?}"
        );
        let ext = ro.extend_retention("a", "COMPLIANCE", Duration::from_secs(60));
        assert!(matches!(ext, Err(BlobError::ReadOnly { .. })), "{ext:?}");

        // The storage underneath is as it was.
        let ids: Vec<_> = mem
            .list_all("")
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, vec!["a".to_string()]);
        assert_eq!(mem.get_blob("a", 0, None).unwrap(), b"one");
        assert!(put.unwrap_err().to_string().contains("read-only"));
    }
}
