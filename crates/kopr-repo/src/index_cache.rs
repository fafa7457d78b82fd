//! A local, best-effort cache of index blobs (stored encrypted, exactly as in the repository).
//!
//! Index blobs are immutable, so a cached copy never goes stale. A missing, unwritable or
//! read-only cache directory only disables caching: it is never an error.

use std::fs;
use std::path::PathBuf;

/// A directory of cached blobs, named by blob id.
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: Option<PathBuf>,
}

impl BlobCache {
    /// A cache in `dir`, created on first write; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        BlobCache { dir }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        let ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        self.dir.as_ref().filter(|_| ok).map(|d| d.join(id))
    }

    /// Whether `id` is cached (without reading it).
    pub fn contains(&self, id: &str) -> bool {
        self.path(id).is_some_and(|p| p.is_file())
    }

    /// The cached bytes of `id`, if present.
    pub fn get(&self, id: &str) -> Option<Vec<u8>> {
        fs::read(self.path(id)?).ok()
    }

    /// Stores `data` as `id`, silently giving up on any error.
    pub fn put(&self, id: &str, data: &[u8]) {
        if let (Some(dir), Some(_)) = (self.dir.as_ref(), self.path(id)) {
            let _ = crate::cache_file::write_whole(dir, id, data, None);
        }
    }

    /// Removes cached blobs that are not in `keep`.
    pub fn retain(&self, keep: &std::collections::HashSet<String>) {
        let Some(dir) = &self.dir else { return };
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !keep.contains(&name) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_tolerates_unusable_dirs() {
        let d = tempfile::tempdir().unwrap();
        let c = BlobCache::new(Some(d.path().join("idx")));
        assert_eq!(c.get("xn0_a"), None);
        c.put("xn0_a", b"abc");
        assert_eq!(c.get("xn0_a").as_deref(), Some(&b"abc"[..]));
        c.put("../evil", b"x");
        assert!(!d.path().join("evil").exists());
        // a cache "directory" that is a file: writes are skipped, reads miss
        let file = d.path().join("file");
        fs::write(&file, b"").unwrap();
        let bad = BlobCache::new(Some(file));
        bad.put("xn0_a", b"abc");
        assert_eq!(bad.get("xn0_a"), None);
        BlobCache::new(None).put("a", b"b");
    }
}
