//! Opening and creating a repository: reads `kopia.repository`, derives the keys from the password
//! and builds the hashing and encryption every other layer uses.

use std::sync::Arc;

use kopr_blob::{BlobError, BlobStorage, PutOptions};
use kopr_format::encryption::{self, Encryptor};
use kopr_format::hashing::{self, Hasher};
use kopr_format::repository_blob::{
    BlobStorageConfig, RepositoryBlob, RepositoryConfig, BLOBCFG_BLOB_ID, REPOSITORY_BLOB_ID,
};
use kopr_format::FormatError;

use crate::error::{RepoError, Result};
use crate::format_blob_cache::FormatBlobCache;

/// Options of `repository create`; empty strings mean Kopia's defaults.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Content hash algorithm.
    pub hash: String,
    /// Content encryption algorithm.
    pub encryption: String,
    /// Object splitter.
    pub splitter: String,
    /// Password key derivation (`scrypt-65536-8-1` by default).
    pub key_derivation: String,
    /// Object-lock settings.
    pub blob_config: BlobStorageConfig,
    /// Pack size, 0 for 20 MiB.
    pub max_pack_size: u32,
    /// Error-correction algorithm (`REED-SOLOMON-CRC32` when empty).
    pub ecc: String,
    /// Error-correction space overhead in percent, clamped to 0..=100; 0 turns ECC off.
    pub ecc_overhead_percent: i64,
}

/// Everything derived from the format blob and the password.
#[derive(Debug, Clone)]
pub struct FormatManager {
    /// The plaintext format blob.
    pub repository_blob: RepositoryBlob,
    /// The decrypted configuration.
    pub config: RepositoryConfig,
    /// Object-lock settings.
    pub blob_config: BlobStorageConfig,
    /// Content hashing, keyed by the repository secret.
    pub hasher: Hasher,
    /// Content encryption, with the error correction of the format (if any) around it.
    pub encryptor: Arc<Encryptor>,
    /// The password-derived key that encrypts the format blob. Repositories without password
    /// change (format version 1) derive their per-purpose keys from it, as Kopia does.
    pub format_key: Vec<u8>,
    /// What every new pack starts with: in repositories without password change, Kopia's
    /// checksummed copy of `kopia.repository` as stored (for format recovery); else nothing.
    pub pack_prefix: Vec<u8>,
    /// Where the format blobs were cached locally: dropped when this manager rewrites them.
    blob_cache: FormatBlobCache,
    /// Whether a local copy of a format blob was read to open (not the storage).
    from_cached_copy: bool,
}

/// Tool name written into new repositories.
pub const TOOL_NAME: &str = "kopr";

/// Blob `id`, or `None` when the storage has none.
pub(crate) fn read_optional(st: &dyn BlobStorage, id: &str) -> Result<Option<Vec<u8>>> {
    match st.get_blob(id, 0, None) {
        Ok(b) => Ok(Some(b)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The unique id in the storage's `kopia.repository` (readable without the password), or
/// `None` when there is none.
pub fn unique_id_of(st: &dyn BlobStorage) -> Result<Option<Vec<u8>>> {
    read_optional(st, REPOSITORY_BLOB_ID)?
        .map(|bytes| Ok(RepositoryBlob::parse(&bytes)?.unique_id))
        .transpose()
}

/// Writes a new repository's `kopia.blobcfg` and `kopia.repository` into empty storage.
pub fn initialize(st: &dyn BlobStorage, opts: &CreateOptions, password: &str) -> Result<()> {
    if read_optional(st, REPOSITORY_BLOB_ID)?.is_some() {
        return Err(RepoError::AlreadyInitialized(st.display_name()));
    }
    if read_optional(st, BLOBCFG_BLOB_ID)?.is_some() {
        return Err(RepoError::Invalid(
            "possible corruption: blobcfg blob exists, but format blob is not found".into(),
        ));
    }
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    let hash = or(&opts.hash, hashing::DEFAULT_HASH);
    let enc = or(&opts.encryption, encryption::DEFAULT_ENCRYPTION);
    let splitter = or(&opts.splitter, kopr_format::splitter::DEFAULT_SPLITTER);
    let kdf = or(&opts.key_derivation, kopr_format::crypto::SCRYPT_ALGORITHM);
    // Validate the algorithm names before anything is written.
    Hasher::new(&hash, &[0u8; 32])?;
    Encryptor::new(&enc, &[0u8; 32])?;
    kopr_format::splitter::new_splitter(&splitter)?;
    opts.blob_config.validate()?;
    // As Kopia: the overhead is clamped to 0..=100, and 0 leaves no trace of ECC in the format.
    let ecc_overhead = opts.ecc_overhead_percent.clamp(0, 100);
    let ecc_name = or(&opts.ecc, kopr_format::ecc::DEFAULT_ECC);
    if !kopr_format::ecc::supported_ecc_algorithms().contains(&ecc_name.as_str()) {
        return Err(FormatError::UnsupportedAlgorithm {
            kind: "error correction",
            name: ecc_name,
        }
        .into());
    }

    let mut config = RepositoryConfig::new_default(&hash, &enc, &splitter);
    if opts.max_pack_size != 0 {
        config.max_pack_size = opts.max_pack_size;
    }
    if ecc_overhead > 0 {
        config.ecc = ecc_name;
        config.ecc_overhead_percent = ecc_overhead;
    }
    let mut blob = RepositoryBlob::new(TOOL_NAME, env!("CARGO_PKG_VERSION"), &kdf);
    let key = blob.derive_format_key(password)?;
    blob.encrypt_config(&config, &key)?;
    let put = PutOptions {
        retention_mode: non_empty(&opts.blob_config.retention_mode),
        retention_period: retention(&opts.blob_config),
        ..PutOptions::default()
    };
    st.put_blob(
        BLOBCFG_BLOB_ID,
        &blob.encode_blobcfg(&opts.blob_config, &key)?,
        &put,
    )?;
    st.put_blob(REPOSITORY_BLOB_ID, &blob.to_bytes(), &put)?;
    Ok(())
}

/// Refuses what kopr cannot read and write exactly as Kopia does, before anything is written:
/// a format version other than 1 to 3, an index version other than 1 and 2, and required features that Kopia itself would refuse
/// when it does not know them (all but those marked to warn only).
fn check_supported(config: &RepositoryConfig) -> Result<()> {
    let unsupported = |what: String| {
        Err(RepoError::Refused(format!(
            "unsupported repository: {what}; kopr {} cannot open it without risking data loss",
            env!("CARGO_PKG_VERSION")
        )))
    };
    if !(1..=3).contains(&config.version) {
        return unsupported(format!("format version {}", config.version));
    }
    match config.effective_index_version() {
        1 | 2 => {}
        v => return unsupported(format!("index format version {v}")),
    }
    if let Some(features) = &config.required_features {
        let names: Vec<String> = match features.as_array() {
            Some(list) => list
                .iter()
                // Kopia only warns about a feature marked `"ifNotUnderstood":{"warn":true}`.
                .filter(|f| {
                    f.pointer("/ifNotUnderstood/warn").and_then(|w| w.as_bool()) != Some(true)
                })
                .map(|f| {
                    f.get("feature")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| f.to_string())
                })
                .collect(),
            None if features.is_null() => Vec::new(),
            None => vec![features.to_string()],
        };
        if !names.is_empty() {
            return unsupported(format!("required features {}", names.join(", ")));
        }
    }
    Ok(())
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn retention(c: &BlobStorageConfig) -> Option<std::time::Duration> {
    (c.retention_period_nanos > 0)
        .then(|| std::time::Duration::from_nanos(c.retention_period_nanos as u64))
}

/// Remembers password-derived format keys between runs, so that opening a repository does not
/// pay for the password derivation (scrypt: 64 MiB and a fraction of a second) every time.
pub trait FormatKeyCache {
    /// The key remembered for this repository and password, if any.
    fn load(&self, unique_id: &[u8], password: &str) -> Option<Vec<u8>>;
    /// Remembers a key that opened the repository.
    fn store(&self, unique_id: &[u8], password: &str, key: &[u8]);
}

/// A key derived from the password within one open: the unique id and key derivation it was
/// derived for, and the key (a retry from storage does not pay for the derivation again).
type DerivedKey = Option<(Vec<u8>, String, Vec<u8>)>;

/// No remembered format keys: the password is derived on every open.
pub(crate) struct NoKeyCache;

impl FormatKeyCache for NoKeyCache {
    fn load(&self, _: &[u8], _: &str) -> Option<Vec<u8>> {
        None
    }
    fn store(&self, _: &[u8], _: &str, _: &[u8]) {}
}

impl FormatManager {
    /// Opens the repository in `st` with `password`, trying the key remembered in `key_cache`
    /// first (a key that does not decrypt the format is ignored and the password derived
    /// again), and taking the format blobs from `blobs` while its
    /// copies are fresh (and refreshes them from storage otherwise). When anything fails with
    /// a cached copy in use (a corrupt copy, another repository's, a key that does not decrypt
    /// it, a copy older than a password change), the copies are dropped and the blobs read
    /// from storage once more; only that second answer counts, so a wrong password is still
    /// [`RepoError::InvalidPassword`] and a right one is never refused for a stale copy.
    pub fn open_with_caches(
        st: &dyn BlobStorage,
        password: &str,
        key_cache: &dyn FormatKeyCache,
        blobs: &FormatBlobCache,
    ) -> Result<FormatManager> {
        let mut derived: DerivedKey = None;
        // One try; on failure, whether a cached copy was used in it.
        let mut open = |use_cache| {
            let mut used_cache = false;
            Self::open_once(
                st,
                password,
                key_cache,
                blobs,
                use_cache,
                &mut used_cache,
                &mut derived,
            )
            .map_err(|e| (e, used_cache))
        };
        if blobs.trusted() {
            match open(true) {
                Ok(fm) => return Ok(fm),
                Err((e, false)) => return Err(e),
                Err((_, true)) => blobs.forget(),
            }
        }
        open(false).map_err(|(e, _)| e)
    }

    /// One try of [`FormatManager::open_with_caches`]: the cache is read when `use_cache`,
    /// and `used_cache` says whether any copy was.
    fn open_once(
        st: &dyn BlobStorage,
        password: &str,
        key_cache: &dyn FormatKeyCache,
        blobs: &FormatBlobCache,
        use_cache: bool,
        used_cache: &mut bool,
        derived: &mut DerivedKey,
    ) -> Result<FormatManager> {
        let fetched = blobs
            .read(st, REPOSITORY_BLOB_ID, use_cache)?
            .ok_or_else(|| RepoError::NotInitialized(st.display_name()))?;
        *used_cache |= fetched.from_cache;
        let bytes = fetched.bytes;
        let blob = RepositoryBlob::parse(&bytes)?;
        let mut blobcfg = || -> Result<Option<Vec<u8>>> {
            Ok(blobs.read(st, BLOBCFG_BLOB_ID, use_cache)?.map(|f| {
                *used_cache |= f.from_cache;
                f.bytes
            }))
        };
        let attach = |mut fm: FormatManager, from_cached_copy: bool| {
            fm.blob_cache = blobs.clone();
            fm.from_cached_copy = from_cached_copy;
            fm
        };
        if let Some(key) = key_cache.load(&blob.unique_id, password) {
            match Self::open_parts(blob.clone(), &key, &bytes, &mut blobcfg) {
                Err(RepoError::InvalidPassword) => {}
                other => return other.map(|fm| attach(fm, *used_cache)),
            }
        }
        let key = match derived {
            Some((id, algo, key)) if *id == blob.unique_id && *algo == blob.key_algo => key.clone(),
            _ => {
                let key = blob.derive_format_key(password)?;
                *derived = Some((blob.unique_id.clone(), blob.key_algo.clone(), key.clone()));
                key
            }
        };
        let unique_id = blob.unique_id.clone();
        let fm = Self::open_parts(blob, &key, &bytes, &mut blobcfg)?;
        key_cache.store(&unique_id, password, &key);
        Ok(attach(fm, *used_cache))
    }

    /// `kopia.repository` as stored now, when it is still the one this manager opened; `None`
    /// after a concurrent change (or an open from a stale cached copy), with the cached
    /// copies dropped so that the next open reads the storage.
    pub(crate) fn stored_if_unchanged(&self, st: &dyn BlobStorage) -> Result<Option<Vec<u8>>> {
        let bytes = read_optional(st, REPOSITORY_BLOB_ID)?
            .ok_or_else(|| RepoError::NotInitialized(st.display_name()))?;
        if RepositoryBlob::parse(&bytes)? == self.repository_blob {
            return Ok(Some(bytes));
        }
        self.blob_cache.forget();
        Ok(None)
    }

    /// Whether this manager was opened from a local copy of a format blob.
    pub(crate) fn opened_from_cached_copy(&self) -> bool {
        self.from_cached_copy
    }

    /// The cache of the format blobs this manager was opened with (disabled when none).
    pub fn blob_cache(&self) -> &FormatBlobCache {
        &self.blob_cache
    }

    /// Opens the repository in `st` with `password`, read from storage.
    pub fn open(st: &dyn BlobStorage, password: &str) -> Result<FormatManager> {
        Self::open_with_caches(st, password, &NoKeyCache, &FormatBlobCache::disabled())
    }

    /// Opens with an already-derived format key (used when parameters are rewritten).
    pub fn open_with_key(
        st: &dyn BlobStorage,
        blob: RepositoryBlob,
        key: &[u8],
    ) -> Result<FormatManager> {
        let bytes = blob.to_bytes();
        Self::open_parts(blob, key, &bytes, &mut || {
            read_optional(st, BLOBCFG_BLOB_ID)
        })
    }

    /// Opens the format blob `blob` (stored as `format_bytes`) with `key`; `blobcfg` reads
    /// `kopia.blobcfg` once the key is known to be right.
    fn open_parts(
        blob: RepositoryBlob,
        key: &[u8],
        format_bytes: &[u8],
        blobcfg: &mut dyn FnMut() -> Result<Option<Vec<u8>>>,
    ) -> Result<FormatManager> {
        let config = match blob.decrypt_config(key) {
            Ok(c) => c,
            Err(FormatError::Decrypt(_)) => return Err(RepoError::InvalidPassword),
            Err(e) => return Err(e.into()),
        };
        check_supported(&config)?;
        config.validate()?;
        let blob_config = match blobcfg()? {
            Some(b) => blob.decode_blobcfg(&b, key).map_err(|e| match e {
                FormatError::Decrypt(_) => {
                    RepoError::Invalid("unable to decrypt kopia.blobcfg".into())
                }
                e => e.into(),
            })?,
            None => BlobStorageConfig::default(),
        };
        let pack_prefix = if config.enable_password_change {
            Vec::new()
        } else {
            kopr_format::repository_blob::pack_format_copy(format_bytes)?
        };
        let hasher = Hasher::new(&config.hash, &config.hmac_secret)?;
        let ecc = kopr_format::ecc::from_format(&config.ecc, config.ecc_overhead_percent)?;
        let encryptor =
            Arc::new(Encryptor::new(&config.encryption, &config.master_key)?.with_ecc(ecc));
        Ok(FormatManager {
            repository_blob: blob,
            config,
            blob_config,
            hasher,
            encryptor,
            pack_prefix,
            format_key: key.to_vec(),
            blob_cache: FormatBlobCache::disabled(),
            from_cached_copy: false,
        })
    }

    /// A key for `purpose` derived from the master key (HKDF-SHA256, salted with the unique id),
    /// as Kopia derives its per-purpose keys. Repositories without password change (format
    /// version 1) derive from the password-derived format key instead, as Kopia does (an old
    /// Kopia bug kept for compatibility).
    pub fn derive_key(&self, purpose: &[u8], len: usize) -> Result<Vec<u8>> {
        let source = if self.config.enable_password_change {
            &self.config.master_key
        } else {
            &self.format_key
        };
        Ok(kopr_format::crypto::derive_key_from_master_key(
            source,
            &self.repository_blob.unique_id,
            purpose,
            len,
        )?)
    }

    /// Changes the password (Kopia's `repository change-password`): the same configuration
    /// and master key, its wrapping re-encrypted under a key derived from `new_password` with
    /// the same unique id and key derivation; `kopia.blobcfg` likewise. Returns the new format
    /// key. Refused for repositories without password change (format version 1), as Kopia.
    ///
    /// Every state a crash can leave opens with one of the two passwords and means the same:
    /// without object lock, `kopia.blobcfg` (when present) is deleted first (absent means no
    /// retention, as before), then `kopia.repository` is replaced (one atomic put), then
    /// `kopia.blobcfg` is written again under the new key. With object lock the retention
    /// settings must never be absent, so Kopia's order is kept (blobcfg, then the format blob);
    /// a crash between those two puts leaves a repository that neither password opens until
    /// [`FormatManager::finish_password_change`] writes the format blob.
    pub fn change_password(&self, st: &dyn BlobStorage, new_password: &str) -> Result<Vec<u8>> {
        if !self.config.enable_password_change {
            return Err(RepoError::Refused(
                "password changes are not supported for repositories created using Kopia v0.8 or older (format version 1)"
                    .into(),
            ));
        }
        // The blob as stored now must be the one this manager opened (no concurrent change).
        if self.stored_if_unchanged(st)?.is_none() {
            return Err(RepoError::Refused(
                "kopia.repository changed since the repository was opened; run the command again"
                    .into(),
            ));
        }
        let new_key = self.repository_blob.derive_format_key(new_password)?;
        let new_blob = self
            .repository_blob
            .rewrap_config(&self.format_key, &new_key)?;
        let blobcfg = read_optional(st, BLOBCFG_BLOB_ID)?
            .map(|b| {
                self.repository_blob
                    .rewrap_blobcfg(&b, &self.format_key, &new_key)
            })
            .transpose()?;
        let put = PutOptions {
            retention_mode: non_empty(&self.blob_config.retention_mode),
            retention_period: retention(&self.blob_config),
            ..PutOptions::default()
        };
        self.blob_cache.around_write(|| {
            match blobcfg {
                None => st.put_blob(REPOSITORY_BLOB_ID, &new_blob.to_bytes(), &put)?,
                Some(cfg) if self.blob_config.is_retention_enabled() => {
                    st.put_blob(BLOBCFG_BLOB_ID, &cfg, &put)?;
                    st.put_blob(REPOSITORY_BLOB_ID, &new_blob.to_bytes(), &put)?;
                }
                Some(cfg) => {
                    st.delete_blob(BLOBCFG_BLOB_ID)?;
                    st.put_blob(REPOSITORY_BLOB_ID, &new_blob.to_bytes(), &put)?;
                    st.put_blob(BLOBCFG_BLOB_ID, &cfg, &put)?;
                }
            }
            Ok(())
        })?;
        Ok(new_key)
    }

    /// Finishes a password change interrupted between its two puts in an object-locked
    /// repository: `kopia.blobcfg` already under `new_password`'s key, `kopia.repository` still
    /// under `old_password`'s. Writes the format blob under the new key and returns that key;
    /// refuses (changing nothing) when the repository is not in that state.
    pub fn finish_password_change(
        st: &dyn BlobStorage,
        old_password: &str,
        new_password: &str,
    ) -> Result<Vec<u8>> {
        let not_interrupted = |why: &str| {
            RepoError::Invalid(format!("no interrupted password change to finish: {why}"))
        };
        let bytes = read_optional(st, REPOSITORY_BLOB_ID)?
            .ok_or_else(|| RepoError::NotInitialized(st.display_name()))?;
        let blob = RepositoryBlob::parse(&bytes)?;
        let old_key = blob.derive_format_key(old_password)?;
        let config = match blob.decrypt_config(&old_key) {
            Ok(c) => c,
            Err(FormatError::Decrypt(_)) => return Err(RepoError::InvalidPassword),
            Err(e) => return Err(e.into()),
        };
        check_supported(&config)?;
        let cfg_bytes = read_optional(st, BLOBCFG_BLOB_ID)?
            .ok_or_else(|| not_interrupted("kopia.blobcfg is absent"))?;
        if blob.decode_blobcfg(&cfg_bytes, &old_key).is_ok() {
            return Err(not_interrupted(
                "kopia.blobcfg opens with the current password",
            ));
        }
        let new_key = blob.derive_format_key(new_password)?;
        let blob_config = blob
            .decode_blobcfg(&cfg_bytes, &new_key)
            .map_err(|_| not_interrupted("kopia.blobcfg is not under the new password either"))?;
        let new_blob = blob.rewrap_config(&old_key, &new_key)?;
        let put = PutOptions {
            retention_mode: non_empty(&blob_config.retention_mode),
            retention_period: retention(&blob_config),
            ..PutOptions::default()
        };
        st.put_blob(REPOSITORY_BLOB_ID, &new_blob.to_bytes(), &put)?;
        Ok(new_key)
    }

    /// Whether index blobs are managed by the epoch manager (`x` blobs); otherwise by the
    /// legacy index manager (`n` blobs, compaction logs `m`, cleanup blobs `l`).
    pub fn uses_epoch_manager(&self) -> bool {
        self.config.epoch_parameters.enabled
    }

    /// The index format version new index blobs are written in (1 or 2).
    pub fn index_version(&self) -> u32 {
        self.config.effective_index_version()
    }

    /// Whether contents may be compressed (index version 2 and later records the compressor;
    /// Kopia stores everything uncompressed at the content level in index v1 repositories).
    pub fn supports_content_compression(&self) -> bool {
        self.index_version() >= 2
    }

    /// The bytes every new pack starts with: a checksummed copy of `kopia.repository` in
    /// repositories without password change, nothing otherwise (as Kopia).
    pub fn pack_format_prefix(&self) -> &[u8] {
        &self.pack_prefix
    }

    /// The repository's unique id, hex-encoded.
    pub fn unique_id_hex(&self) -> String {
        hex::encode(&self.repository_blob.unique_id)
    }
}
