//! In-memory storage for tests, stamping blobs with an injectable clock.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::{checked_range, BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// A stored blob: its bytes and when it was written.
type Stored = (Arc<Vec<u8>>, chrono::DateTime<chrono::Utc>);

/// Object-lock retention per blob: mode and retain-until time.
type Locks = BTreeMap<String, (String, chrono::DateTime<chrono::Utc>)>;

/// Blobs in a map.
#[derive(Debug)]
pub struct MemoryStorage {
    blobs: RwLock<BTreeMap<String, Stored>>,
    clock: Arc<dyn Clock>,
    /// Object-lock retention: mode and retain-until time per blob (when enabled).
    retention: Option<RwLock<Locks>>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// Empty storage on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Empty storage whose timestamps come from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryStorage {
            blobs: RwLock::new(BTreeMap::new()),
            clock,
            retention: None,
        }
    }

    /// Storage that records object-lock retention, as a locking bucket does.
    pub fn with_object_lock(clock: Arc<dyn Clock>) -> Self {
        MemoryStorage {
            retention: Some(RwLock::new(BTreeMap::new())),
            ..Self::with_clock(clock)
        }
    }

    /// The retention mode and retain-until time of a blob, if it is locked.
    pub fn retention_of(&self, id: &str) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
        self.retention.as_ref()?.read().ok()?.get(id).cloned()
    }

    fn lock_until(&self, id: &str, mode: &str, period: std::time::Duration) -> Result<()> {
        let Some(r) = &self.retention else {
            return Err(BlobError::Other(
                "in-memory storage: object lock is not enabled".into(),
            ));
        };
        let until = self.clock.now()
            + chrono::Duration::from_std(period)
                .map_err(|e| BlobError::Other(format!("invalid retention period: {e}")))?;
        let mut g = r.write().map_err(|_| poisoned())?;
        let e = g
            .entry(id.to_string())
            .or_insert_with(|| (mode.to_string(), until));
        if until > e.1 {
            *e = (mode.to_string(), until);
        }
        Ok(())
    }
}

fn poisoned() -> BlobError {
    BlobError::Other("memory storage lock poisoned".into())
}

impl BlobStorage for MemoryStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let g = self.blobs.read().map_err(|_| poisoned())?;
        let (data, _) = g
            .get(id)
            .ok_or_else(|| BlobError::NotFound(id.to_string()))?;
        let r = checked_range(id, data.len() as u64, offset, length)?;
        Ok(data[r].to_vec())
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let g = self.blobs.read().map_err(|_| poisoned())?;
        let (data, ts) = g
            .get(id)
            .ok_or_else(|| BlobError::NotFound(id.to_string()))?;
        Ok(BlobMetadata {
            id: id.to_string(),
            length: data.len() as u64,
            timestamp: *ts,
        })
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        let mut g = self.blobs.write().map_err(|_| poisoned())?;
        if opts.do_not_overwrite && g.contains_key(id) {
            return Err(BlobError::Other(format!("blob {id} already exists")));
        }
        g.insert(id.to_string(), (Arc::new(data.to_vec()), self.clock.now()));
        drop(g);
        if let (Some(mode), Some(period)) = (&opts.retention_mode, opts.retention_period) {
            if self.retention.is_some() {
                self.lock_until(id, mode, period)?;
            }
        }
        Ok(())
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        // As in a versioned locking bucket, deleting hides the blob (a delete marker); the
        // locked version and its retention stay on record.
        self.blobs.write().map_err(|_| poisoned())?.remove(id);
        Ok(())
    }

    fn extend_retention(&self, id: &str, mode: &str, period: std::time::Duration) -> Result<()> {
        if !self.blobs.read().map_err(|_| poisoned())?.contains_key(id) {
            return Err(BlobError::NotFound(id.to_string()));
        }
        self.lock_until(id, mode, period)
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        let items: Vec<BlobMetadata> = {
            let g = self.blobs.read().map_err(|_| poisoned())?;
            g.range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, (d, ts))| BlobMetadata {
                    id: k.clone(),
                    length: d.len() as u64,
                    timestamp: *ts,
                })
                .collect()
        };
        for m in items {
            cb(m)?;
        }
        Ok(())
    }

    fn display_name(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;

    #[test]
    fn conformance() {
        crate::conformance::run(&MemoryStorage::new());
    }

    #[test]
    fn timestamps_follow_the_injected_clock() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let st = MemoryStorage::with_clock(clock.clone());
        st.put_blob("a", b"1", &PutOptions::default()).unwrap();
        clock.advance(std::time::Duration::from_secs(7200));
        st.put_blob("b", b"2", &PutOptions::default()).unwrap();
        assert_eq!(st.get_metadata("a").unwrap().timestamp, t0);
        assert_eq!(
            st.get_metadata("b").unwrap().timestamp,
            t0 + chrono::Duration::hours(2)
        );
    }
}
