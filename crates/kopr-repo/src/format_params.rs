//! Changing what `kopia.repository` and `kopia.blobcfg` say after creation, as Kopia's
//! `repository set-parameters` and `repository upgrade` do:
//!
//! - [`validate_mutable`]: Kopia's limits on the mutable parameters (pack size, index version,
//!   epoch parameters);
//! - [`write_parameters`]: the new configuration and object-lock settings, written safely:
//!   the format blob must still be the one that was opened (no concurrent change), `kopia.blobcfg`
//!   first (only when it changes), then `kopia.repository` in one atomic put, both with the
//!   retention they configure;
//! - the upgrade lock ([`RawFormat`], [`place_upgrade_lock`], [`migrate_indexes_to_epochs`],
//!   [`validate_migrated_indexes`], [`commit_upgrade`], [`rollback_upgrade`]): the lock intent
//!   lives in the format blob, which every client (Kopia's and kopr's) refuses to use while it is
//!   there, a backup of the old format blob `kopia.repository.backup.<owner>` allows rollback.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kopr_blob::clock::Clock;
use kopr_blob::{BlobMetadata, BlobStorage, PutOptions};
use kopr_format::index::IndexEntry;
use kopr_format::repository_blob::{
    BlobStorageConfig, EpochParameters, RepositoryBlob, RepositoryConfig, BLOBCFG_BLOB_ID,
    REPOSITORY_BLOB_ID,
};
use kopr_format::FormatError;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::format_blob_cache::FormatBlobCache;
use crate::format_manager::{read_optional, FormatManager};
use crate::index_cache::BlobCache;

/// Kopia's smallest and largest pack sizes.
pub const MIN_PACK_SIZE: u32 = 10 << 20;
/// See [`MIN_PACK_SIZE`].
pub const MAX_PACK_SIZE: u32 = 120 << 20;
/// The newest format version (Kopia's `MaxFormatVersion`).
pub const MAX_FORMAT_VERSION: u32 = 3;
/// Backups of the format blob taken by an upgrade (Kopia's prefix).
pub const BACKUP_BLOB_PREFIX: &str = "kopia.repository.backup.";
/// The blob that makes clients without the epoch manager refuse an upgraded repository.
pub const LEGACY_INDEX_POISON_BLOB_ID: &str =
    "n00000000000000000000000000000000-repository_unreadable_by_this_kopia_version_upgrade_required";

const MINUTE: i64 = 60_000_000_000;

/// Kopia's validation of the mutable parameters.
pub fn validate_mutable(c: &RepositoryConfig) -> Result<()> {
    let invalid = |m: String| Err(RepoError::Invalid(format!("invalid parameters: {m}")));
    let pack = c.effective_max_pack_size();
    if pack < MIN_PACK_SIZE {
        return invalid("max pack size too small, must be >= 10 MiB".into());
    }
    if pack > MAX_PACK_SIZE {
        return invalid("max pack size too big, must be <= 120 MiB".into());
    }
    if c.index_version > 2 {
        return invalid("invalid index version, supported versions are 1 & 2".into());
    }
    let p = &c.epoch_parameters;
    if !p.enabled {
        return Ok(());
    }
    let epoch = |m: &str| invalid(format!("invalid epoch parameters: {m}"));
    if p.min_epoch_duration_nanos < 10 * MINUTE {
        return epoch("minimum epoch duration too low");
    }
    if p.refresh_frequency_nanos.saturating_mul(3) > p.min_epoch_duration_nanos {
        return epoch(
            "epoch refresh period is too long, must be 1/3 of minimal epoch duration or shorter",
        );
    }
    if p.full_checkpoint_frequency <= 0 {
        return epoch("invalid epoch range compaction period");
    }
    if p.cleanup_safety_margin_nanos < p.refresh_frequency_nanos.saturating_mul(3) {
        return epoch("invalid cleanup safety margin, must be at least 3x epoch refresh frequency");
    }
    if p.advance_on_count_threshold < 10 {
        return epoch("epoch advance on count too low");
    }
    if p.advance_on_total_size_bytes_threshold < 1 << 20 {
        return epoch("epoch advance on size too low");
    }
    Ok(())
}

fn put_options(c: &BlobStorageConfig) -> PutOptions {
    PutOptions {
        retention_mode: (!c.retention_mode.is_empty()).then(|| c.retention_mode.clone()),
        retention_period: (c.retention_period_nanos > 0)
            .then(|| std::time::Duration::from_nanos(c.retention_period_nanos as u64)),
        ..PutOptions::default()
    }
}

/// Writes `config` and `blobcfg` as the repository's parameters (Kopia's `SetParameters`).
/// Refused when the format blob changed since `fm` opened it, or the parameters are invalid.
pub fn write_parameters(
    fm: &FormatManager,
    st: &dyn BlobStorage,
    config: &RepositoryConfig,
    blobcfg: &BlobStorageConfig,
) -> Result<()> {
    validate_mutable(config)?;
    let mut raw = RawFormat::from_manager(st, fm)?;
    raw.write(st, config.clone(), blobcfg)
}

/// Kopia's upgrade lock intent, as stored in the configuration's `upgradeLock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeLockIntent {
    /// Who holds the lock.
    #[serde(rename = "ownerID", default, skip_serializing_if = "String::is_empty")]
    pub owner_id: String,
    /// When it was placed.
    #[serde(rename = "creationTime")]
    pub creation_time: DateTime<Utc>,
    /// Advance notice (nanoseconds).
    #[serde(
        rename = "advanceNoticeDuration",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub advance_notice_nanos: i64,
    /// How long other clients may take to notice (nanoseconds).
    #[serde(rename = "ioDrainTimeout", default, skip_serializing_if = "is_zero")]
    pub io_drain_timeout_nanos: i64,
    /// Advisory polling interval (nanoseconds).
    #[serde(
        rename = "statusPollInterval",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub status_poll_interval_nanos: i64,
    /// What is going on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Largest accepted clock difference (nanoseconds).
    #[serde(
        rename = "maxPermittedClockDrift",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub max_permitted_clock_drift_nanos: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl UpgradeLockIntent {
    /// Kopia's checks of a new intent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| {
            Err(RepoError::Invalid(format!(
                "invalid upgrade lock intent: {m}"
            )))
        };
        if self.owner_id.is_empty() {
            return bad("no owner-id set, it is required to set a unique owner-id");
        }
        if self.io_drain_timeout_nanos <= 0 {
            return bad("io-drain-timeout is required to be set for the upgrade lock");
        }
        if self.status_poll_interval_nanos > self.io_drain_timeout_nanos {
            return bad("status-poll-interval must be less than or equal to the io-drain-timeout");
        }
        if self.message.is_empty() {
            return bad("please set an upgrade message for visibility");
        }
        if self.max_permitted_clock_drift_nanos <= 0 {
            return bad("max-permitted-clock-drift is not set");
        }
        if self.advance_notice_nanos < 0 {
            return bad("the advanced notice duration cannot be negative");
        }
        if self.advance_notice_nanos != 0 && self.advance_notice_nanos <= self.total_drain_nanos() {
            return bad("the advanced notice duration must be more than the total drain interval");
        }
        Ok(())
    }

    fn total_drain_nanos(&self) -> i64 {
        self.max_permitted_clock_drift_nanos
            .saturating_add(self.io_drain_timeout_nanos.saturating_mul(2))
    }

    /// When every other client has stopped: creation plus the advance notice or the drain.
    pub fn upgrade_time(&self) -> DateTime<Utc> {
        let d = self.advance_notice_nanos.max(self.total_drain_nanos());
        self.creation_time + chrono::Duration::nanoseconds(d)
    }

    /// Whether the lock is in force, and whether other writers have drained, at `now`.
    pub fn is_locked(&self, now: DateTime<Utc>) -> (bool, bool) {
        let total = self.total_drain_nanos();
        let locked = self.advance_notice_nanos < total
            || now
                >= self.creation_time
                    + chrono::Duration::nanoseconds(self.advance_notice_nanos - total);
        (locked, now >= self.upgrade_time())
    }
}

/// The format blob opened with the password but without the checks that refuse a locked
/// repository: what the upgrade commands work on.
#[derive(Debug, Clone)]
pub struct RawFormat {
    /// The stored bytes.
    pub bytes: Vec<u8>,
    /// Parsed.
    pub blob: RepositoryBlob,
    /// The password-derived key.
    pub key: Vec<u8>,
    /// The decrypted configuration.
    pub config: RepositoryConfig,
    /// Object-lock settings.
    pub blobcfg: BlobStorageConfig,
    /// The local copies of the format blobs, dropped by every write (and when the stored
    /// format turns out to differ from this one); disabled unless the caller sets it.
    pub blob_cache: FormatBlobCache,
}

impl RawFormat {
    /// Reads and decrypts `kopia.repository` (and `kopia.blobcfg`).
    pub fn open(st: &dyn BlobStorage, password: &str) -> Result<RawFormat> {
        let bytes = read_optional(st, REPOSITORY_BLOB_ID)?
            .ok_or_else(|| RepoError::NotInitialized(st.display_name()))?;
        let blob = RepositoryBlob::parse(&bytes)?;
        let key = blob.derive_format_key(password)?;
        let config = match blob.decrypt_config(&key) {
            Ok(c) => c,
            Err(FormatError::Decrypt(_)) => return Err(RepoError::InvalidPassword),
            Err(e) => return Err(e.into()),
        };
        let blobcfg = match read_optional(st, BLOBCFG_BLOB_ID)? {
            Some(b) => blob.decode_blobcfg(&b, &key)?,
            None => BlobStorageConfig::default(),
        };
        Ok(RawFormat {
            bytes,
            blob,
            key,
            config,
            blobcfg,
            blob_cache: FormatBlobCache::disabled(),
        })
    }

    /// The upgrade lock, if one is placed.
    pub fn lock(&self) -> Result<Option<UpgradeLockIntent>> {
        self.config
            .upgrade_lock
            .clone()
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| RepoError::Invalid(format!("malformed upgrade lock: {e}")))
            })
            .transpose()
    }

    /// The format an open repository uses; refused when the stored blob is no longer that one.
    pub fn from_manager(st: &dyn BlobStorage, fm: &FormatManager) -> Result<RawFormat> {
        let Some(bytes) = fm.stored_if_unchanged(st)? else {
            return Err(RepoError::Invalid(
                "kopia.repository changed since the repository was opened; run the command again"
                    .into(),
            ));
        };
        Ok(RawFormat {
            bytes,
            blob: fm.repository_blob.clone(),
            key: fm.format_key.clone(),
            config: fm.config.clone(),
            blobcfg: fm.blob_config.clone(),
            blob_cache: fm.blob_cache().clone(),
        })
    }

    /// Writes `config` and `blobcfg`: refused when the format blob changed since it was read;
    /// `kopia.blobcfg` first and only when it changes, then `kopia.repository` in one put, both
    /// with the retention `blobcfg` configures (Kopia's order).
    pub fn write(
        &mut self,
        st: &dyn BlobStorage,
        config: RepositoryConfig,
        blobcfg: &BlobStorageConfig,
    ) -> Result<()> {
        blobcfg
            .validate()
            .map_err(|e| RepoError::Invalid(format!("invalid blob-config options: {e}")))?;
        let now = read_optional(st, REPOSITORY_BLOB_ID)?.unwrap_or_default();
        if now != self.bytes {
            self.blob_cache.forget();
            return Err(RepoError::Invalid(
                "kopia.repository changed since it was read; run the command again".into(),
            ));
        }
        let mut blob = self.blob.clone();
        blob.encrypt_config(&config, &self.key)?;
        let bytes = blob.to_bytes();
        let put = put_options(blobcfg);
        self.blob_cache.around_write(|| {
            if *blobcfg != self.blobcfg {
                let data = blob.encode_blobcfg(blobcfg, &self.key)?;
                st.put_blob(BLOBCFG_BLOB_ID, &data, &put)?;
                self.blobcfg = blobcfg.clone();
            }
            st.put_blob(REPOSITORY_BLOB_ID, &bytes, &put)?;
            Ok(())
        })?;
        self.bytes = bytes;
        self.blob = blob;
        self.config = config;
        Ok(())
    }

    /// Writes `config` with the object-lock settings unchanged.
    pub fn write_config(&mut self, st: &dyn BlobStorage, config: RepositoryConfig) -> Result<()> {
        let blobcfg = self.blobcfg.clone();
        self.write(st, config, &blobcfg)
    }

    /// A format manager over this configuration as if it were not locked (the upgrade's own
    /// work), with `config` in place of the stored one.
    pub fn manager_for(
        &self,
        st: &dyn BlobStorage,
        config: &RepositoryConfig,
    ) -> Result<FormatManager> {
        let mut unlocked = config.clone();
        unlocked.upgrade_lock = None;
        let mut blob = self.blob.clone();
        blob.encrypt_config(&unlocked, &self.key)?;
        FormatManager::open_with_key(st, blob, &self.key)
    }
}

/// What placing the lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The repository is at the newest format and was not locked.
    UpToDate,
    /// The lock is (now) placed.
    Placed(UpgradeLockIntent),
}

/// Places the upgrade lock intent (Kopia's `SetUpgradeLockIntent`): the first time, the format
/// blob is backed up as `kopia.repository.backup.<owner>` and the configuration says the newest
/// version with the lock; an existing lock of the same owner is kept.
pub fn place_upgrade_lock(
    st: &dyn BlobStorage,
    raw: &mut RawFormat,
    intent: UpgradeLockIntent,
) -> Result<LockOutcome> {
    intent.validate()?;
    match raw.lock()? {
        None => {
            if raw.config.version >= MAX_FORMAT_VERSION {
                return Ok(LockOutcome::UpToDate);
            }
            st.put_blob(
                &format!("{BACKUP_BLOB_PREFIX}{}", intent.owner_id),
                &raw.bytes,
                &put_options(&raw.blobcfg),
            )?;
            let mut c = raw.config.clone();
            c.upgrade_lock = Some(
                serde_json::to_value(&intent)
                    .map_err(|e| RepoError::Invalid(format!("upgrade lock: {e}")))?,
            );
            c.version = MAX_FORMAT_VERSION;
            raw.write_config(st, c)?;
            Ok(LockOutcome::Placed(intent))
        }
        Some(l) if l.owner_id != intent.owner_id => Err(RepoError::Invalid(format!(
            "failed to update the existing lock: upgrade owner-id mismatch {:?} != {:?}, you are not the owner of the upgrade lock",
            intent.owner_id, l.owner_id
        ))),
        Some(l) => Ok(LockOutcome::Placed(l)),
    }
}

/// Writes the repository's index as epoch 0 of the epoch manager (Kopia's
/// `PrepareUpgradeToIndexBlobManagerV1`) and returns the configuration that turns the epoch
/// manager on with Kopia's defaults and index version 2 (format version at least 2), with the
/// index blobs written. Nothing to do (`None`) when the epoch manager is on already. The caller
/// writes the configuration.
pub fn migrate_indexes_to_epochs(
    st: Arc<dyn BlobStorage>,
    raw: &RawFormat,
    clock: Arc<dyn Clock>,
) -> Result<Option<(RepositoryConfig, Vec<BlobMetadata>)>> {
    if raw.config.epoch_parameters.enabled {
        return Ok(None);
    }
    let fm = Arc::new(raw.manager_for(&*st, &raw.config)?);
    let legacy =
        crate::legacy_index::LegacyIndexManager::new(st.clone(), fm.clone(), clock.clone());
    let active = legacy.active_index_blobs()?;
    let repo = crate::Repository::from_format(
        st.clone(),
        fm,
        crate::OpenOptions {
            clock,
            ..crate::OpenOptions::default()
        },
    )?;
    let written = if active.is_empty() {
        Vec::new()
    } else {
        repo.contents()
            .compact_index_blobs(&active, &crate::epoch::uncompacted_epoch_prefix(0))?
    };
    let mut c = raw.config.clone();
    c.epoch_parameters = EpochParameters::kopia_default();
    c.index_version = 2;
    c.version = c.version.max(2);
    Ok(Some((c, written)))
}

/// Kopia's poison blob: legacy clients that look for `n` index blobs find one they cannot read.
pub fn write_legacy_index_poison(st: &dyn BlobStorage) -> Result<()> {
    st.put_blob(
        LEGACY_INDEX_POISON_BLOB_ID,
        b"The format of this repository has been upgraded and cannot be read by old clients",
        &PutOptions::default(),
    )?;
    Ok(())
}

fn load_entries(
    st: &dyn BlobStorage,
    fm: &FormatManager,
    blobs: &[BlobMetadata],
) -> Result<HashMap<String, IndexEntry>> {
    let cache = BlobCache::new(None);
    let mut out: HashMap<String, IndexEntry> = HashMap::new();
    for bm in blobs {
        if bm.id == LEGACY_INDEX_POISON_BLOB_ID {
            continue;
        }
        let loaded = crate::committed_index::load_index_blob(st, &fm.encryptor, &cache, bm)?;
        for e in loaded.index.iter() {
            let e = e?;
            let key = e.content_id.to_string();
            let merged = match out.remove(&key) {
                Some(old) => crate::committed_index::merge_entries(old, e),
                None => e,
            };
            out.insert(key, merged);
        }
    }
    Ok(out)
}

/// Compares the legacy index with the epoch index written by the migration (Kopia's
/// `upgrade validate`): every content must have the same pack, offset, lengths, time, deletion,
/// compression and key in both. Returns the differences (none: valid); an empty legacy index
/// (already committed and cleaned up) has nothing to compare.
pub fn validate_migrated_indexes(
    st: Arc<dyn BlobStorage>,
    raw: &RawFormat,
    clock: Arc<dyn Clock>,
) -> Result<Vec<String>> {
    let mut legacy_cfg = raw.config.clone();
    legacy_cfg.epoch_parameters = EpochParameters::default();
    let legacy_fm = Arc::new(raw.manager_for(&*st, &legacy_cfg)?);
    let legacy =
        crate::legacy_index::LegacyIndexManager::new(st.clone(), legacy_fm.clone(), clock.clone());
    let old_blobs = legacy.active_index_blobs()?;
    let mut epoch_cfg = raw.config.clone();
    if !epoch_cfg.epoch_parameters.enabled {
        epoch_cfg.epoch_parameters = EpochParameters::kopia_default();
    }
    let epochs =
        crate::epoch::EpochManager::new(st.clone(), epoch_cfg.epoch_parameters.clone(), clock);
    let (new_blobs, _) = epochs.complete_index_set()?;
    if new_blobs.is_empty() {
        return Ok(vec![
            "failed to list index blobs for new index: upgrade may have failed".into(),
        ]);
    }
    if old_blobs
        .iter()
        .all(|b| b.id == LEGACY_INDEX_POISON_BLOB_ID)
    {
        return Ok(Vec::new());
    }
    let old = load_entries(&*st, &legacy_fm, &old_blobs)?;
    let new = load_entries(&*st, &legacy_fm, &new_blobs)?;
    let mut msgs = Vec::new();
    for (id, a) in &old {
        match new.get(id) {
            None => msgs.push(format!(
                "lop-sided index entries for contentID {id:?} at blob {:?}",
                a.pack_blob_id
            )),
            Some(b) => {
                let what = if a.format_version != b.format_version {
                    "FormatVersions"
                } else if a.original_length != b.original_length {
                    "OriginalLengths"
                } else if a.pack_blob_id != b.pack_blob_id {
                    "PackBlobIDs"
                } else if a.packed_length != b.packed_length {
                    "PackedLengths"
                } else if a.pack_offset != b.pack_offset {
                    "PackOffsets"
                } else if a.encryption_key_id != b.encryption_key_id {
                    "EncryptionKeyIDs"
                } else if a.compression_header_id != b.compression_header_id {
                    "GetCompressionHeaderID"
                } else if a.deleted != b.deleted {
                    "Deleted flags"
                } else if a.timestamp_seconds != b.timestamp_seconds {
                    "TimestampSeconds"
                } else {
                    continue;
                };
                msgs.push(format!(
                    "index blobs do not match: {:?}, {:?}: mismatched {what}",
                    a.pack_blob_id, b.pack_blob_id
                ));
            }
        }
    }
    for (id, b) in &new {
        if !old.contains_key(id) {
            msgs.push(format!(
                "lop-sided index entries for contentID {id:?} at blob {:?}",
                b.pack_blob_id
            ));
        }
    }
    msgs.sort();
    Ok(msgs)
}

/// Ends the upgrade (Kopia's `CommitUpgrade`): the poison blob that keeps legacy clients out,
/// then the configuration without the lock.
pub fn commit_upgrade(st: &dyn BlobStorage, raw: &mut RawFormat) -> Result<()> {
    if raw.lock()?.is_none() {
        return Err(RepoError::Invalid("no upgrade in progress".into()));
    }
    write_legacy_index_poison(st)?;
    let mut c = raw.config.clone();
    c.upgrade_lock = None;
    raw.write_config(st, c)
}

/// Puts the oldest backup of the format blob back and deletes the backups (Kopia's
/// `RollbackUpgrade`). Returns whether a backup was restored.
pub fn rollback_upgrade(st: &dyn BlobStorage, raw: &RawFormat) -> Result<bool> {
    if raw.lock()?.is_none() {
        return Err(RepoError::Invalid("no upgrade in progress".into()));
    }
    let mut backups = st.list_all(BACKUP_BLOB_PREFIX)?;
    backups.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    let Some(oldest) = backups.first().cloned() else {
        return Ok(false);
    };
    for b in &backups[1..] {
        st.delete_blob(&b.id)?;
    }
    let data = st.get_blob(&oldest.id, 0, None)?;
    RepositoryBlob::parse(&data)?;
    raw.blob_cache.around_write(|| {
        Ok(st.put_blob(REPOSITORY_BLOB_ID, &data, &put_options(&raw.blobcfg))?)
    })?;
    st.delete_blob(&oldest.id)?;
    Ok(true)
}
