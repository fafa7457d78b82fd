//! A bounded local cache of contents read from an object store, so that a second restore
//! reads local files instead of the network (Kopia's content cache, `--content-cache-size-mb`).
//!
//! What a read fetched from a pack is kept as it is (compressed and encrypted contents,
//! exactly the pack's bytes) in one file per range, `<pack>/<start>-<end>` in hex, so that a
//! restore that fetched a pack in one read writes one cache file, not one per content. A
//! content is taken from a cached range that holds it, and only when it decodes (the
//! encryption authenticates it); anything else is read from storage again. When the files exceed the limit, the least
//! recently used (by modification time, refreshed on a hit at most once a minute per file)
//! are removed down to 90% of it.
//! A missing, unwritable or read-only cache directory only disables caching: never an error.
//!
//! Each pack's directory is listed once per process and the listing kept in memory: a walk
//! reads thousands of directories out of one cached metadata pack, and listing the pack's
//! directory for each was most of its time. A range this process writes joins the listing; one
//! it removes (bad, or swept) leaves it. The listing can only be stale through another process
//! (a range added: fetched again; a range removed: the open fails, the listing is dropped and
//! the content fetched), and what is read from a range is still checked (length, and the
//! content's authentication when decoded), so a stale listing costs a fetch, never wrong bytes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The cached ranges of each pack listed so far (see the module's comment).
    listed: Mutex<HashMap<String, Arc<Vec<CachedRange>>>>,
    /// When this process last refreshed a range file's time.
    touched: Mutex<HashMap<PathBuf, Instant>>,
    /// Directory listings of packs done, for tests.
    listings: AtomicU64,
    /// Modification times refreshed, for tests.
    touches: AtomicU64,
}

/// A cached range of a pack: `[start, end)` and its file.
pub type CachedRange = (u64, u64, PathBuf);

/// A range file's time is refreshed (for the LRU sweep) at most this often by one process.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

impl ContentCache {
    /// A cache in `dir` holding at most `max_bytes`; no directory or a zero limit disables it.
    pub fn new(dir: Option<PathBuf>, max_bytes: u64) -> Self {
        ContentCache {
            dir: dir.filter(|_| max_bytes > 0),
            max_bytes,
            used: Mutex::new(None),
            listed: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            listings: AtomicU64::new(0),
            touches: AtomicU64::new(0),
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
    pub fn ranges(&self, pack: &str) -> Vec<CachedRange> {
        self.listing(pack).map(|l| l.to_vec()).unwrap_or_default()
    }

    /// The memoized listing of `pack`'s ranges, listing its directory the first time.
    fn listing(&self, pack: &str) -> Option<Arc<Vec<CachedRange>>> {
        let dir = self.pack_dir(pack)?;
        if let Some(l) = self.listed.lock().ok()?.get(pack) {
            return Some(l.clone());
        }
        self.listings.fetch_add(1, Ordering::Relaxed);
        let ranges: Vec<CachedRange> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let (start, end) = parse_range(name.to_str()?)?;
                    Some((start, end, e.path()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let l = Arc::new(ranges);
        self.listed.lock().ok()?.insert(pack.to_string(), l.clone());
        Some(l)
    }

    /// Drops the memoized listing of the pack of range file `path`.
    fn forget_listing(&self, path: &Path) {
        let pack = path.parent().and_then(Path::file_name);
        if let (Some(pack), Ok(mut listed)) = (pack.and_then(|p| p.to_str()), self.listed.lock()) {
            listed.remove(pack);
        }
    }

    /// Refreshes the time of a range file that was read, unless this process did within
    /// [`TOUCH_INTERVAL`].
    fn touch(&self, path: &Path, f: Option<&fs::File>) {
        let now = Instant::now();
        if let Ok(mut touched) = self.touched.lock() {
            match touched.get(path) {
                Some(t) if now.duration_since(*t) < TOUCH_INTERVAL => return,
                _ => touched.insert(path.to_path_buf(), now),
            };
        }
        self.touches.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now();
        match f {
            Some(f) => {
                let _ = f.set_modified(t);
            }
            None => {
                let _ = filetime::set_file_mtime(path, t.into());
            }
        }
    }

    /// The bytes of a cached range file, read into the buffer `buffer(len)` gives, if the file
    /// has the length its name says (`end - start`).
    pub fn read_into<'b>(
        &self,
        path: &std::path::Path,
        start: u64,
        end: u64,
        buffer: impl FnOnce(usize) -> &'b mut [u8],
    ) -> Option<&'b mut [u8]> {
        let Ok(f) = fs::File::open(path) else {
            self.forget_listing(path);
            return None;
        };
        let len = end.checked_sub(start)?;
        let Some(len) = f
            .metadata()
            .ok()
            .filter(|m| m.len() == len)
            .and_then(|_| usize::try_from(len).ok())
        else {
            self.remove(path);
            return None;
        };
        let out = buffer(len);
        if out.len() != len || std::os::unix::fs::FileExt::read_exact_at(&f, out, 0).is_err() {
            self.remove(path);
            return None;
        }
        // Recently used: the sweep removes the oldest first.
        self.touch(path, None);
        Some(out)
    }

    /// The cached packed bytes of `entry`'s content, if a cached range holds them.
    pub fn get(&self, entry: &IndexEntry) -> Option<(PathBuf, Vec<u8>)> {
        let (start, end) = (
            u64::from(entry.pack_offset),
            u64::from(entry.pack_offset) + u64::from(entry.packed_length),
        );
        let listing = self.listing(&entry.pack_blob_id)?;
        let (a, b, path) = listing.iter().find(|(a, b, _)| *a <= start && end <= *b)?;
        let Ok(f) = fs::File::open(path) else {
            // Removed by another process: listed again next time.
            self.forget_listing(path);
            return None;
        };
        if f.metadata().ok()?.len() != b - a {
            self.remove(path);
            return None;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, start - a).ok()?;
        self.touch(path, Some(&f));
        Some((path.clone(), buf))
    }

    /// Forgets a cached range that turned out bad.
    pub fn remove(&self, path: &std::path::Path) {
        let _ = fs::remove_file(path);
        self.forget_listing(path);
        if let Ok(mut touched) = self.touched.lock() {
            touched.remove(path);
        }
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
        let written =
            crate::cache_file::write_whole(&dir, &format!("{start:x}-{end:x}"), bytes, None);
        if let Ok(path) = written {
            self.listed_add(pack, (start, end, path));
            self.account(bytes.len() as u64);
        }
    }

    /// Adds a range just written to the memoized listing of its pack (if listed: else the
    /// first listing finds it).
    fn listed_add(&self, pack: &str, range: CachedRange) {
        if let Ok(mut touched) = self.touched.lock() {
            touched.insert(range.2.clone(), Instant::now());
        }
        let Ok(mut listed) = self.listed.lock() else {
            return;
        };
        if let Some(l) = listed.get_mut(pack) {
            let l = Arc::make_mut(l);
            l.retain(|r| r.2 != range.2);
            l.push(range);
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
            self.forget_listing(&path);
        }
        total
    }
}

/// The range `[start, end)` a cache file's name (`<start>-<end>` in hex) says.
fn parse_range(name: &str) -> Option<(u64, u64)> {
    let (a, b) = name.split_once('-')?;
    let start = u64::from_str_radix(a, 16).ok()?;
    let end = u64::from_str_radix(b, 16).ok()?;
    (start < end).then_some((start, end))
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
    if let Some((path, mut packed)) = cache.get(&entry) {
        match cm.decode_packed_in_place(&entry, &mut packed) {
            Ok(data) => return Ok(data.into_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_entries::entry;

    fn pack_bytes() -> Vec<u8> {
        (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_of_one_cached_pack_list_its_directory_once_and_touch_each_range_once() {
        let tmp = tempfile::tempdir().unwrap();
        let data = pack_bytes();
        let writer = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        writer.put("qabc", 0, &data[..2048]);
        writer.put("qabc", 2048, &data[2048..]);
        // Another process reads it: 100 contents of the pack.
        let cache = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        for i in 0..100u32 {
            let (off, len) = ((i % 2) * 2048 + (i / 2) * 20, 16);
            let (_, got) = cache.get(&entry("qabc", off, len)).unwrap();
            assert_eq!(got, &data[off as usize..(off + len) as usize]);
        }
        assert_eq!(cache.listings.load(Ordering::Relaxed), 1);
        assert_eq!(cache.touches.load(Ordering::Relaxed), 2);
        assert_eq!(cache.ranges("qabc").len(), 2);
        assert_eq!(cache.listings.load(Ordering::Relaxed), 1);
        // A content that spans the two ranges is not served (no range holds it whole).
        assert!(cache.get(&entry("qabc", 2040, 16)).is_none());
        assert_eq!(cache.listings.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_hit_refreshes_the_range_files_time() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        cache.put("pold", 0, &pack_bytes());
        let file = tmp.path().join("pold").join("0-1000");
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(&file, old).unwrap();
        let reader = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        assert!(reader.get(&entry("pold", 10, 10)).is_some());
        let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&file).unwrap());
        assert!(mtime > old, "{mtime:?}");
    }

    #[test]
    fn a_range_put_after_the_listing_is_found_by_the_next_get() {
        let tmp = tempfile::tempdir().unwrap();
        let data = pack_bytes();
        let cache = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        assert!(cache.get(&entry("pnew", 100, 50)).is_none());
        assert_eq!(cache.listings.load(Ordering::Relaxed), 1);
        cache.put("pnew", 0, &data[..1024]);
        let (_, got) = cache.get(&entry("pnew", 100, 50)).unwrap();
        assert_eq!(got, &data[100..150]);
        // Written again over the same name: listed once, not twice.
        cache.put("pnew", 0, &data[..1024]);
        assert_eq!(cache.ranges("pnew").len(), 1);
        assert_eq!(cache.listings.load(Ordering::Relaxed), 1);

        // A range another process adds is missed (fetched again, then kept), never wrong.
        let other = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        other.put("pnew", 1024, &data[1024..2048]);
        assert!(cache.get(&entry("pnew", 1100, 10)).is_none());
        cache.put("pnew", 1024, &data[1024..2048]);
        let (_, got) = cache.get(&entry("pnew", 1100, 10)).unwrap();
        assert_eq!(got, &data[1100..1110]);
    }

    #[test]
    fn a_removed_or_evicted_range_is_not_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let data = pack_bytes();
        let cache = ContentCache::new(Some(tmp.path().to_path_buf()), 6000);
        cache.put("pa", 0, &data);
        let (path, _) = cache.get(&entry("pa", 0, 10)).unwrap();
        cache.remove(&path);
        assert!(cache.get(&entry("pa", 0, 10)).is_none());
        assert!(cache.ranges("pa").is_empty());

        // Removed behind the cache's back (another process's sweep): a miss, listed again.
        cache.put("pa", 0, &data);
        let (path, _) = cache.get(&entry("pa", 0, 10)).unwrap();
        let listed = cache.listings.load(Ordering::Relaxed);
        fs::remove_file(&path).unwrap();
        assert!(cache.get(&entry("pa", 0, 10)).is_none());
        assert!(cache.get(&entry("pa", 0, 10)).is_none());
        assert_eq!(cache.listings.load(Ordering::Relaxed), listed + 1);

        // Evicted by this process's sweep: the older range goes when a newer one exceeds the
        // limit, and is not served from the memoized listing.
        cache.put("pa", 0, &data);
        assert!(cache.get(&entry("pa", 0, 10)).is_some());
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(&path, old).unwrap();
        cache.put("pb", 0, &data);
        assert!(!path.exists());
        assert!(cache.get(&entry("pa", 0, 10)).is_none());
        let (_, got) = cache.get(&entry("pb", 0, 10)).unwrap();
        assert_eq!(got, &data[..10]);
    }

    #[test]
    fn a_range_file_of_the_wrong_length_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let data = pack_bytes();
        let cache = ContentCache::new(Some(tmp.path().to_path_buf()), 1 << 30);
        cache.put("pc", 0, &data);
        let (path, _) = cache.get(&entry("pc", 0, 10)).unwrap();
        fs::write(&path, &data[..100]).unwrap();
        assert!(cache.get(&entry("pc", 0, 10)).is_none());
        assert!(!path.exists());
        assert!(cache.ranges("pc").is_empty());
    }
}
