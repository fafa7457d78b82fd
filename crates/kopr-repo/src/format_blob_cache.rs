//! Local copies of the format blobs (`kopia.repository`, `kopia.blobcfg`), as Kopia keeps them:
//! one file per blob, named by its id, directly in the connection's cache directory, holding
//! the bytes exactly as stored. Its modification time is when it was fetched; a copy younger
//! than the validity (15 minutes by default, never more) is used instead of a request to the
//! storage, which saves one or two round trips per command on an object store.
//!
//! The validity comes from the connection config's `formatBlobCacheDuration` (nanoseconds):
//! 0 means the default, more than 15 minutes is capped at 15 minutes, and a negative value
//! means "do not trust the cache on the first read" (the blobs are read from storage, the
//! copies refreshed), which for one command per process means always reading storage.
//!
//! As in Kopia, another client's change of the format (password, parameters, retention, an
//! upgrade lock) is seen by this client once its copy is older than the validity; Kopia's
//! upgrade lock waits at least that long for other clients to drain. Changes made by this
//! client drop its copies ([`FormatBlobCache::forget`]) before and after the write, and every
//! check that the stored format is still the one opened reads the storage, never this cache.
//!
//! kopr uses a copy only beside its check file (`<blob id>.kopr-check`: a digest of the storage's
//! name and the copy's bytes, written with it), so a copy written for another repository
//! sharing the directory, or by another program, is never taken for this repository's (with
//! the same password it would decrypt). Kopia ignores the check files.
//!
//! A missing, unreadable, unwritable or read-only cache directory only disables this cache;
//! nothing here is ever an error. Time comes from the injected [`Clock`] (the copy's
//! modification time is set from it), so tests cross the validity without waiting.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kopr_blob::clock::{Clock, SystemClock};
use kopr_blob::{BlobError, BlobStorage};
use kopr_format::repository_blob::{BLOBCFG_BLOB_ID, REPOSITORY_BLOB_ID};

use crate::cache_file::write_whole;
use crate::error::Result;

/// Kopia's default (and largest) validity of a cached format blob: 15 minutes, in nanoseconds.
pub const DEFAULT_VALIDITY_NANOS: i64 = 15 * 60 * 1_000_000_000;

/// The blobs this cache holds.
pub const CACHED_BLOB_IDS: [&str; 2] = [REPOSITORY_BLOB_ID, BLOBCFG_BLOB_ID];

/// The connection setting as Kopia applies it: 0 (unset) means the default.
pub fn effective_setting(nanos: i64) -> i64 {
    if nanos == 0 {
        DEFAULT_VALIDITY_NANOS
    } else {
        nanos
    }
}

/// Whether `name` (a directory entry) is one of this cache's files: a copy, its check file,
/// or a temporary file of either.
pub fn is_cache_file_name(name: &str) -> bool {
    let name = name.strip_prefix('.').unwrap_or(name);
    CACHED_BLOB_IDS
        .iter()
        .any(|id| name == *id || name.starts_with(&format!("{id}.")))
}

/// Removes the cached format blobs in `dir` (best effort).
pub fn forget_in(dir: &Path) {
    for id in CACHED_BLOB_IDS {
        remove_copy(dir, id);
    }
}

/// Removes the copy of `id` in `dir` and its check file (best effort).
fn remove_copy(dir: &Path, id: &str) {
    let _ = fs::remove_file(dir.join(id));
    let _ = fs::remove_file(dir.join(check_name(id)));
}

fn check_name(id: &str) -> String {
    format!("{id}.kopr-check")
}

/// What the check file of a copy of `bytes` from the storage named `storage` holds.
fn check_of(storage: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"kopr format blob cache v1\0");
    h.update(storage.as_bytes());
    h.update(b"\0");
    h.update(bytes);
    hex::encode(h.finalize())
}

/// Bytes of a format blob and where they came from.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) from_cache: bool,
}

/// The format blobs cached in a directory, with their validity.
#[derive(Debug, Clone)]
pub struct FormatBlobCache {
    dir: Option<PathBuf>,
    validity: Duration,
    trust_first_read: bool,
    clock: Arc<dyn Clock>,
}

impl FormatBlobCache {
    /// A cache in `dir` (`None`: no cache) with the connection's `formatBlobCacheDuration`
    /// setting in nanoseconds (0: 15 minutes; capped at 15 minutes; negative: storage is read
    /// first, the copies only refreshed).
    pub fn new(dir: Option<PathBuf>, setting_nanos: i64, clock: Arc<dyn Clock>) -> Self {
        let nanos = effective_setting(setting_nanos);
        let trust_first_read = nanos > 0;
        let validity = if nanos > 0 {
            nanos.min(DEFAULT_VALIDITY_NANOS)
        } else {
            DEFAULT_VALIDITY_NANOS
        };
        FormatBlobCache {
            dir,
            validity: Duration::from_nanos(validity as u64),
            trust_first_read,
            clock,
        }
    }

    /// No cache: every read goes to storage.
    pub fn disabled() -> Self {
        FormatBlobCache::new(None, -1, Arc::new(SystemClock))
    }

    /// Whether a fresh cached copy may be used on the first read (the directory is set and
    /// the setting is not negative).
    pub fn trusted(&self) -> bool {
        self.dir.is_some() && self.trust_first_read
    }

    /// Drops the cached copies (after a write of the format, or when the stored format is
    /// found to differ from the one opened).
    pub fn forget(&self) {
        if let Some(d) = &self.dir {
            forget_in(d);
        }
    }

    /// Runs `write` (a write of the format blobs) with the copies dropped before it (a crash
    /// in between leaves none) and after it (an open by this client meanwhile may have cached
    /// the old blobs), whatever its outcome.
    pub(crate) fn around_write<T>(&self, write: impl FnOnce() -> Result<T>) -> Result<T> {
        self.forget();
        let written = write();
        self.forget();
        written
    }

    /// The cached copy of `id` from `storage`, when it is younger than the validity by the
    /// clock and its check file vouches for it. A copy dated in the future by more than the
    /// validity (a clock that jumped) is not used.
    fn fresh(&self, storage: &str, id: &str) -> Option<Vec<u8>> {
        let dir = self.dir.as_ref()?;
        let path = dir.join(id);
        let mtime = fs::metadata(&path).ok()?.modified().ok()?;
        let now: SystemTime = self.clock.now().into();
        let young = match now.duration_since(mtime) {
            Ok(age) => age < self.validity,
            Err(ahead) => ahead.duration() < self.validity,
        };
        if !young {
            return None;
        }
        let bytes = fs::read(&path).ok()?;
        let check = fs::read(dir.join(check_name(id))).ok()?;
        (check == check_of(storage, &bytes).as_bytes()).then_some(bytes)
    }

    /// Writes `data` from `storage` as the cached copy of `id`, dated now by the clock, and
    /// its check file; any failure only leaves the copy unused.
    fn store(&self, storage: &str, id: &str, data: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let now = Some(self.clock.now().into());
        let stored = write_whole(dir, id, data, now).and_then(|_| {
            write_whole(
                dir,
                &check_name(id),
                check_of(storage, data).as_bytes(),
                now,
            )
        });
        if stored.is_err() {
            // An old copy must not outlive a failed refresh.
            let _ = fs::remove_file(dir.join(id));
        }
    }

    /// Reads `id`: the fresh cached copy when `use_cache` allows it, else the storage (the
    /// copy then refreshed). `None` when the storage has no such blob (any copy is dropped).
    pub(crate) fn read(
        &self,
        st: &dyn BlobStorage,
        id: &str,
        use_cache: bool,
    ) -> Result<Option<Fetched>> {
        let storage = st.display_name();
        if use_cache && self.dir.is_some() {
            if let Some(bytes) = self.fresh(&storage, id) {
                return Ok(Some(Fetched {
                    bytes,
                    from_cache: true,
                }));
            }
        }
        match st.get_blob(id, 0, None) {
            Ok(bytes) => {
                self.store(&storage, id, &bytes);
                Ok(Some(Fetched {
                    bytes,
                    from_cache: false,
                }))
            }
            Err(BlobError::NotFound(_)) => {
                if let Some(d) = &self.dir {
                    remove_copy(d, id);
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
