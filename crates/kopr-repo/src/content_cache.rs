//! A bounded local cache of contents read from an object store, so that a second restore
//! reads local files instead of the network (Kopia's content cache, `--content-cache-size-mb`).
//!
//! What a read fetched from a pack is kept as it is (compressed and encrypted contents,
//! exactly the pack's bytes) in one file per range, `<pack>/<start>-<end>` in hex, so that a
//! restore that fetched a pack in one read writes one cache file, not one per content. A
//! content is taken from a cached range that holds it, and only when it decodes (the
//! encryption authenticates it); anything else is read from storage again. When the files exceed the limit, the least
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

    /// The directory of a pack's cached ranges.
    fn pack_dir(&self, pack: &str) -> Option<PathBuf> {
        let ok = !pack.is_empty()
            && pack
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        self.dir.as_ref().filter(|_| ok).map(|d| d.join(pack))
    }

    /// The cached ranges of `pack`: (start, end, file).
    pub fn ranges(&self, pack: &str) -> Vec<(u64, u64, PathBuf)> {
        let Some(dir) = self.pack_dir(pack) else {
            return Vec::new();
        };
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let (a, b) = name.to_str()?.split_once('-')?;
                let start = u64::from_str_radix(a, 16).ok()?;
                let end = u64::from_str_radix(b, 16).ok()?;
                (start < end).then(|| (start, end, e.path()))
            })
            .collect()
    }

    /// The bytes of a cached range file, if it has the length its name says.
    pub fn read(&self, path: &std::path::Path, start: u64, end: u64) -> Option<Vec<u8>> {
        let data = fs::read(path).ok()?;
        if data.len() as u64 != end - start {
            let _ = fs::remove_file(path);
            return None;
        }
        // Recently used: the sweep removes the oldest first.
        let _ = filetime::set_file_mtime(path, filetime::FileTime::now());
        Some(data)
    }

    /// The cached packed bytes of `entry`'s content, if a cached range holds them.
    pub fn get(&self, entry: &IndexEntry) -> Option<(PathBuf, Vec<u8>)> {
        let (start, end) = (
            u64::from(entry.pack_offset),
            u64::from(entry.pack_offset) + u64::from(entry.packed_length),
        );
        let (a, b, path) = self
            .ranges(&entry.pack_blob_id)
            .into_iter()
            .find(|(a, b, _)| *a <= start && end <= *b)?;
        let f = fs::File::open(&path).ok()?;
        if f.metadata().ok()?.len() != b - a {
            let _ = fs::remove_file(&path);
            return None;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, start - a).ok()?;
        let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        Some((path, buf))
    }

    /// Forgets a cached range that turned out bad.
    pub fn remove(&self, path: &std::path::Path) {
        let _ = fs::remove_file(path);
    }

    /// Keeps the bytes of `pack` at `start`, silently giving up on any error.
    pub fn put(&self, pack: &str, start: u64, bytes: &[u8]) {
        let Some(dir) = self.pack_dir(pack) else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        let end = start + bytes.len() as u64;
        let written = (|| -> std::io::Result<()> {
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{:016x}.tmp", rand::random::<u64>()));
            let mut f = fs::File::create(&tmp)?;
            let r = f
                .write_all(bytes)
                .and_then(|()| fs::rename(&tmp, dir.join(format!("{start:x}-{end:x}"))));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        })();
        if written.is_ok() {
            self.account(bytes.len() as u64);
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
    if let Some((path, packed)) = cache.get(&entry) {
        match cm.decode_packed(&entry, &packed) {
            Ok(data) => return Ok(data),
            Err(_) => cache.remove(&path),
        }
    }
    let (start, len) = (u64::from(entry.pack_offset), u64::from(entry.packed_length));
    if entry.pack_blob_id.is_metadata_pack() {
        // A metadata pack (directories, indirect lists) holds what the next reads of a walk
        // need: fetch it whole once, as Kopia's metadata cache does, instead of one request
        // per directory.
        let whole = cm.storage().get_blob(&entry.pack_blob_id, 0, None)?;
        if let Some(packed) = usize::try_from(start)
            .ok()
            .and_then(|a| whole.get(a..a.checked_add(len as usize)?))
        {
            let data = cm.decode_packed(&entry, packed)?;
            cache.put(&entry.pack_blob_id, 0, &whole);
            return Ok(data);
        }
    }
    let packed = cm
        .storage()
        .get_blob(&entry.pack_blob_id, start, Some(len))?;
    let data = cm.decode_packed(&entry, &packed)?;
    cache.put(&entry.pack_blob_id, start, &packed);
    Ok(data)
}
