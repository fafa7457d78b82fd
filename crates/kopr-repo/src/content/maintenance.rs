//! Content operations that maintenance needs: streaming every index entry, rewriting and
//! undeleting contents, the set of packs still referenced, active write sessions, and merging
//! index blobs into compacted ones.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use kopr_blob::{BlobMetadata, PutOptions};
use kopr_format::blob_crypto;
use kopr_format::index::{ContentId, IndexBuilder, IndexEntry};
use rand::RngCore;

use super::{local_entry, poisoned, ContentManager};
use crate::committed_index::{hidden_by_watermark, load_index_blob, merge_entries};
use crate::error::{RepoError, Result};
use crate::session::{session_id_from_blob_id, SessionInfo, SESSION_PREFIX};

/// Index entries per index blob shard (Kopia's default shard size).
pub const INDEX_SHARD_SIZE: usize = 16_000_000;

struct HeapItem {
    entry: IndexEntry,
    source: usize,
}

impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.entry.content_id == o.entry.content_id && self.source == o.source
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse for ascending content ids.
        o.entry
            .content_id
            .cmp(&self.entry.content_id)
            .then(o.source.cmp(&self.source))
    }
}

impl ContentManager {
    /// Calls `cb` for every committed content in id order, merging index blobs on the fly
    /// (memory stays proportional to the number of index blobs, not of contents).
    ///
    /// No lock is held while `cb` runs, so it may write, delete or flush.
    pub fn for_each_committed(
        &self,
        include_deleted: bool,
        cb: &mut dyn FnMut(&IndexEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_committed_in(None, include_deleted, cb)
    }

    /// Like [`ContentManager::for_each_committed`], restricted to ids with `prefix` when
    /// given (found by binary search in each index blob).
    pub fn for_each_committed_in(
        &self,
        prefix: Option<u8>,
        include_deleted: bool,
        cb: &mut dyn FnMut(&IndexEntry) -> Result<()>,
    ) -> Result<()> {
        let (indexes, watermark) = {
            let c = self.committed.read().map_err(|_| poisoned())?;
            (c.loaded(), c.watermark())
        };
        let mut iters: Vec<Box<dyn Iterator<Item = _>>> = indexes
            .iter()
            .map(|l| match prefix {
                Some(p) => Box::new(l.index.iter_prefix(p)) as Box<dyn Iterator<Item = _>>,
                None => Box::new(l.index.iter()),
            })
            .collect();
        let mut heap = BinaryHeap::with_capacity(iters.len());
        for (source, it) in iters.iter_mut().enumerate() {
            if let Some(e) = it.next() {
                heap.push(HeapItem { entry: e?, source });
            }
        }
        while let Some(HeapItem { entry, source }) = heap.pop() {
            if let Some(next) = iters[source].next() {
                heap.push(HeapItem {
                    entry: next?,
                    source,
                });
            }
            let mut best = entry;
            while heap
                .peek()
                .is_some_and(|h| h.entry.content_id == best.content_id)
            {
                let Some(HeapItem { entry, source }) = heap.pop() else {
                    break;
                };
                if let Some(next) = iters[source].next() {
                    heap.push(HeapItem {
                        entry: next?,
                        source,
                    });
                }
                best = merge_entries(best, entry);
            }
            if hidden_by_watermark(&best, watermark) || (best.deleted && !include_deleted) {
                continue;
            }
            cb(&best)?;
        }
        Ok(())
    }

    /// Writes a content again into a new pack, keeping its deleted flag (or clearing it when
    /// `undelete`). The packed bytes are authenticated before they are copied.
    fn rewrite(&self, id: &ContentId, undelete: bool) -> Result<bool> {
        let Some(old) = self.content_info(id)? else {
            return Err(RepoError::ContentNotFound(id.to_string()));
        };
        if undelete && !old.deleted {
            return Ok(false);
        }
        {
            let s = self.state.lock().map_err(|_| poisoned())?;
            if local_entry(&s, id).is_some() && !undelete {
                return Ok(false); // written by this manager already
            }
        }
        let packed = self.st.get_blob(
            &old.pack_blob_id,
            u64::from(old.pack_offset),
            Some(u64::from(old.packed_length)),
        )?;
        self.rewrite_packed(old, &packed, undelete)
    }

    /// Appends the packed bytes of `old` to a new pack under a fresh index entry.
    fn rewrite_packed(&self, old: IndexEntry, packed: &[u8], undelete: bool) -> Result<bool> {
        self.decode_packed(&old, packed)?;
        let id = old.content_id;
        let prefix = old.content_id.pack_prefix();
        let full = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            self.account_background(&mut s);
            if let Some(msg) = &s.failed {
                return Err(RepoError::Invalid(format!(
                    "an earlier pack write failed: {msg}"
                )));
            }
            if let Some(local) = local_entry(&s, &id) {
                if local.pack_blob_id != old.pack_blob_id && !(undelete && local.deleted) {
                    return Ok(false); // already rewritten by this manager
                }
            }
            if !s.open.contains_key(prefix) {
                let p = self.new_open_pack(&mut s, prefix)?;
                s.open.insert(prefix, p);
            }
            let ts = self.write_time(old.timestamp_seconds);
            let open = s.open.get_mut(prefix).ok_or_else(poisoned)?;
            let entry = IndexEntry {
                pack_blob_id: open.blob_id.clone(),
                pack_offset: open.data.len() as u32,
                timestamp_seconds: ts,
                deleted: old.deleted && !undelete,
                ..old
            };
            open.data.extend_from_slice(packed);
            open.items.insert(id, entry);
            if open.data.len() >= self.format.config.effective_max_pack_size() as usize {
                let p = s.open.remove(prefix);
                p.map(|p| self.start_upload(&mut s, p))
            } else {
                None
            }
        };
        if let Some(p) = full {
            if let Some(p) = self.upload_in_background(p) {
                self.upload(p)?;
            }
        }
        Ok(true)
    }

    /// Moves the given contents of one pack into new packs, reading the pack once. Returns
    /// how many were moved.
    pub fn rewrite_pack_contents(&self, pack_blob_id: &str, entries: &[IndexEntry]) -> Result<u64> {
        let data = self.st.get_blob(pack_blob_id, 0, None)?;
        let mut moved = 0;
        for e in entries {
            let start = e.pack_offset as usize;
            let Some(packed) = data.get(start..start + e.packed_length as usize) else {
                return Err(RepoError::CorruptContent {
                    id: e.content_id.to_string(),
                    detail: format!(
                        "pack {pack_blob_id} is {} bytes, shorter than offset {} + length {}",
                        data.len(),
                        e.pack_offset,
                        e.packed_length
                    ),
                });
            };
            if self.rewrite_packed(e.clone(), packed, false)? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Marks the content of a committed entry deleted without looking it up again (maintenance
    /// passes the entry it is iterating over). Writes of this manager take precedence.
    /// Returns the deletion's timestamp (one second after the content's own when both fall in
    /// the same second), or `None` when nothing was marked.
    pub fn mark_deleted(&self, committed: &IndexEntry) -> Result<Option<i64>> {
        let local = {
            let s = self.state.lock().map_err(|_| poisoned())?;
            local_entry(&s, &committed.content_id)
        };
        if local.is_some() {
            self.delete_content(&committed.content_id)?;
            return Ok(self
                .content_info(&committed.content_id)?
                .map(|e| e.timestamp_seconds));
        }
        if committed.deleted {
            return Ok(None);
        }
        let mut e = committed.clone();
        e.deleted = true;
        e.timestamp_seconds = self.write_time(e.timestamp_seconds);
        let ts = e.timestamp_seconds;
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        s.uncommitted.insert(e.content_id, e);
        Ok(Some(ts))
    }

    /// Moves a content into a new pack (used to empty short or sparse packs).
    pub fn rewrite_content(&self, id: &ContentId) -> Result<bool> {
        self.rewrite(id, false)
    }

    /// Makes a deleted content live again by writing it anew; a live one is left alone.
    pub fn undelete_content(&self, id: &ContentId) -> Result<bool> {
        self.rewrite(id, true)
    }

    /// Write sessions whose marker blobs are present, by session id.
    pub fn active_sessions(&self) -> Result<HashMap<String, SessionInfo>> {
        let mut out = HashMap::new();
        for bm in self.st.list_all(SESSION_PREFIX)? {
            let Some(sid) = session_id_from_blob_id(&bm.id) else {
                return Err(RepoError::Invalid(format!(
                    "found invalid session blob {}",
                    bm.id
                )));
            };
            let data = match self.st.get_blob(&bm.id, 0, None) {
                Ok(d) => d,
                Err(kopr_blob::BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let info = SessionInfo::open(&self.format.encryptor, &bm.id, &data)
                .map_err(|e| RepoError::Invalid(format!("session blob {}: {e}", bm.id)))?;
            out.insert(sid.to_string(), info);
        }
        Ok(out)
    }

    /// Merges the index blobs `inputs` into new blobs named `output_prefix…`, as Kopia's epoch
    /// compaction does (one set `…-s<random>-c<shards>`). Returns the written blobs.
    pub fn compact_index_blobs(
        &self,
        inputs: &[BlobMetadata],
        output_prefix: &str,
    ) -> Result<Vec<BlobMetadata>> {
        let mut builder = IndexBuilder::new();
        let mut seen = HashSet::new();
        for bm in inputs {
            if !seen.insert(bm.id.as_str()) {
                continue;
            }
            let loaded = load_index_blob(&*self.st, &self.format.encryptor, &self.cache, bm)?;
            for e in loaded.index.iter() {
                builder.add(e?);
            }
        }
        let shards = builder.shard(INDEX_SHARD_SIZE)?;
        let mut rnd = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut rnd);
        let session = format!("s{}-c{}", hex::encode(rnd), shards.len());
        let mut written = Vec::with_capacity(shards.len());
        for shard in shards {
            let bytes = if self.format.index_version() == 1 {
                shard.encode_v1_stable()?
            } else {
                shard.encode_v2_stable()?
            };
            let (id, encrypted) = blob_crypto::encrypt_blob(
                &self.format.hasher,
                &self.format.encryptor,
                &bytes,
                output_prefix,
                &session,
            )?;
            self.st.put_blob(&id, &encrypted, &PutOptions::default())?;
            written.push(BlobMetadata {
                id,
                length: encrypted.len() as u64,
                timestamp: self.clock.now(),
            });
        }
        Ok(written)
    }
}

/// The write session a pack belongs to, from its name.
pub fn pack_session(id: &str) -> Option<&str> {
    session_id_from_blob_id(id)
}
