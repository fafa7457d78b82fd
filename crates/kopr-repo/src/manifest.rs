//! The manifest manager: labelled JSON records (snapshots, policies) stored in `m` contents.
//!
//! All manifest contents are loaded and merged (newest `modified` wins per id, deleted ids
//! vanish). New or deleted entries wait in memory until [`ManifestManager::flush`] writes them
//! as one more content; when more than 16 manifest contents exist, flushing compacts them into one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kopr_format::index::ContentId;
use kopr_format::manifest::{
    decode_batch, encode_batch, new_manifest_id, ManifestEntry, ManifestId, MANIFEST_CONTENT_PREFIX,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::content::ContentManager;
use crate::content_cache::{self, ContentCache};
use crate::error::{RepoError, Result};

/// Manifest contents above which a flush compacts them into one.
pub const AUTO_COMPACTION_THRESHOLD: usize = 16;

#[derive(Debug, Default)]
struct State {
    committed: HashMap<ManifestId, ManifestEntry>,
    deleted: HashMap<ManifestId, ManifestEntry>,
    contents: Vec<ContentId>,
    pending: Vec<ManifestEntry>,
    loaded: bool,
}

/// Reads and writes manifests of one repository, through its content manager.
#[derive(Debug)]
pub struct ManifestManager {
    cm: Arc<ContentManager>,
    /// Where manifest contents read from storage are kept for the next command (on an object
    /// store, each manifest pack is otherwise a round trip per command).
    cache: Arc<ContentCache>,
    state: Mutex<State>,
}

fn poisoned() -> RepoError {
    RepoError::Worker("manifest lock poisoned".into())
}

impl ManifestManager {
    /// A manager of the manifests stored through `cm`, loaded at first use.
    pub fn new(cm: Arc<ContentManager>) -> Self {
        Self::with_cache(cm, Arc::new(ContentCache::disabled()))
    }

    /// A manager of the manifests stored through `cm`, reading them through `cache`. A
    /// manifest content never changes under its id, and a cached copy is used only when it
    /// decodes (and so authenticates); which contents exist still comes from the index.
    pub fn with_cache(cm: Arc<ContentManager>, cache: Arc<ContentCache>) -> Self {
        ManifestManager {
            cm,
            cache,
            state: Mutex::new(State::default()),
        }
    }

    fn ensure_loaded(&self, s: &mut State) -> Result<()> {
        if s.loaded {
            return Ok(());
        }
        let mut merged: HashMap<ManifestId, ManifestEntry> = HashMap::new();
        let mut contents = Vec::new();
        for e in self.cm.list_prefixed(MANIFEST_CONTENT_PREFIX, false)? {
            let data = content_cache::get_content(&self.cm, &self.cache, &e.content_id)?;
            let entries = decode_batch(&data).map_err(|err| {
                RepoError::Invalid(format!(
                    "manifest content {} is malformed: {err}",
                    e.content_id
                ))
            })?;
            for m in entries {
                match merged.get(&m.id) {
                    Some(old) if old.modified >= m.modified => {}
                    _ => {
                        merged.insert(m.id.clone(), m);
                    }
                }
            }
            contents.push(e.content_id);
        }
        let (deleted, live): (HashMap<_, _>, HashMap<_, _>) =
            merged.into_iter().partition(|(_, e)| e.deleted);
        s.committed = live;
        s.deleted = deleted;
        s.contents = contents;
        s.loaded = true;
        Ok(())
    }

    /// Forgets what was loaded (after other writers may have added manifests).
    pub fn invalidate(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.loaded = false;
        }
    }

    /// Stores `payload` with `labels` (which must include `type`); returns the new id.
    pub fn put<T: Serialize>(
        &self,
        labels: BTreeMap<String, String>,
        payload: &T,
    ) -> Result<ManifestId> {
        if kopr_format::labels::type_of(&labels).is_none_or(|t| t.is_empty()) {
            return Err(RepoError::Config("'type' label is required".into()));
        }
        let json = serde_json::to_string(payload).map_err(|e| RepoError::Invalid(e.to_string()))?;
        let entry = ManifestEntry {
            id: new_manifest_id(),
            labels,
            modified: self.cm.clock().now(),
            deleted: false,
            data: RawValue::from_string(json).map_err(|e| RepoError::Invalid(e.to_string()))?,
        };
        let id = entry.id.clone();
        self.state
            .lock()
            .map_err(|_| poisoned())?
            .pending
            .push(entry);
        Ok(id)
    }

    /// Marks a manifest deleted.
    pub fn delete(&self, id: &ManifestId) -> Result<()> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        self.ensure_loaded(&mut s)?;
        let Some(e) = s
            .committed
            .get(id)
            .cloned()
            .or_else(|| s.pending.iter().find(|e| e.id == *id).cloned())
        else {
            return Err(RepoError::NotFound(format!("manifest {id} not found")));
        };
        s.pending.push(ManifestEntry {
            deleted: true,
            modified: self
                .cm
                .clock()
                .now()
                .max(e.modified + chrono::Duration::nanoseconds(1)),
            data: RawValue::from_string("null".into())
                .map_err(|e| RepoError::Invalid(e.to_string()))?,
            ..e
        });
        Ok(())
    }

    fn view(&self) -> Result<HashMap<ManifestId, ManifestEntry>> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        self.ensure_loaded(&mut s)?;
        let mut all = s.committed.clone();
        for p in &s.pending {
            match all.get(&p.id) {
                Some(old) if old.modified > p.modified => {}
                _ => {
                    all.insert(p.id.clone(), p.clone());
                }
            }
        }
        all.retain(|_, e| !e.deleted);
        Ok(all)
    }

    /// Entries whose labels include all of `labels`, oldest first.
    pub fn find(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ManifestEntry>> {
        let mut v: Vec<ManifestEntry> = self
            .view()?
            .into_values()
            .filter(|e| labels.iter().all(|(k, val)| e.labels.get(k) == Some(val)))
            .collect();
        v.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Deletion records (labels kept, payload gone) whose labels include all of `labels`,
    /// oldest first. Compaction forgets them, so this is what is still on record.
    pub fn find_deleted(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ManifestEntry>> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        self.ensure_loaded(&mut s)?;
        let mut v: Vec<ManifestEntry> = s
            .deleted
            .values()
            .filter(|e| labels.iter().all(|(k, val)| e.labels.get(k) == Some(val)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    /// One entry and its decoded payload.
    pub fn get<T: DeserializeOwned>(&self, id: &ManifestId) -> Result<(ManifestEntry, T)> {
        let e = self
            .view()?
            .remove(id)
            .ok_or_else(|| RepoError::NotFound(format!("manifest {id} not found")))?;
        let v = serde_json::from_str(e.data.get())
            .map_err(|err| RepoError::Invalid(format!("manifest {id} is malformed: {err}")))?;
        Ok((e, v))
    }

    /// Writes pending entries as one manifest content (compacting when there are many).
    pub fn flush(&self) -> Result<()> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        if s.pending.is_empty() {
            return Ok(());
        }
        self.ensure_loaded(&mut s)?;
        let compact = s.contents.len() + 1 > AUTO_COMPACTION_THRESHOLD;
        let mut batch: Vec<ManifestEntry> = if compact {
            s.committed.values().cloned().collect()
        } else {
            Vec::new()
        };
        batch.extend(s.pending.iter().cloned());
        if compact {
            let mut by_id: BTreeMap<ManifestId, ManifestEntry> = BTreeMap::new();
            for e in batch {
                match by_id.get(&e.id) {
                    Some(old) if old.modified > e.modified => {}
                    _ => {
                        by_id.insert(e.id.clone(), e);
                    }
                }
            }
            batch = by_id.into_values().filter(|e| !e.deleted).collect();
        }
        let data = encode_batch(&batch)?;
        let id = self.cm.write_content(
            &data,
            Some(MANIFEST_CONTENT_PREFIX),
            Some(kopr_format::compression::metadata_default()),
        )?;
        if compact {
            for old in std::mem::take(&mut s.contents) {
                if old != id {
                    self.cm.delete_content(&old)?;
                }
            }
        }
        for p in std::mem::take(&mut s.pending) {
            if p.deleted {
                s.committed.remove(&p.id);
            } else {
                s.committed.insert(p.id.clone(), p);
            }
        }
        if !s.contents.contains(&id) {
            s.contents.push(id);
        }
        Ok(())
    }
}
