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
use kopr_format::index::{encode_index_v1, encode_index_v2, Index, IndexBuilder, IndexEntry};
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

/// Encodes index entries in the repository's index version, with Kopia's random suffix.
pub fn encode_index(version: u32, entries: Vec<IndexEntry>) -> Result<Vec<u8>> {
    Ok(match version {
        1 => encode_index_v1(entries)?,
        2 => encode_index_v2(entries)?,
        v => {
            return Err(RepoError::Invalid(format!(
                "unsupported index format version {v}"
            )))
        }
    })
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
            plain.push(encode_index(
                self.format.index_version(),
                shard.into_entries(),
            )?);
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
mod tests {
    use super::*;
    use crate::format_manager::{CreateOptions, FormatManager};
    use crate::repository::{OpenOptions, Repository};
    use kopr_blob::clock::ManualClock;
    use kopr_blob::memory::MemoryStorage;
    use kopr_format::repository_blob::{RepositoryBlob, RepositoryConfig, REPOSITORY_BLOB_ID};

    const PW: &str = "pw";

    /// Rewrites the format blob of the repository in `st` with `edit` applied to its config.
    fn edit_config(st: &dyn BlobStorage, edit: impl FnOnce(&mut RepositoryConfig)) {
        let mut blob =
            RepositoryBlob::parse(&st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()).unwrap();
        let key = blob.derive_format_key(PW).unwrap();
        let mut cfg = blob.decrypt_config(&key).unwrap();
        edit(&mut cfg);
        blob.encrypt_config(&cfg, &key).unwrap();
        st.put_blob(REPOSITORY_BLOB_ID, &blob.to_bytes(), &PutOptions::default())
            .unwrap();
    }

    /// A repository as `kopia repository create --format-version=1` makes it.
    fn format_v1(st: &dyn BlobStorage) {
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
            ..CreateOptions::default()
        };
        Repository::create(st, &opts, PW).unwrap();
        edit_config(st, |c| {
            c.version = 1;
            c.index_version = 1;
            c.epoch_parameters = Default::default();
            c.enable_password_change = false;
        });
    }

    fn setup() -> (Arc<ManualClock>, Arc<dyn BlobStorage>) {
        let clock = Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        ));
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
        format_v1(&*st);
        (clock, st)
    }

    fn open(st: &Arc<dyn BlobStorage>, clock: &Arc<ManualClock>) -> Repository {
        Repository::open(
            st.clone(),
            PW,
            OpenOptions {
                clock: clock.clone(),
                ..OpenOptions::default()
            },
        )
        .unwrap()
    }

    fn ids(st: &dyn BlobStorage, prefix: &str) -> Vec<String> {
        st.list_all(prefix)
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    }

    /// Writes `n` flushes of one small content each; returns the content ids and data.
    fn write_flushes(
        repo: &Repository,
        first: usize,
        n: usize,
    ) -> Vec<(kopr_format::index::ContentId, Vec<u8>)> {
        (first..first + n)
            .map(|i| {
                let data = format!("content number {i}").into_bytes();
                let id = repo.contents().write_content(&data, None, None).unwrap();
                repo.contents().flush().unwrap();
                (id, data)
            })
            .collect()
    }

    #[test]
    fn flush_writes_kopia_legacy_index_blobs_in_index_v1() {
        let (clock, st) = setup();
        let repo = open(&st, &clock);
        assert!(repo.contents().legacy_indexes().is_some());
        let data = b"hello legacy world".to_vec();
        // Compression is requested but index v1 cannot record it: stored as is.
        let id = repo
            .contents()
            .write_content(&data, None, Some("zstd"))
            .unwrap();
        repo.contents().flush().unwrap();
        assert!(ids(&*st, "x").is_empty(), "no epoch blobs");
        let n = ids(&*st, INDEX_PREFIX);
        assert_eq!(n.len(), 1, "{n:?}");
        let (hash, session) = n[0][1..].split_once('-').unwrap();
        assert_eq!(hash.len(), 32, "{n:?}");
        assert!(session.starts_with('s') && !session.contains('-'), "{n:?}");
        let format = repo.format().clone();
        let plain = blob_crypto::decrypt_blob(
            &format.encryptor,
            &st.get_blob(&n[0], 0, None).unwrap(),
            &n[0],
        )
        .unwrap();
        assert_eq!(plain[0], 1, "index v1");
        // The pack starts with Kopia's checksummed copy of the format blob.
        let packs = ids(&*st, "p");
        assert_eq!(packs.len(), 1);
        let pack = st.get_blob(&packs[0], 0, None).unwrap();
        let format_bytes = st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap();
        assert_eq!(
            &pack[2..2 + format_bytes.len()],
            &format_bytes[..],
            "format copy"
        );

        let again = open(&st, &clock);
        let e = again.contents().content_info(&id).unwrap().unwrap();
        assert_eq!(e.original_length as usize, data.len(), "from the overhead");
        assert_eq!(e.compression_header_id, 0);
        assert_eq!(again.contents().get_content(&id).unwrap(), data);
        // The pack's own index copy is v1 too and recovers the same entry.
        let local = again.contents().pack_local_index(&packs[0]).unwrap();
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].original_length as usize, data.len());
    }

    #[test]
    fn compaction_follows_kopia_logs_and_settle_times() {
        let (clock, st) = setup();
        let repo = open(&st, &clock);
        let legacy = repo.contents().legacy_indexes().unwrap();
        let opts = CompactOptions {
            max_small_blobs: 8,
            ..CompactOptions::default()
        };
        let mut all = write_flushes(&repo, 0, 7);
        let stats = legacy
            .compact(repo.contents().index_cache(), &opts)
            .unwrap();
        assert_eq!(
            stats,
            CompactStats::default(),
            "7 blobs are below the threshold"
        );

        all.extend(write_flushes(&repo, 7, 1));
        let first_inputs = ids(&*st, INDEX_PREFIX);
        assert_eq!(first_inputs.len(), 8);
        let stats = legacy
            .compact(repo.contents().index_cache(), &opts)
            .unwrap();
        assert_eq!((stats.inputs, stats.outputs), (8, 1));
        assert_eq!(stats.deleted_index_blobs, 0, "inputs stay until settled");
        let active = legacy.active_index_blobs().unwrap();
        assert_eq!(active.len(), 1);
        assert!(
            !active[0].id.contains('-'),
            "compacted blobs have no suffix"
        );
        assert_eq!(ids(&*st, INDEX_PREFIX).len(), 9, "inputs still stored");
        let m1 = ids(&*st, COMPACTION_LOG_PREFIX);
        assert_eq!(m1.len(), 1);
        repo.contents().refresh().unwrap();
        for (id, data) in &all {
            assert_eq!(&repo.contents().get_content(id).unwrap(), data);
        }

        // Two hours later another compaction deletes the first one's inputs and schedules
        // its log for cleanup.
        clock.advance(std::time::Duration::from_secs(2 * 3600));
        all.extend(write_flushes(&repo, 8, 8));
        let stats = legacy
            .compact(repo.contents().index_cache(), &opts)
            .unwrap();
        assert_eq!(stats.deleted_index_blobs, 8);
        for id in &first_inputs {
            assert!(st.get_metadata(id).is_err(), "{id} deleted");
        }
        assert_eq!(ids(&*st, CLEANUP_PREFIX).len(), 1);
        assert!(
            st.get_metadata(&m1[0]).is_ok(),
            "log kept until the cleanup settles"
        );

        // And two hours after that, the first log and its cleanup blob go too.
        clock.advance(std::time::Duration::from_secs(2 * 3600));
        all.extend(write_flushes(&repo, 16, 8));
        legacy
            .compact(repo.contents().index_cache(), &opts)
            .unwrap();
        assert!(st.get_metadata(&m1[0]).is_err(), "first log deleted");
        assert_eq!(
            ids(&*st, CLEANUP_PREFIX).len(),
            1,
            "only the newest cleanup"
        );

        let fresh = open(&st, &clock);
        assert_eq!(fresh.contents().index_blobs().unwrap().len(), 1);
        for (id, data) in &all {
            assert_eq!(&fresh.contents().get_content(id).unwrap(), data);
        }
    }

    #[test]
    fn dropping_deleted_contents_compacts_everything_without_them() {
        let (clock, st) = setup();
        let repo = open(&st, &clock);
        let kept = write_flushes(&repo, 0, 2);
        let gone = write_flushes(&repo, 2, 1);
        repo.contents().delete_content(&gone[0].0).unwrap();
        repo.contents().flush().unwrap();
        clock.advance(std::time::Duration::from_secs(10));
        let opts = CompactOptions {
            all_indexes: true,
            drop_deleted_before: Some(clock.now()),
            disable_eventual_consistency_safety: true,
            ..CompactOptions::default()
        };
        let legacy = repo.contents().legacy_indexes().unwrap();
        let stats = legacy
            .compact(repo.contents().index_cache(), &opts)
            .unwrap();
        assert_eq!(stats.dropped_contents, 1);
        assert_eq!(stats.inputs, 4);
        assert_eq!(ids(&*st, INDEX_PREFIX).len(), 1, "inputs deleted at once");
        assert!(ids(&*st, COMPACTION_LOG_PREFIX).is_empty());
        assert!(ids(&*st, CLEANUP_PREFIX).is_empty());
        let fresh = open(&st, &clock);
        assert_eq!(fresh.contents().content_info(&gone[0].0).unwrap(), None);
        for (id, data) in &kept {
            assert_eq!(&fresh.contents().get_content(id).unwrap(), data);
        }
    }

    #[test]
    fn the_upgrade_poison_blob_is_not_an_index() {
        let (clock, st) = setup();
        st.put_blob(POISON_BLOB_ID, b"poison", &PutOptions::default())
            .unwrap();
        let repo = open(&st, &clock);
        assert!(repo.contents().index_blobs().unwrap().is_empty());
    }

    #[test]
    fn unsupported_formats_are_refused_naming_what() {
        type Edit = Box<dyn Fn(&mut RepositoryConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.version = 4),
                "unsupported repository: format version 4",
            ),
            (Box::new(|c| c.index_version = 3), "index format version 3"),
            (
                Box::new(|c| {
                    c.required_features = Some(serde_json::json!([
                        {"feature": "future-thing", "ifNotUnderstood": {"warn": false}}
                    ]))
                }),
                "required features future-thing",
            ),
        ];
        for (edit, want) in cases {
            let (_, st) = setup();
            edit_config(&*st, edit);
            let err = FormatManager::open(&*st, PW).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        // A feature Kopia only warns about is no reason to refuse.
        let (_, st) = setup();
        edit_config(&*st, |c| {
            c.required_features = Some(serde_json::json!([
                {"feature": "cosmetic", "ifNotUnderstood": {"warn": true}}
            ]))
        });
        FormatManager::open(&*st, PW).unwrap();
    }

    #[test]
    fn schedule_key_comes_from_the_format_key_without_password_change() {
        let (_, st) = setup();
        let fm = FormatManager::open(&*st, PW).unwrap();
        let from_format_key = kopr_format::crypto::derive_key_from_master_key(
            &fm.format_key,
            &fm.repository_blob.unique_id,
            b"maintenance schedule",
            32,
        )
        .unwrap();
        assert_eq!(
            fm.derive_key(b"maintenance schedule", 32).unwrap(),
            from_format_key
        );
        assert_ne!(fm.format_key, fm.config.master_key);
    }
}
