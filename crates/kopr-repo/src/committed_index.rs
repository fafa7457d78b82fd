//! The committed index: the merged view of every index blob in the current epoch set.
//!
//! When the same content appears in several index blobs, Kopia's rule picks the winner (newest
//! timestamp, then a deleted entry over a live one). Deleted entries at or before the deletion
//! watermark are ignored altogether.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kopr_blob::{BlobMetadata, BlobStorage};
use kopr_format::blob_crypto;
use kopr_format::encryption::Encryptor;
use kopr_format::index::{pick_winner, ContentId, Index, IndexEntry};

use crate::error::{RepoError, Result};
use crate::index_cache::BlobCache;

/// One loaded index blob.
#[derive(Debug)]
pub(crate) struct LoadedIndex {
    /// Where it came from.
    pub(crate) blob: BlobMetadata,
    /// The parsed index.
    pub(crate) index: Index,
}

/// The merged view of a set of index blobs.
#[derive(Debug, Default)]
pub(crate) struct CommittedIndex {
    indexes: Vec<Arc<LoadedIndex>>,
    watermark: Option<DateTime<Utc>>,
}

/// Whether an entry is hidden by the deletion watermark.
pub(crate) fn hidden_by_watermark(e: &IndexEntry, watermark: Option<DateTime<Utc>>) -> bool {
    match watermark {
        Some(w) => e.deleted && e.timestamp_seconds <= w.timestamp(),
        None => false,
    }
}

/// Returns the winner of two entries of the same content per Kopia's merge rule.
pub(crate) fn merge_entries(a: IndexEntry, b: IndexEntry) -> IndexEntry {
    if pick_winner(&a, &b) {
        a
    } else {
        b
    }
}

/// Reads, decrypts and parses an index blob, using the local cache when possible.
pub(crate) fn load_index_blob(
    st: &dyn BlobStorage,
    enc: &Encryptor,
    cache: &BlobCache,
    bm: &BlobMetadata,
) -> Result<LoadedIndex> {
    let data = match cache.get(&bm.id) {
        Some(d) => d,
        None => {
            let d = st.get_blob(&bm.id, 0, None)?;
            cache.put(&bm.id, &d);
            d
        }
    };
    let plain = blob_crypto::decrypt_blob(enc, &data, &bm.id).map_err(|e| {
        RepoError::Invalid(format!("index blob {} cannot be decrypted: {e}", bm.id))
    })?;
    // Index v1 has no original lengths: the packed length minus one content's overhead.
    let index = Index::parse_with_v1_overhead(plain, enc.overhead() as u32)
        .map_err(|e| RepoError::Invalid(format!("index blob {} is malformed: {e}", bm.id)))?;
    Ok(LoadedIndex {
        blob: bm.clone(),
        index,
    })
}

/// Index blobs fetched at once when a view is loaded (latency, not CPU, bounds an object store).
const INDEX_LOADERS: usize = 8;

impl CommittedIndex {
    /// Replaces the set of indexes with `set`, reusing already loaded ones.
    pub(crate) fn update(
        &mut self,
        st: &dyn BlobStorage,
        enc: &Encryptor,
        cache: &BlobCache,
        set: &[BlobMetadata],
        watermark: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut old: HashMap<String, Arc<LoadedIndex>> = self
            .indexes
            .drain(..)
            .map(|l| (l.blob.id.clone(), l))
            .collect();
        let mut seen = HashSet::new();
        let unique: Vec<&BlobMetadata> = set.iter().filter(|bm| seen.insert(&bm.id)).collect();
        let missing: Vec<&BlobMetadata> = unique
            .iter()
            .copied()
            .filter(|bm| !old.contains_key(&bm.id))
            .collect();
        // Loaded side by side when several must be fetched: on an object store each is a round
        // trip. Those in the local cache (all but the newest, after the first open) are read on
        // this thread.
        let to_fetch = missing.iter().filter(|bm| !cache.contains(&bm.id)).count();
        let loaders = if to_fetch > 1 { INDEX_LOADERS } else { 1 };
        let loaded = crate::parallel::map("index loader", loaders, &missing, &|| false, |bm| {
            load_index_blob(st, enc, cache, bm).map(Arc::new)
        })?;
        // `missing` is `unique` less the loaded ones, in order: its blobs fill the gaps.
        let mut loaded = loaded.into_iter();
        self.indexes = unique
            .iter()
            .filter_map(|bm| old.remove(&bm.id).or_else(|| loaded.next()))
            .collect();
        self.watermark = watermark;
        Ok(())
    }

    /// Adds one freshly written index blob.
    pub(crate) fn add(&mut self, loaded: LoadedIndex) {
        if !self.indexes.iter().any(|l| l.blob.id == loaded.blob.id) {
            self.indexes.push(Arc::new(loaded));
        }
    }

    /// The blobs currently making up the view.
    pub(crate) fn blobs(&self) -> Vec<BlobMetadata> {
        self.indexes.iter().map(|l| l.blob.clone()).collect()
    }

    /// The loaded indexes (cheap clones of shared handles).
    pub(crate) fn loaded(&self) -> Vec<Arc<LoadedIndex>> {
        self.indexes.clone()
    }

    /// The deletion watermark in force.
    pub(crate) fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    /// The winning entry for `id`, if any.
    pub(crate) fn get(&self, id: &ContentId) -> Result<Option<IndexEntry>> {
        let mut best: Option<IndexEntry> = None;
        for l in &self.indexes {
            if let Some(e) = l.index.get(id)? {
                best = Some(match best {
                    Some(b) => merge_entries(b, e),
                    None => e,
                });
            }
        }
        Ok(best.filter(|e| !hidden_by_watermark(e, self.watermark)))
    }

    /// Every winning entry, in content-id order.
    pub(crate) fn all(&self) -> Result<BTreeMap<ContentId, IndexEntry>> {
        let mut out: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
        for l in &self.indexes {
            for e in l.index.iter() {
                let e = e?;
                match out.remove(&e.content_id) {
                    Some(prev) => {
                        out.insert(e.content_id, merge_entries(prev, e));
                    }
                    None => {
                        out.insert(e.content_id, e);
                    }
                }
            }
        }
        out.retain(|_, e| !hidden_by_watermark(e, self.watermark));
        Ok(out)
    }
}
