//! The per-user connection config: which storage, which cache, who we are — and the persisted
//! password, kept beside it in a file readable only by the user (as Kopia does without a keyring).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Storage location, as `{"type": ..., "config": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageConfig {
    /// `filesystem` or `s3`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Backend-specific settings.
    pub config: serde_json::Value,
}

/// Local caching settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CachingConfig {
    /// Cache directory.
    #[serde(
        rename = "cacheDirectory",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub cache_directory: String,
    /// Content cache size (Kopia's soft limit, `cache set --content-cache-size-mb`); unset:
    /// Kopia's default for object stores, none for filesystem repositories.
    #[serde(
        rename = "maxCacheSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_cache_size_bytes: Option<i64>,
    /// Content cache hard limit (kopr trims to the smaller of the two limits).
    #[serde(
        rename = "contentCacheSizeLimitBytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_cache_size_limit_bytes: Option<i64>,
    /// Metadata cache size (stored for Kopia; kopr keeps no metadata cache).
    #[serde(
        rename = "maxMetadataCacheSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_cache_size_bytes: Option<i64>,
    /// Metadata cache hard limit (stored for Kopia).
    #[serde(
        rename = "metadataCacheSizeLimitBytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_cache_size_limit_bytes: Option<i64>,
    /// Kopia's other caching settings (sweep ages, list cache duration), kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CachingConfig {
    /// The content cache limit in bytes: the smaller of the configured soft and hard limits,
    /// else `default`.
    pub fn content_cache_bytes(&self, default: u64) -> u64 {
        let set = [
            self.content_cache_size_bytes,
            self.content_cache_size_limit_bytes,
        ]
        .into_iter()
        .flatten()
        .filter(|v| *v >= 0)
        .min();
        match set {
            Some(v) => u64::try_from(v).unwrap_or(0),
            None => default,
        }
    }
}

/// The connection config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    /// Where the repository is.
    pub storage: StorageConfig,
    /// Local cache.
    #[serde(default)]
    pub caching: CachingConfig,
    /// Host name recorded in snapshots and sessions.
    pub hostname: String,
    /// User name recorded in snapshots and sessions.
    pub username: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// Open read-only.
    #[serde(rename = "readonly", default)]
    pub read_only: bool,
    /// Kopia's throttling limits (`repository throttle set`), applied to the storage.
    #[serde(
        rename = "throttlingLimits",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub throttling: Option<kopr_blob::throttle::ThrottleLimits>,
    /// Kopia's `formatBlobCacheDuration` (nanoseconds): how long the copies of the format
    /// blobs in the cache directory are used; 0 (unset) for 15 minutes, negative: disabled.
    #[serde(
        rename = "formatBlobCacheDuration",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub format_blob_cache_duration: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Where the config file lives: `--config-file`, `KOPR_CONFIG_PATH`/`KOPIA_CONFIG_PATH`, else
/// `repository.config` in the per-user config directory.
pub fn config_path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    for var in ["KOPR_CONFIG_PATH", "KOPIA_CONFIG_PATH"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Ok(PathBuf::from(v));
            }
        }
    }
    let dir = dirs::config_dir()
        .ok_or_else(|| anyhow!("cannot determine the user's config directory"))?;
    Ok(dir.join("kopr").join("repository.config"))
}

/// The default cache directory of a connection, derived as Kopia derives its own: under the
/// per-user cache's `kopr/`, the first 16 hex digits of SHA-256 over the repository's unique
/// id and the config file's absolute path. Two repositories never share one: a cache holds
/// the repository's format blob and indexes, and another repository's copies there would make
/// it fail to open.
pub fn default_cache_dir(config_path: &Path, unique_id: &[u8]) -> PathBuf {
    use sha2::Digest;
    let base = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kopr");
    let mut h = sha2::Sha256::new();
    h.update(unique_id);
    h.update(absolute(config_path).to_string_lossy().as_bytes());
    base.join(&hex::encode(h.finalize())[..16])
}

/// `path` made absolute against the current directory, as Kopia stores a cache directory
/// given on the command line (a relative one would name another directory in the next
/// command's working directory); as it is when that fails.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn password_path(config_path: &Path) -> PathBuf {
    let mut s = config_path.as_os_str().to_owned();
    s.push(".kopia-password");
    PathBuf::from(s)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

impl ConnectionConfig {
    /// The connection's cache directory, when caching is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        (!self.caching.cache_directory.is_empty())
            .then(|| PathBuf::from(&self.caching.cache_directory))
    }

    /// The local copies of the format blobs, as this connection keeps them.
    pub fn format_blob_cache(&self) -> kopr_repo::format_blob_cache::FormatBlobCache {
        kopr_repo::format_blob_cache::FormatBlobCache::new(
            self.cache_dir(),
            self.format_blob_cache_duration,
            std::sync::Arc::new(kopr_blob::clock::SystemClock),
        )
    }

    /// Loads the config; a missing file means "not connected".
    pub fn load(path: &Path) -> Result<ConnectionConfig> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("not connected to a repository, use `kopr repository connect` or `kopr repository create`")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&data)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Saves the config (mode 0600).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut data = serde_json::to_vec_pretty(self)?;
        data.push(b'\n');
        write_private(path, &data)
    }
}

/// Persists the password beside the config file.
pub fn save_password(config_path: &Path, password: &str) -> Result<()> {
    write_private(
        &password_path(config_path),
        B64.encode(password.as_bytes()).as_bytes(),
    )
}

fn key_cache_path(config_path: &Path) -> PathBuf {
    let mut s = config_path.as_os_str().to_owned();
    s.push(".kopr-key");
    PathBuf::from(s)
}

/// The format key derived from the persisted password, remembered beside it (mode 0600) so
/// that commands skip the password derivation. It is written only while the password itself is
/// persisted there (it exposes nothing the password file does not), is bound to the
/// repository's unique id and to the password, and is removed with the connection.
#[derive(Debug)]
pub struct FileKeyCache {
    path: PathBuf,
    password_file: PathBuf,
    /// Connecting: the password is about to be persisted, so the key may be stored first.
    connecting: bool,
}

#[derive(Serialize, Deserialize)]
struct CachedKey {
    #[serde(rename = "uniqueID")]
    unique_id: String,
    check: String,
    key: String,
}

impl FileKeyCache {
    /// The cache of the connection at `config_path`.
    pub fn new(config_path: &Path) -> FileKeyCache {
        FileKeyCache {
            path: key_cache_path(config_path),
            password_file: password_path(config_path),
            connecting: false,
        }
    }

    /// The cache of a connection being made (`repository create` or `connect`), whose
    /// password is persisted right after the repository opens.
    pub fn connecting(config_path: &Path) -> FileKeyCache {
        FileKeyCache {
            connecting: true,
            ..FileKeyCache::new(config_path)
        }
    }

    fn check(unique_id: &[u8], password: &str, key: &[u8]) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"kopr format key cache v1\0");
        h.update(unique_id);
        h.update(key);
        h.update(password.as_bytes());
        hex::encode(h.finalize())
    }
}

impl kopr_repo::format_manager::FormatKeyCache for FileKeyCache {
    fn load(&self, unique_id: &[u8], password: &str) -> Option<Vec<u8>> {
        let c: CachedKey = serde_json::from_slice(&fs::read(&self.path).ok()?).ok()?;
        if c.unique_id != hex::encode(unique_id) {
            return None;
        }
        let key = hex::decode(&c.key).ok()?;
        (c.check == Self::check(unique_id, password, &key)).then_some(key)
    }

    fn store(&self, unique_id: &[u8], password: &str, key: &[u8]) {
        if !self.connecting && !self.password_file.exists() {
            return; // only beside a persisted password
        }
        let c = CachedKey {
            unique_id: hex::encode(unique_id),
            check: Self::check(unique_id, password, key),
            key: hex::encode(key),
        };
        if let Ok(data) = serde_json::to_vec(&c) {
            let _ = write_private(&self.path, &data); // a cache: failing to write it is fine
        }
    }
}

/// The persisted password, if any.
pub fn load_password(config_path: &Path) -> Option<String> {
    let data = fs::read(password_path(config_path)).ok()?;
    let raw = B64.decode(String::from_utf8(data).ok()?.trim()).ok()?;
    String::from_utf8(raw).ok()
}

/// Removes the persisted password and the key derived from it (`--no-persist-credentials`).
pub fn forget_password(config_path: &Path) {
    let _ = fs::remove_file(password_path(config_path));
    let _ = fs::remove_file(key_cache_path(config_path));
}

/// The subdirectories a kopr (or Kopia) cache directory may hold.
const CACHE_PARTS: &[&str] = &[
    "contents",
    "indexes",
    "metadata",
    "own-writes",
    "blob-list",
    "server-contents",
];

/// The name of an entry of `dir` that a cache directory does not hold (a cache directory
/// pointed at a directory with other things in it, say by `--cache-directory=$HOME`), if any.
pub fn not_a_cache(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| {
            !CACHE_PARTS.contains(&name.as_str())
                && !kopr_repo::format_blob_cache::is_cache_file_name(name)
        })
}

/// Removes the config, the persisted password and the cache. A cache directory that holds
/// anything a cache does not is left in place, with a warning (Kopia removes it whole).
pub fn remove(config_path: &Path) -> Result<bool> {
    let existed = config_path.exists();
    if let Ok(cfg) = ConnectionConfig::load(config_path) {
        if let Some(dir) = cfg.cache_dir() {
            match not_a_cache(&dir) {
                None => {
                    let _ = fs::remove_dir_all(&dir);
                }
                Some(name) => eprintln!(
                    "warning: left the cache directory {} in place: it holds {name:?}, which is not a cache",
                    dir.display()
                ),
            }
        }
    }
    for p in [
        config_path.to_path_buf(),
        password_path(config_path),
        key_cache_path(config_path),
    ] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }
    Ok(existed)
}

/// The current user name (`$USER`, `$LOGNAME`, else the owner of this process).
pub fn current_username() -> String {
    // As Kopia (Go's user.Current): the passwd entry of the process's uid, then the environment.
    #[cfg(unix)]
    if let Some(name) = passwd_name(real_uid()) {
        return name;
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    "user".into()
}

/// The real uid of this process.
#[cfg(unix)]
fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The user name of `uid` in the passwd database, if it has an entry.
#[cfg(unix)]
pub fn passwd_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `pwd` and `buf` outlive the call, `result` is set by it; the name is copied
        // out of `buf` before it is dropped.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        let name = name.to_string_lossy().into_owned();
        return (!name.is_empty()).then_some(name);
    }
}

/// The current host name.
pub fn current_hostname() -> String {
    gethostname::gethostname()
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_password_round_trip_privately() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/repository.config");
        let cfg = ConnectionConfig {
            storage: StorageConfig {
                kind: "filesystem".into(),
                config: serde_json::json!({"path": "/tmp/x"}),
            },
            caching: CachingConfig::default(),
            hostname: "h".into(),
            username: "u".into(),
            description: "d".into(),
            read_only: false,
            throttling: None,
            format_blob_cache_duration: 0,
        };
        cfg.save(&p).unwrap();
        assert_eq!(ConnectionConfig::load(&p).unwrap(), cfg);
        save_password(&p, "pä ss").unwrap();
        assert_eq!(load_password(&p).as_deref(), Some("pä ss"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(password_path(&p))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(remove(&p).unwrap());
        assert!(ConnectionConfig::load(&p).is_err());
        assert_eq!(load_password(&p), None);
    }
}
