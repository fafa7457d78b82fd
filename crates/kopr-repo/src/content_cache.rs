//! A bounded local cache of contents read from an object store, so that a second restore
//! reads local files instead of the network (Kopia's content cache, `--content-cache-size-mb`).
//!
//! Each content is kept as its packed bytes (compressed and encrypted, exactly as in its
//! pack), in a file named after its id under a two-character shard. A cached copy is only
//! used when it has the length the index says and decodes (the encryption authenticates it);
//! anything else is read from storage again. When the files exceed the limit, the least
//! recently used (by modification time, refreshed on each hit) are removed down to 90% of it.
//! A missing, unwritable or read-only cache directory only disables caching: never an error.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use kopr_format::index::{ContentId, IndexEntry};

use crate::content::ContentManager;
use crate::error::Result;

/// Kopia's default content cache size (`--content-cache-size-mb=5000`).
pub const DEFAULT_CONTENT_CACHE_BYTES: u64 = 5000 << 20;

/// A directory of cached contents.
#[derive(Debug)]
pub struct ContentCache {
    dir: Option<PathBuf>,
    max_bytes: u64,
    /// The bytes held, once counted.
    used: Mutex<Option<u64>>,
}

impl ContentCache {
    /// A cache in `dir` holding at most `max_bytes`; no directory or a zero limit disables it.
    pub fn new(dir: Option<PathBuf>, max_bytes: u64) -> Self {
        ContentCache {
            dir: dir.filter(|_| max_bytes > 0),
            max_bytes,
            used: Mutex::new(None),
        }
    }

    /// A cache that holds nothing.
    pub fn disabled() -> Self {
        ContentCache::new(None, 0)
    }

    /// Whether contents are cached at all.
    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn path(&self, id: &ContentId) -> Option<PathBuf> {
        let name = id.to_string();
        let shard = name.get(name.len().saturating_sub(2)..)?.to_string();
        self.dir.as_ref().map(|d| d.join(shard).join(name))
    }

    /// The cached packed bytes of `entry`'s content, if present with the right length.
    pub fn get(&self, entry: &IndexEntry) -> Option<Vec<u8>> {
        let path = self.path(&entry.content_id)?;
        let data = fs::read(&path).ok()?;
        if data.len() != entry.packed_length as usize {
            let _ = fs::remove_file(&path);
            return None;
        }
        // Recently used: the sweep removes the oldest first.
        let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        Some(data)
    }

    /// Whether a copy of `entry`'s content with the right length is there (not reading it).
    pub fn contains(&self, entry: &IndexEntry) -> bool {
        self.path(&entry.content_id)
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| m.len() == u64::from(entry.packed_length))
    }

    /// Forgets a cached copy that turned out bad.
    pub fn remove(&self, id: &ContentId) {
        if let Some(p) = self.path(id) {
            let _ = fs::remove_file(p);
        }
    }

    /// Keeps the packed bytes of a content, silently giving up on any error.
    pub fn put(&self, id: &ContentId, packed: &[u8]) {
        let Some(path) = self.path(id) else { return };
        let Some(shard) = path.parent() else { return };
        let written = (|| -> std::io::Result<()> {
            fs::create_dir_all(shard)?;
            let tmp = shard.join(format!(".{}.{:016x}.tmp", id, rand::random::<u64>()));
            let mut f = fs::File::create(&tmp)?;
            let r = f.write_all(packed).and_then(|()| fs::rename(&tmp, &path));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        })();
        if written.is_ok() {
            self.account(packed.len() as u64);
        }
    }

    /// Adds `n` bytes to the count and sweeps when over the limit.
    fn account(&self, n: u64) {
        let Ok(mut used) = self.used.lock() else {
            return;
        };
        let total = match *used {
            Some(u) => u + n,
            None => self.files().iter().map(|f| f.1).sum(),
        };
        *used = Some(if total > self.max_bytes {
            self.sweep(self.max_bytes / 10 * 9)
        } else {
            total
        });
    }

    /// Every cached file: path, length, modification time.
    fn files(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let mut out = Vec::new();
        let Some(dir) = &self.dir else { return out };
        let Ok(shards) = fs::read_dir(dir) else {
            return out;
        };
        for shard in shards.flatten() {
            let Ok(rd) = fs::read_dir(shard.path()) else {
                continue;
            };
            for e in rd.flatten() {
                if let Ok(md) = e.metadata() {
                    if md.is_file() {
                        let t = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                        out.push((e.path(), md.len(), t));
                    }
                }
            }
        }
        out
    }

    /// Removes the least recently used files until at most `target` bytes remain; returns
    /// the bytes left.
    fn sweep(&self, target: u64) -> u64 {
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort_by_key(|f| f.2);
        for (path, len, _) in files {
            if total <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        total
    }
}

/// Reads a content through `cache`: a cached copy that decodes, or the stored bytes (then
/// kept in the cache). Contents not in storage yet are read as [`ContentManager::get_content`]
/// reads them.
pub fn get_content(cm: &ContentManager, cache: &ContentCache, id: &ContentId) -> Result<Vec<u8>> {
    if !cache.is_enabled() {
        return cm.get_content(id);
    }
    let Some(entry) = cm.stored_entry(id)? else {
        return cm.get_content(id);
    };
    if let Some(packed) = cache.get(&entry) {
        match cm.decode_packed(&entry, &packed) {
            Ok(data) => return Ok(data),
            Err(_) => cache.remove(id),
        }
    }
    let packed = cm.storage().get_blob(
        &entry.pack_blob_id,
        u64::from(entry.pack_offset),
        Some(u64::from(entry.packed_length)),
    )?;
    let data = cm.decode_packed(&entry, &packed)?;
    cache.put(id, &packed);
    Ok(data)
}
