//! Kopia's throttling limits (`repository throttle set|get`) and a storage wrapper that applies
//! them: bytes per second read and written, read, write and list requests per second (each a
//! pacer that spaces requests evenly), and concurrent reads and writes (each a counting
//! semaphore). Zero means unlimited, as in Kopia.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{BlobMetadata, BlobStorage, PutOptions, Result};

/// The limits, with Kopia's JSON names (`throttlingLimits` in the connection config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleLimits {
    /// Read requests per second.
    #[serde(rename = "readsPerSecond", default, skip_serializing_if = "is_zero_f")]
    pub reads_per_second: f64,
    /// Write requests per second.
    #[serde(rename = "writesPerSecond", default, skip_serializing_if = "is_zero_f")]
    pub writes_per_second: f64,
    /// List requests per second.
    #[serde(rename = "listsPerSecond", default, skip_serializing_if = "is_zero_f")]
    pub lists_per_second: f64,
    /// Bytes written per second.
    #[serde(
        rename = "maxUploadSpeedBytesPerSecond",
        default,
        skip_serializing_if = "is_zero_f"
    )]
    pub upload_bytes_per_second: f64,
    /// Bytes read per second.
    #[serde(
        rename = "maxDownloadSpeedBytesPerSecond",
        default,
        skip_serializing_if = "is_zero_f"
    )]
    pub download_bytes_per_second: f64,
    /// Reads at once.
    #[serde(rename = "concurrentReads", default, skip_serializing_if = "is_zero_u")]
    pub concurrent_reads: usize,
    /// Writes at once.
    #[serde(
        rename = "concurrentWrites",
        default,
        skip_serializing_if = "is_zero_u"
    )]
    pub concurrent_writes: usize,
}

fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_u(v: &usize) -> bool {
    *v == 0
}

impl ThrottleLimits {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        *self != ThrottleLimits::default()
    }
}

/// Spaces units (bytes, requests) at `rate` per second: each reservation starts when the
/// previous one's share of time has passed.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer of `rate` units per second (0 or less: unlimited).
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            next_free: Mutex::new(None),
        }
    }

    /// Reserves `units` at `now`; returns how long to wait before using them.
    pub fn reserve(&self, units: f64, now: Instant) -> Duration {
        if self.rate <= 0.0 || units <= 0.0 {
            return Duration::ZERO;
        }
        let Ok(mut next) = self.next_free.lock() else {
            return Duration::ZERO;
        };
        let start = match *next {
            Some(t) if t > now => t,
            _ => now,
        };
        *next = Some(start + Duration::from_secs_f64(units / self.rate));
        start - now
    }

    fn wait(&self, units: f64) {
        let d = self.reserve(units, Instant::now());
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

/// A counting semaphore (0: unlimited).
#[derive(Debug)]
struct Slots {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

struct SlotGuard<'a>(&'a Slots);

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Option<SlotGuard<'_>> {
        if self.max == 0 {
            return None;
        }
        let mut used = self.used.lock().ok()?;
        while *used >= self.max {
            used = self.freed.wait(used).ok()?;
        }
        *used += 1;
        Some(SlotGuard(self))
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut used) = self.0.used.lock() {
            *used = used.saturating_sub(1);
        }
        self.0.freed.notify_one();
    }
}

/// Storage whose requests are held to [`ThrottleLimits`].
#[derive(Debug)]
pub struct ThrottledStorage {
    inner: Arc<dyn BlobStorage>,
    limits: ThrottleLimits,
    reads: Pacer,
    writes: Pacer,
    lists: Pacer,
    download: Pacer,
    upload: Pacer,
    read_slots: Slots,
    write_slots: Slots,
}

impl ThrottledStorage {
    /// Wraps `inner` with `limits`.
    pub fn new(inner: Arc<dyn BlobStorage>, limits: ThrottleLimits) -> ThrottledStorage {
        ThrottledStorage {
            inner,
            limits,
            reads: Pacer::new(limits.reads_per_second),
            writes: Pacer::new(limits.writes_per_second),
            lists: Pacer::new(limits.lists_per_second),
            download: Pacer::new(limits.download_bytes_per_second),
            upload: Pacer::new(limits.upload_bytes_per_second),
            read_slots: Slots::new(limits.concurrent_reads),
            write_slots: Slots::new(limits.concurrent_writes),
        }
    }

    /// The limits applied.
    pub fn limits(&self) -> &ThrottleLimits {
        &self.limits
    }
}

impl BlobStorage for ThrottledStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let _slot = self.read_slots.acquire();
        self.reads.wait(1.0);
        let data = self.inner.get_blob(id, offset, length)?;
        // The bytes are paid for after they arrive (their count is known only then).
        self.download.wait(data.len() as f64);
        Ok(data)
    }
    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let _slot = self.read_slots.acquire();
        self.reads.wait(1.0);
        self.inner.get_metadata(id)
    }
    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        let _slot = self.write_slots.acquire();
        self.writes.wait(1.0);
        self.upload.wait(data.len() as f64);
        self.inner.put_blob(id, data, opts)
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        let _slot = self.write_slots.acquire();
        self.writes.wait(1.0);
        self.inner.delete_blob(id)
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        self.lists.wait(1.0);
        self.inner.list_blobs(prefix, cb)
    }
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
    fn extend_retention(&self, id: &str, mode: &str, period: Duration) -> Result<()> {
        let _slot = self.write_slots.acquire();
        self.writes.wait(1.0);
        self.inner.extend_retention(id, mode, period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    #[test]
    fn a_pacer_spaces_reservations_by_their_share_of_a_second() {
        let p = Pacer::new(1000.0);
        let t0 = Instant::now();
        assert_eq!(p.reserve(500.0, t0), Duration::ZERO);
        // The first 500 units take until t0 + 0.5 s, so the next start waits that long.
        assert_eq!(p.reserve(250.0, t0), Duration::from_millis(500));
        assert_eq!(
            p.reserve(1.0, t0 + Duration::from_millis(100)),
            Duration::from_millis(650)
        );
        // Once the pacer is idle again, nothing waits.
        assert_eq!(p.reserve(1.0, t0 + Duration::from_secs(5)), Duration::ZERO);
        let unlimited = Pacer::new(0.0);
        assert_eq!(unlimited.reserve(1e12, t0), Duration::ZERO);
        assert_eq!(unlimited.reserve(1e12, t0), Duration::ZERO);
    }

    #[test]
    fn slots_bound_concurrency_and_free_on_drop() {
        let s = Slots::new(2);
        let a = s.acquire();
        let b = s.acquire();
        assert_eq!(*s.used.lock().unwrap(), 2);
        drop(a);
        assert_eq!(*s.used.lock().unwrap(), 1);
        let c = s.acquire();
        assert_eq!(*s.used.lock().unwrap(), 2);
        drop((b, c));
        assert_eq!(*s.used.lock().unwrap(), 0);
        assert!(Slots::new(0).acquire().is_none());
    }

    #[test]
    fn the_wrapper_passes_everything_through_and_kopias_json_names() {
        let mem = Arc::new(MemoryStorage::default());
        let limits = ThrottleLimits {
            concurrent_reads: 1,
            concurrent_writes: 1,
            ..ThrottleLimits::default()
        };
        let t = ThrottledStorage::new(mem.clone(), limits);
        t.put_blob("a", b"one", &PutOptions::default()).unwrap();
        assert_eq!(t.get_blob("a", 1, None).unwrap(), b"ne");
        assert_eq!(t.list_all("").unwrap().len(), 1);
        t.delete_blob("a").unwrap();
        assert!(mem.list_all("").unwrap().is_empty());
        let json = serde_json::to_string(&ThrottleLimits {
            upload_bytes_per_second: 1e6,
            concurrent_reads: 3,
            ..ThrottleLimits::default()
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"maxUploadSpeedBytesPerSecond":1000000.0,"concurrentReads":3}"#
        );
        let back: ThrottleLimits = serde_json::from_str(&json).unwrap();
        assert_eq!(back.upload_bytes_per_second, 1e6);
        assert!(back.is_limited() && !ThrottleLimits::default().is_limited());
    }
}
