//! A connected repository: storage, format and content manager, opened with a password.

use std::path::PathBuf;
use std::sync::Arc;

use kopr_blob::clock::{Clock, SystemClock};
use kopr_blob::locking::LockingStorage;
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::LOCKING_PREFIXES;

use crate::content::{ContentManager, WriterIdentity};
use crate::content_cache::ContentCache;
use crate::error::Result;
use crate::format_blob_cache::FormatBlobCache;
use crate::format_manager::{self, CreateOptions, FormatManager};
use crate::index_cache::BlobCache;
use crate::manifest::ManifestManager;

/// How to open a repository.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Local cache directory (index blobs); `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of contents kept under `cache_dir` by reads that go through the content
    /// cache (restores); 0 keeps none. Worth it for object stores, not a local filesystem.
    pub content_cache_bytes: u64,
    /// Who writes.
    pub identity: WriterIdentity,
    /// The clock (tests inject a manual one).
    pub clock: Arc<dyn Clock>,
    /// How long the copies of `kopia.repository` and `kopia.blobcfg` cached in `cache_dir`
    /// are used, in nanoseconds (the connection's `formatBlobCacheDuration`): 0 for Kopia's
    /// 15 minutes, capped at 15 minutes; negative reads storage first (see
    /// [`crate::format_blob_cache`]).
    pub format_blob_cache_nanos: i64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_dir: None,
            content_cache_bytes: 0,
            identity: WriterIdentity {
                user: "kopr".into(),
                host: "localhost".into(),
            },
            clock: Arc::new(SystemClock),
            format_blob_cache_nanos: 0,
        }
    }
}

/// An open repository.
#[derive(Debug)]
pub struct Repository {
    storage: Arc<dyn BlobStorage>,
    format: Arc<FormatManager>,
    contents: Arc<ContentManager>,
    manifests: ManifestManager,
    content_cache: Arc<ContentCache>,
    options: OpenOptions,
}

impl Repository {
    /// Creates a new repository in empty storage.
    pub fn create(storage: &dyn BlobStorage, opts: &CreateOptions, password: &str) -> Result<()> {
        format_manager::initialize(storage, opts, password)
    }

    /// Opens the repository in `storage`.
    pub fn open(
        storage: Arc<dyn BlobStorage>,
        password: &str,
        options: OpenOptions,
    ) -> Result<Self> {
        Self::open_cached(storage, password, &format_manager::NoKeyCache, options)
    }

    /// Opens the repository in `storage`, with a cache of the password-derived key.
    pub fn open_cached(
        storage: Arc<dyn BlobStorage>,
        password: &str,
        key_cache: &dyn crate::format_manager::FormatKeyCache,
        options: OpenOptions,
    ) -> Result<Self> {
        let blobs = FormatBlobCache::new(
            options.cache_dir.clone(),
            options.format_blob_cache_nanos,
            options.clock.clone(),
        );
        let format = Arc::new(FormatManager::open_with_caches(
            &*storage, password, key_cache, &blobs,
        )?);
        if !format.opened_from_cached_copy() {
            return Self::from_format(storage, format, options);
        }
        match Self::from_format(storage.clone(), format, options.clone()) {
            Ok(repo) => Ok(repo),
            // A copy of another repository's format (the same password, and a storage of the
            // same name) opens, and then this repository's indexes do not decrypt with its
            // keys: read the format from storage, as for any copy that does not open.
            Err(_) => {
                blobs.forget();
                let format = Arc::new(FormatManager::open_with_caches(
                    &*storage, password, key_cache, &blobs,
                )?);
                Self::from_format(storage, format, options)
            }
        }
    }

    /// Opens with an already opened format (no password derivation). When `kopia.blobcfg`
    /// configures retention, every blob written under a locking prefix (packs, indexes,
    /// format blobs) is put with that object-lock mode and period, as Kopia does.
    pub fn from_format(
        storage: Arc<dyn BlobStorage>,
        format: Arc<FormatManager>,
        options: OpenOptions,
    ) -> Result<Self> {
        let storage: Arc<dyn BlobStorage> = match format.blob_config.retention() {
            Some((mode, period)) => {
                Arc::new(LockingStorage::new(storage, LOCKING_PREFIXES, mode, period))
            }
            None => storage,
        };
        let cache = BlobCache::new(options.cache_dir.as_ref().map(|d| d.join("indexes")));
        let contents = Arc::new(ContentManager::new(
            storage.clone(),
            format.clone(),
            options.clock.clone(),
            cache,
            options.identity.clone(),
        )?);
        let content_cache = Arc::new(ContentCache::new(
            options.cache_dir.as_ref().map(|d| d.join("contents")),
            options.content_cache_bytes,
        ));
        Ok(Repository {
            storage,
            format,
            manifests: ManifestManager::with_cache(contents.clone(), content_cache.clone()),
            contents,
            content_cache,
            options,
        })
    }

    /// The blob storage.
    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// The format (algorithms, keys, parameters).
    pub fn format(&self) -> &Arc<FormatManager> {
        &self.format
    }

    /// The content manager.
    pub fn contents(&self) -> &ContentManager {
        &self.contents
    }

    /// The local cache of contents read by restores and of manifests.
    pub fn content_cache(&self) -> &ContentCache {
        &self.content_cache
    }

    /// The manifest manager (snapshots, policies).
    pub fn manifests(&self) -> &ManifestManager {
        &self.manifests
    }

    /// The options the repository was opened with.
    pub fn options(&self) -> &OpenOptions {
        &self.options
    }

    /// Writes everything pending.
    pub fn flush(&self) -> Result<()> {
        self.manifests.flush()?;
        self.contents.flush()
    }
}
