//! The content manager: content-addressed, deduplicated, compressed and encrypted storage of
//! byte strings in pack blobs, found again through index blobs.
//!
//! Writing hashes the data (the content id), skips it when the id is already known, compresses
//! and encrypts it outside any lock, and appends it to the open pack of its kind (`p` for data,
//! `q` for prefixed metadata contents). Full packs are written while other threads go on;
//! [`ContentManager::flush`] writes the remaining packs and one index blob for all of them
//! through the epoch manager, then ends the write session.

use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use chrono::Utc;
use kopr_blob::clock::Clock;
use kopr_blob::{BlobMetadata, BlobStorage, PutOptions};
use kopr_format::compression::{self, Compressor, HeaderId};
use kopr_format::index::{ContentId, IndexEntry};
use kopr_format::{blob_crypto, pack, BlobId};
use rand::RngCore;

use crate::committed_index::{CommittedIndex, LoadedIndex};
use crate::epoch::EpochManager;
use crate::error::{RepoError, Result};
use crate::format_manager::FormatManager;
use crate::index_cache::BlobCache;
use crate::legacy_index::{self, LegacyIndexManager};
use crate::session::{generate_session_id, SessionInfo};

mod maintenance;
mod pack_write;
mod read;
mod recover;
pub use maintenance::{pack_session, INDEX_SHARD_SIZE};
use read::{local_entry, local_ref};

/// Who writes: recorded in session markers.
#[derive(Debug, Clone)]
pub struct WriterIdentity {
    /// User name.
    pub user: String,
    /// Host name.
    pub host: String,
}

/// A pack being filled.
#[derive(Debug)]
struct OpenPack {
    blob_id: BlobId,
    data: Vec<u8>,
    items: FxHashMap<ContentId, IndexEntry>,
}

/// Mutable state of the writer, behind one lock.
#[derive(Debug, Default)]
struct WriteState {
    open: FxHashMap<&'static str, OpenPack>,
    /// Packs being uploaded, readable until they land.
    uploading: HashMap<BlobId, Arc<Vec<u8>>>,
    /// Entries whose index blob is not written yet: of contents in the packs this writer
    /// closed (still uploading while their pack is in `uploading`, written after) and of
    /// deletions and recovered contents. A pack's landing changes nothing here, so storing a
    /// content costs one insert into this map: a hash map, looked up once per content written
    /// and sorted only when the index blob is built.
    uncommitted: FxHashMap<ContentId, IndexEntry>,
    /// Entries an uploading pack's entries replaced in `uncommitted` (a content written again,
    /// as maintenance rewrites contents), by that pack: put back if its write fails.
    displaced: Vec<(BlobId, IndexEntry)>,
    session: Option<SessionInfo>,
    session_markers: Vec<BlobId>,
    failed: Option<String>,
    /// Buffers of packs written, kept for the next packs: a new buffer's pages would each be
    /// faulted in (and zeroed) again as contents are appended.
    spare_buffers: Vec<Vec<u8>>,
}

/// Pack buffers kept for reuse (one per background writer: as many as are freed at once).
const SPARE_BUFFERS: usize = BACKGROUND_WRITES;

/// A pack on its way to storage (its contents' entries wait in `WriteState::uncommitted`).
#[derive(Debug)]
struct PendingUpload {
    blob_id: BlobId,
    data: Arc<Vec<u8>>,
    /// Whether the trailer could be appended.
    trailer: std::result::Result<(), String>,
}

/// Packs written at once by background writers. A pack filled while this many are on their
/// way is written by the thread that filled it, which bounds the memory of finished packs.
const BACKGROUND_WRITES: usize = 2;

/// A pack a background writer finished writing (or failed to).
#[derive(Debug)]
struct Finished {
    blob_id: BlobId,
    result: std::result::Result<(), String>,
}

/// The packs on their way to storage. Every pack counts from the moment it is full (or
/// flushed) until its write ended, whether the thread that filled it writes it or a
/// background writer does; `flush` waits on `done` for that count to reach zero.
#[derive(Debug, Default)]
struct BackgroundWrites {
    state: Mutex<Writes>,
    done: Condvar,
    /// Set when a writer finished, so that the writes of contents (one check each) take the
    /// lock only when there is something to account for.
    finished_any: std::sync::atomic::AtomicBool,
}

/// What [`BackgroundWrites`] guards.
#[derive(Debug, Default)]
struct Writes {
    /// Packs whose write has not ended yet (foreground and background).
    in_flight: usize,
    /// Background writers running.
    running: usize,
    /// Packs background writers finished, not yet accounted for (by the next content write
    /// or by `flush`: a pack that failed fails the writer).
    finished: Vec<Finished>,
}

/// What a write needs to know of a content already in the index.
#[derive(Debug, Clone, Copy)]
struct Known {
    deleted: bool,
    timestamp: i64,
}

impl Known {
    fn of(e: &IndexEntry) -> Self {
        Known {
            deleted: e.deleted,
            timestamp: e.timestamp_seconds,
        }
    }
}

/// Counters of what a manager did, for progress and summaries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Contents written into packs.
    pub written_contents: u64,
    /// Their bytes before compression.
    pub written_bytes: u64,
    /// Contents skipped because they already existed.
    pub deduplicated_contents: u64,
    /// Bytes of those.
    pub deduplicated_bytes: u64,
    /// Pack blobs written.
    pub packs_written: u64,
}

/// Content-level access to a repository.
#[derive(Debug)]
pub struct ContentManager {
    st: Arc<dyn BlobStorage>,
    format: Arc<FormatManager>,
    epochs: Arc<EpochManager>,
    /// The index manager of repositories without the epoch manager.
    legacy: Option<LegacyIndexManager>,
    clock: Arc<dyn Clock>,
    cache: BlobCache,
    identity: WriterIdentity,
    committed: RwLock<CommittedIndex>,
    state: Mutex<WriteState>,
    background: Arc<BackgroundWrites>,
    stats: Mutex<WriteStats>,
}

thread_local! {
    /// Per-thread scratch buffers of content writes, kept between contents so that large
    /// chunks do not cost a fresh allocation (and its page faults) each.
    static COMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pack_prefix(id: &ContentId) -> &'static str {
    if id.prefix().is_some() {
        pack::PACK_PREFIX_METADATA
    } else {
        pack::PACK_PREFIX_DATA
    }
}

impl ContentManager {
    /// A manager over an opened repository; loads the committed index.
    pub fn new(
        st: Arc<dyn BlobStorage>,
        format: Arc<FormatManager>,
        clock: Arc<dyn Clock>,
        cache: BlobCache,
        identity: WriterIdentity,
    ) -> Result<Self> {
        let epochs = Arc::new(EpochManager::new(
            st.clone(),
            format.config.epoch_parameters.clone(),
            clock.clone(),
        ));
        let legacy = (!format.uses_epoch_manager())
            .then(|| LegacyIndexManager::new(st.clone(), format.clone(), clock.clone()));
        let cm = ContentManager {
            st,
            format,
            epochs,
            legacy,
            clock,
            cache,
            identity,
            committed: RwLock::new(CommittedIndex::default()),
            state: Mutex::new(WriteState::default()),
            background: Arc::default(),
            stats: Mutex::new(WriteStats::default()),
        };
        cm.refresh()?;
        Ok(cm)
    }

    /// The storage underneath.
    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.st
    }

    /// The repository format.
    pub fn format(&self) -> &Arc<FormatManager> {
        &self.format
    }

    /// The epoch manager.
    pub fn epochs(&self) -> &Arc<EpochManager> {
        &self.epochs
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What this manager wrote so far.
    pub fn write_stats(&self) -> WriteStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The legacy index manager, in repositories without the epoch manager.
    pub fn legacy_indexes(&self) -> Option<&LegacyIndexManager> {
        self.legacy.as_ref()
    }

    /// The local cache of index blobs.
    pub fn index_cache(&self) -> &BlobCache {
        &self.cache
    }

    /// Reloads the set of index blobs from storage.
    pub fn refresh(&self) -> Result<()> {
        let (set, watermark) = match &self.legacy {
            Some(legacy) => (legacy.active_index_blobs()?, None),
            None => {
                self.epochs.invalidate();
                self.epochs.complete_index_set()?
            }
        };
        let mut c = self.committed.write().map_err(|_| poisoned())?;
        c.update(
            &*self.st,
            &self.format.encryptor,
            &self.cache,
            &set,
            watermark,
        )?;
        let keep = c.blobs().into_iter().map(|b| b.id).collect();
        self.cache.retain(&keep);
        Ok(())
    }

    /// The index blobs currently loaded.
    pub fn index_blobs(&self) -> Result<Vec<BlobMetadata>> {
        Ok(self.committed.read().map_err(|_| poisoned())?.blobs())
    }

    /// Reads, decrypts and parses one index blob (through the index cache), whether or not it
    /// is in the current set: for tools that inspect index blobs one by one.
    pub fn read_index_blob(&self, bm: &BlobMetadata) -> Result<kopr_format::index::Index> {
        let loaded = crate::committed_index::load_index_blob(
            self.st.as_ref(),
            &self.format.encryptor,
            &self.cache,
            bm,
        )?;
        Ok(loaded.index)
    }

    /// Hashes `data` into the content id it would be stored under.
    pub fn content_id_for(&self, data: &[u8], prefix: Option<u8>) -> Result<ContentId> {
        let h = self.format.hasher.hash(data);
        Ok(ContentId::new(prefix, h.as_bytes())?)
    }

    /// Information about a content, including uncommitted writes of this manager.
    pub fn content_info(&self, id: &ContentId) -> Result<Option<IndexEntry>> {
        {
            let s = self.state.lock().map_err(|_| poisoned())?;
            if let Some(e) = local_entry(&s, id) {
                return Ok(Some(e));
            }
        }
        self.committed.read().map_err(|_| poisoned())?.get(id)
    }

    /// Stores `data` and returns its id; a content already present is not written again.
    ///
    /// `compression` is resolved by the caller once (`kopr_format::compression::resolve`); data
    /// that does not shrink is stored uncompressed.
    pub fn write_content(
        &self,
        data: &[u8],
        prefix: Option<u8>,
        compression: Option<&'static Compressor>,
    ) -> Result<ContentId> {
        let id = self.content_id_for(data, prefix)?;
        self.write_content_as(id, data, compression)
    }

    /// The content ids of many contents with the same prefix, hashed together (several times as
    /// fast as one by one for short contents hashed with BLAKE3, see
    /// `kopr_format::hashing::Hasher::hash_many`).
    pub(crate) fn content_ids_for(
        &self,
        data: &[&[u8]],
        prefix: Option<u8>,
    ) -> Result<Vec<ContentId>> {
        let hashes = self.format.hasher.hash_many(data);
        hashes
            .iter()
            .map(|h| Ok(ContentId::new(prefix, h.as_bytes())?))
            .collect()
    }

    /// [`ContentManager::write_content`] of `data` whose id is known: `id` must be
    /// [`ContentManager::content_id_for`] of `data`.
    pub(crate) fn write_content_as(
        &self,
        id: ContentId,
        data: &[u8],
        compression: Option<&'static Compressor>,
    ) -> Result<ContentId> {
        let previous = self.known(&id)?;
        if let Some(e) = &previous {
            if !e.deleted {
                if let Ok(mut s) = self.stats.lock() {
                    s.deduplicated_contents += 1;
                    s.deduplicated_bytes += data.len() as u64;
                }
                return Ok(id);
            }
        }
        PACKED.with(|cell| {
            let mut packed = cell.borrow_mut();
            self.store_new(id, data, previous, compression, &mut packed)
        })
    }

    /// Whether `id` is known (written by this manager or committed), and if so whether it is
    /// deleted and when it was written: what a write needs, without copying the entry.
    fn known(&self, id: &ContentId) -> Result<Option<Known>> {
        {
            let s = self.state.lock().map_err(|_| poisoned())?;
            if let Some(e) = local_ref(&s, id) {
                return Ok(Some(Known::of(e)));
            }
        }
        let committed = self.committed.read().map_err(|_| poisoned())?;
        Ok(committed.get(id)?.as_ref().map(Known::of))
    }

    /// Compresses, encrypts (into `payload`, reused between calls) and appends a content
    /// that is not in the repository yet.
    fn store_new(
        &self,
        id: ContentId,
        data: &[u8],
        previous: Option<Known>,
        compression: Option<&'static Compressor>,
        payload: &mut Vec<u8>,
    ) -> Result<ContentId> {
        let header = self.compress_and_encrypt(&id, data, compression, payload)?;
        let full = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            self.account_background(&mut s);
            if let Some(msg) = &s.failed {
                return Err(RepoError::Invalid(format!(
                    "an earlier pack write failed: {msg}"
                )));
            }
            if previous.is_none() && local_ref(&s, &id).is_some() {
                return Ok(id); // another thread stored it meanwhile
            }
            let prev_ts = previous.map(|e| e.timestamp).unwrap_or(-1);
            let ts = self.write_time(prev_ts);
            let prefix = pack_prefix(&id);
            if !s.open.contains_key(prefix) {
                let p = self.new_open_pack(&mut s, prefix)?;
                s.open.insert(prefix, p);
            }
            let version = self.format.config.version as u8;
            let open = s.open.get_mut(prefix).ok_or_else(poisoned)?;
            let entry = IndexEntry {
                content_id: id,
                pack_blob_id: open.blob_id.clone(),
                pack_offset: open.data.len() as u32,
                packed_length: payload.len() as u32,
                original_length: data.len() as u32,
                timestamp_seconds: ts,
                deleted: false,
                format_version: version,
                compression_header_id: header.0,
                encryption_key_id: 0,
            };
            open.data.extend_from_slice(payload);
            open.items.insert(id, entry);
            if open.data.len() >= self.format.config.effective_max_pack_size() as usize {
                let p = s.open.remove(prefix);
                p.map(|p| self.start_upload(&mut s, p))
            } else {
                None
            }
        };
        if let Ok(mut st) = self.stats.lock() {
            st.written_contents += 1;
            st.written_bytes += data.len() as u64;
        }
        if let Some(p) = full {
            if let Some(p) = self.upload_in_background(p) {
                self.upload(p)?;
            }
        }
        Ok(id)
    }

    /// Marks a content deleted (the data stays in its pack until maintenance drops it).
    pub fn delete_content(&self, id: &ContentId) -> Result<()> {
        let Some(mut e) = self.content_info(id)? else {
            return Err(RepoError::ContentNotFound(id.to_string()));
        };
        if e.deleted {
            return Ok(());
        }
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        e.deleted = true;
        e.timestamp_seconds = self.write_time(e.timestamp_seconds);
        for p in s.open.values_mut() {
            if let Some(item) = p.items.get_mut(id) {
                *item = e.clone();
                return Ok(());
            }
        }
        s.uncommitted.insert(*id, e);
        Ok(())
    }

    /// Writes open packs and an index blob for everything written, then ends the session.
    pub fn flush(&self) -> Result<()> {
        let to_upload: Vec<_> = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            let open: Vec<OpenPack> = s.open.drain().map(|(_, p)| p).collect();
            open.into_iter()
                .filter(|p| !p.items.is_empty())
                .map(|p| self.start_upload(&mut s, p))
                .collect()
        };
        // Every pack started is written (or fails) before returning, so none stays counted
        // as on its way.
        let mut failed = None;
        for p in to_upload {
            if let Err(e) = self.upload(p) {
                failed.get_or_insert(e);
            }
        }
        let mut s = self.wait_writes()?;
        // A failure is reported once: the next flush indexes what did land.
        let failed_before = s.failed.take();
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(msg) = failed_before {
            return Err(RepoError::Invalid(format!("pack write failed: {msg}")));
        }
        if s.uncommitted.is_empty() {
            return self.end_session(&mut s);
        }
        let session = match &s.session {
            Some(si) => si.id.clone(),
            None => self.session_id(&mut s)?,
        };
        let index_bytes =
            legacy_index::encode_index(self.format.index_version(), s.uncommitted.values())?;
        let written = match &self.legacy {
            Some(legacy) => {
                legacy.write_index_blobs(std::slice::from_ref(&index_bytes), &session)?
            }
            None => {
                let (id, encrypted) = blob_crypto::encrypt_blob(
                    &self.format.hasher,
                    &self.format.encryptor,
                    &index_bytes,
                    "",
                    &format!("{session}-c1"),
                )?;
                self.epochs.write_index(&[(id, encrypted)])?
            }
        };
        let index = legacy_index::parse_index(&self.format, index_bytes)?;
        if let Some(bm) = written.into_iter().next() {
            self.committed
                .write()
                .map_err(|_| poisoned())?
                .add(LoadedIndex { blob: bm, index });
        }
        s.uncommitted.clear();
        self.end_session(&mut s)?;
        drop(s);
        if self.legacy.is_none() {
            self.epochs.maybe_advance_write_epoch()?;
        }
        Ok(())
    }

    fn end_session(&self, s: &mut WriteState) -> Result<()> {
        for id in s.session_markers.drain(..) {
            self.st.delete_blob(&id)?;
        }
        s.session = None;
        Ok(())
    }
}

fn poisoned() -> RepoError {
    RepoError::Worker("internal lock poisoned by an earlier panic".into())
}
