//! The legacy index manager of repositories without the epoch manager (format version 1, and
//! any repository whose `epochParameters.Enabled` is false), as Kopia's `indexblob.ManagerV0`.
//!
//! Every flush writes `n<hash>-<session>` index blobs. Compaction merges small index blobs into
//! new `n<hash>` blobs and records what it replaced in an encrypted JSON compaction log
//! `m<hash>` (`{"inputMetadata":[…],"outputMetadata":[…]}`, each a blob's `id`, `length` and
//! `timestamp`). Readers ignore the inputs of every compaction log whose outputs are all
//! present. Once a compaction log is older than the eventual-consistency settle time (1 hour,
//! 0 with `--safety=none`), its inputs are deleted and the log itself is scheduled for deletion
//! by a cleanup blob `l<hash>` (`{"blobIDs":[…],"cleanupScheduleTime":…}`), which a later
//! compaction acts on after the same settle time.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kopr_blob::clock::Clock;
use kopr_blob::{BlobError, BlobMetadata, BlobStorage, PutOptions};
use kopr_format::blob_crypto;
use kopr_format::index::{Index, IndexBuilder, IndexEntry};
use serde::{Deserialize, Serialize};

use crate::committed_index::load_index_blob;
use crate::error::{RepoError, Result};
use crate::format_manager::FormatManager;
use crate::index_cache::BlobCache;

/// Prefix of legacy index blobs.
pub const INDEX_PREFIX: &str = "n";
/// Prefix of compaction log blobs.
pub const COMPACTION_LOG_PREFIX: &str = "m";
/// Prefix of cleanup blobs.
pub const CLEANUP_PREFIX: &str = "l";
/// The blob Kopia writes into `n` when it upgrades a repository to the epoch manager, so that
/// legacy clients fail; it is not an index.
pub const POISON_BLOB_ID: &str =
    "n00000000000000000000000000000000-repository_unreadable_by_this_kopia_version_upgrade_required";
/// Index entries per index blob shard (Kopia's default shard size).
const INDEX_SHARD_SIZE: usize = 16_000_000;
/// Index blobs smaller than this fraction of the pack size are "very small".
const VERY_SMALL_FRACTION: u64 = 20;

/// How long writes may take to become visible everywhere (Kopia's default settle time).
pub fn eventual_consistency_settle_time() -> Duration {
    Duration::hours(1)
}

/// Encodes index entries (borrowed, in any order) in the repository's index version, with
/// Kopia's random suffix: a pack's local index, the index blob of a flush, compaction shards.
pub fn encode_index<'a>(
    version: u32,
    entries: impl IntoIterator<Item = &'a IndexEntry>,
) -> Result<Vec<u8>> {
    Ok(kopr_format::index::encode_index_refs(version, entries)?)
}

/// A blob's metadata as Kopia serializes it in compaction logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoggedBlob {
    id: String,
    length: i64,
    timestamp: DateTime<Utc>,
}

impl From<&BlobMetadata> for LoggedBlob {
    fn from(b: &BlobMetadata) -> Self {
        LoggedBlob {
            id: b.id.clone(),
            length: b.length as i64,
            timestamp: b.timestamp,
        }
    }
}

/// One compaction: the index blobs replaced and those that replace them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CompactionLog {
    #[serde(rename = "inputMetadata", default)]
    inputs: Option<Vec<LoggedBlob>>,
    #[serde(rename = "outputMetadata", default)]
    outputs: Option<Vec<LoggedBlob>>,
}

/// Compaction logs scheduled for deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CleanupEntry {
    #[serde(rename = "blobIDs", default)]
    blob_ids: Option<Vec<String>>,
    #[serde(rename = "cleanupScheduleTime")]
    schedule_time: DateTime<Utc>,
}

/// What a compaction should do.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Compact only when at least this many index blobs are candidates.
    pub max_small_blobs: usize,
    /// Compact every index blob, large ones included.
    pub all_indexes: bool,
    /// Forget deleted contents whose deletion is older than this.
    pub drop_deleted_before: Option<DateTime<Utc>>,
    /// No settle time (`--safety=none`).
    pub disable_eventual_consistency_safety: bool,
}

impl CompactOptions {
    fn settle_time(&self) -> Duration {
        if self.disable_eventual_consistency_safety {
            Duration::zero()
        } else {
            eventual_consistency_settle_time()
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactStats {
    /// Index blobs merged.
    pub inputs: usize,
    /// Index blobs written.
    pub outputs: usize,
    /// Deleted contents forgotten.
    pub dropped_contents: usize,
    /// Superseded index blobs deleted.
    pub deleted_index_blobs: usize,
    /// Compaction logs and cleanup blobs deleted.
    pub deleted_log_blobs: usize,
}

/// Reads and writes the `n`, `m` and `l` blobs of one repository.
#[derive(Debug)]
pub struct LegacyIndexManager {
    st: Arc<dyn BlobStorage>,
    format: Arc<FormatManager>,
    clock: Arc<dyn Clock>,
}

fn list_or_empty(st: &dyn BlobStorage, prefix: &str) -> Result<Vec<BlobMetadata>> {
    Ok(st.list_all(prefix)?)
}

impl LegacyIndexManager {
    /// A manager over `st`.
    pub fn new(
        st: Arc<dyn BlobStorage>,
        format: Arc<FormatManager>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        LegacyIndexManager { st, format, clock }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, id: &str) -> Result<Option<T>> {
        let data = match self.st.get_blob(id, 0, None) {
            Ok(d) => d,
            Err(BlobError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let plain = blob_crypto::decrypt_blob(&self.format.encryptor, &data, id)
            .map_err(|e| RepoError::Invalid(format!("blob {id} cannot be decrypted: {e}")))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| RepoError::Invalid(format!("blob {id} is malformed: {e}")))
    }

    fn write_blob(&self, data: &[u8], prefix: &str, suffix: &str) -> Result<BlobMetadata> {
        let (id, encrypted) = blob_crypto::encrypt_blob(
            &self.format.hasher,
            &self.format.encryptor,
            data,
            prefix,
            suffix,
        )?;
        self.st.put_blob(&id, &encrypted, &PutOptions::default())?;
        // The storage's own time, as Kopia's PutBlobAndGetMetadata: settle times compare it
        // with listed timestamps.
        match self.st.get_metadata(&id) {
            Ok(bm) => Ok(bm),
            Err(_) => Ok(BlobMetadata {
                id,
                length: encrypted.len() as u64,
                timestamp: self.clock.now(),
            }),
        }
    }

    fn compaction_logs(
        &self,
        blobs: &[BlobMetadata],
    ) -> Result<Vec<(BlobMetadata, CompactionLog)>> {
        let mut out = Vec::with_capacity(blobs.len());
        for bm in blobs {
            if let Some(log) = self.read_json::<CompactionLog>(&bm.id)? {
                out.push((bm.clone(), log));
            }
        }
        Ok(out)
    }

    /// The index blobs that make up the repository's index: every `n` blob except the inputs
    /// of complete compactions (and Kopia's upgrade poison blob).
    pub fn active_index_blobs(&self) -> Result<Vec<BlobMetadata>> {
        let logs = list_or_empty(&*self.st, COMPACTION_LOG_PREFIX)?;
        let mut by_id: BTreeMap<String, BlobMetadata> = list_or_empty(&*self.st, INDEX_PREFIX)?
            .into_iter()
            .map(|b| (b.id.clone(), b))
            .collect();
        let logs = self.compaction_logs(&logs)?;
        let complete: Vec<&CompactionLog> = logs
            .iter()
            .map(|(_, l)| l)
            .filter(|l| {
                l.outputs
                    .iter()
                    .flatten()
                    .all(|o| by_id.contains_key(&o.id))
            })
            .collect();
        for l in complete {
            for i in l.inputs.iter().flatten() {
                by_id.remove(&i.id);
            }
        }
        by_id.remove(POISON_BLOB_ID);
        Ok(by_id.into_values().collect())
    }

    /// Writes encrypted index blobs `n<hash>-<suffix>` for the given plaintext shards.
    pub fn write_index_blobs(&self, shards: &[Vec<u8>], suffix: &str) -> Result<Vec<BlobMetadata>> {
        shards
            .iter()
            .map(|s| self.write_blob(s, INDEX_PREFIX, suffix))
            .collect()
    }

    /// Compacts index blobs as Kopia's legacy manager does, then deletes what earlier
    /// compactions made obsolete once it has settled. Returns what was done.
    pub fn compact(&self, cache: &BlobCache, opts: &CompactOptions) -> Result<CompactStats> {
        let mut stats = CompactStats::default();
        let active = self.active_index_blobs()?;
        let candidates = self.blobs_to_compact(&active, opts);
        self.compact_blobs(cache, &candidates, opts, &mut stats)?;
        self.cleanup(opts.settle_time(), &mut stats)?;
        Ok(stats)
    }

    fn blobs_to_compact(
        &self,
        active: &[BlobMetadata],
        opts: &CompactOptions,
    ) -> Vec<BlobMetadata> {
        let max_pack = u64::from(self.format.config.effective_max_pack_size());
        let mut all = Vec::new();
        let mut very_small = Vec::new();
        let mut medium = 0usize;
        for b in active {
            if b.length > max_pack && !opts.all_indexes {
                continue;
            }
            all.push(b.clone());
            if b.length < max_pack / VERY_SMALL_FRACTION {
                very_small.push(b.clone());
            } else {
                medium += 1;
            }
        }
        if all.len() < opts.max_small_blobs {
            return Vec::new();
        }
        if very_small.len() > all.len() / 2 && medium + 1 < opts.max_small_blobs {
            return very_small;
        }
        all
    }

    fn compact_blobs(
        &self,
        cache: &BlobCache,
        inputs: &[BlobMetadata],
        opts: &CompactOptions,
        stats: &mut CompactStats,
    ) -> Result<()> {
        if inputs.len() <= 1 && opts.drop_deleted_before.is_none() {
            return Ok(());
        }
        let mut builder = IndexBuilder::new();
        let mut seen = HashSet::new();
        for bm in inputs {
            if !seen.insert(bm.id.as_str()) {
                continue;
            }
            let loaded = load_index_blob(&*self.st, &self.format.encryptor, cache, bm)?;
            for e in loaded.index.iter() {
                builder.add(e?);
            }
        }
        let mut entries = builder.into_entries();
        if let Some(before) = opts.drop_deleted_before {
            let n = entries.len();
            entries.retain(|e| {
                !(e.deleted
                    && Utc
                        .timestamp_opt(e.timestamp_seconds, 0)
                        .single()
                        .is_some_and(|t| t < before))
            });
            stats.dropped_contents = n - entries.len();
        }
        let shards = entries
            .into_iter()
            .collect::<IndexBuilder>()
            .shard(INDEX_SHARD_SIZE)?;
        let mut plain = Vec::with_capacity(shards.len());
        for shard in shards {
            plain.push(encode_index(self.format.index_version(), shard.entries())?);
        }
        let outputs = self.write_index_blobs(&plain, "")?;
        stats.inputs = inputs.len();
        stats.outputs = outputs.len();
        self.register_compaction(inputs, &outputs, opts.settle_time(), stats)
    }

    fn register_compaction(
        &self,
        inputs: &[BlobMetadata],
        outputs: &[BlobMetadata],
        settle: Duration,
        stats: &mut CompactStats,
    ) -> Result<()> {
        let log = CompactionLog {
            inputs: Some(inputs.iter().map(LoggedBlob::from).collect()),
            outputs: Some(outputs.iter().map(LoggedBlob::from).collect()),
        };
        let json = serde_json::to_vec(&log).map_err(|e| RepoError::Invalid(e.to_string()))?;
        let written = self.write_blob(&json, COMPACTION_LOG_PREFIX, "")?;
        self.delete_old_blobs(&written, settle, stats)
    }

    /// Deletes the inputs of compactions older than the settle time and schedules their logs
    /// for deletion.
    fn delete_old_blobs(
        &self,
        latest: &BlobMetadata,
        settle: Duration,
        stats: &mut CompactStats,
    ) -> Result<()> {
        let cutoff = latest.timestamp - settle;
        let old: Vec<BlobMetadata> = list_or_empty(&*self.st, COMPACTION_LOG_PREFIX)?
            .into_iter()
            .filter(|b| b.timestamp <= cutoff)
            .collect();
        let logs = self.compaction_logs(&old)?;
        let mut to_delete: Vec<String> = Vec::new();
        for (bm, log) in &logs {
            if latest.timestamp - bm.timestamp < settle {
                continue;
            }
            for i in log.inputs.iter().flatten() {
                if !to_delete.contains(&i.id) {
                    to_delete.push(i.id.clone());
                }
            }
        }
        for id in &to_delete {
            self.delete(id)?;
        }
        stats.deleted_index_blobs += to_delete.len();
        if old.is_empty() {
            return Ok(());
        }
        let entry = CleanupEntry {
            blob_ids: Some(old.iter().map(|b| b.id.clone()).collect()),
            schedule_time: latest.timestamp,
        };
        let json = serde_json::to_vec(&entry).map_err(|e| RepoError::Invalid(e.to_string()))?;
        self.write_blob(&json, CLEANUP_PREFIX, "")?;
        Ok(())
    }

    /// Deletes compaction logs (and their cleanup blobs) scheduled at least `settle` ago.
    fn cleanup(&self, settle: Duration, stats: &mut CompactStats) -> Result<()> {
        let blobs = list_or_empty(&*self.st, CLEANUP_PREFIX)?;
        let Some(latest) = blobs.iter().map(|b| b.timestamp).max() else {
            return Ok(());
        };
        let mut logs = Vec::new();
        let mut cleanups = Vec::new();
        for bm in &blobs {
            let Some(entry) = self.read_json::<CleanupEntry>(&bm.id)? else {
                continue;
            };
            if latest - entry.schedule_time >= settle {
                logs.extend(entry.blob_ids.into_iter().flatten());
                cleanups.push(bm.id.clone());
            }
        }
        for id in logs.iter().chain(&cleanups) {
            self.delete(id)?;
        }
        stats.deleted_log_blobs += logs.len() + cleanups.len();
        Ok(())
    }

    fn delete(&self, id: &str) -> Result<()> {
        match self.st.delete_blob(id) {
            Ok(()) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Parses plaintext index bytes of this repository (v1 original lengths computed from
    /// the encryption overhead, as Kopia).
    pub fn parse_index(&self, plain: Vec<u8>) -> Result<Index> {
        parse_index(&self.format, plain)
    }
}

/// Parses plaintext index bytes; index v1 does not store original lengths, which Kopia
/// computes as the packed length minus the encryption overhead of one content.
pub fn parse_index(format: &FormatManager, plain: Vec<u8>) -> Result<Index> {
    Ok(Index::parse_with_v1_overhead(
        plain,
        format.encryptor.overhead() as u32,
    )?)
}

#[cfg(test)]
mod tests;
