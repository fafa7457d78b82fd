//! Building blob storage from a connection's storage config.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use kopr_blob::azure::{AzureOptions, AzureStorage};
use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::gcs::{GcsOptions, GcsStorage};
use kopr_blob::rclone::{RcloneOptions, RcloneStorage};
use kopr_blob::retrying::RetryingStorage;
use kopr_blob::s3::{S3Options, S3Storage};
use kopr_blob::sftp::{SftpOptions, SftpStorage};
use kopr_blob::webdav::{WebDavOptions, WebDavStorage};
use kopr_blob::BlobStorage;
use serde_json::json;

use crate::app::{AzureArgs, GcsArgs, RcloneArgs, S3Args, SftpArgs, WebDavArgs};
use crate::config::StorageConfig;

/// Attempts (in all) of a failing S3 request before the error is reported.
const S3_ATTEMPTS: u32 = 8;
/// First wait between attempts; it doubles (about 30 s in all).
const S3_FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The storage config of a filesystem repository at `path`.
pub fn filesystem_config(path: &Path) -> Result<StorageConfig> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(StorageConfig {
        kind: "filesystem".into(),
        config: json!({ "path": abs.to_string_lossy() }),
    })
}

/// The S3 options of the `s3` flags (reads `--root-ca-pem-path`).
pub fn s3_options(a: &S3Args) -> Result<S3Options> {
    let root_ca = match (&a.root_ca_pem_path, &a.root_ca_pem_base64) {
        (Some(_), Some(_)) => {
            bail!("use either --root-ca-pem-path or --root-ca-pem-base64, not both")
        }
        (Some(p), None) => Some(
            std::fs::read(p)
                .with_context(|| format!("cannot read --root-ca-pem-path {}", p.display()))?,
        ),
        (None, Some(b)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .context("invalid --root-ca-pem-base64")?,
        ),
        (None, None) => None,
    };
    Ok(S3Options {
        bucket: a.bucket.clone(),
        prefix: a.prefix.clone(),
        endpoint: a.endpoint.clone(),
        do_not_use_tls: a.disable_tls,
        do_not_verify_tls: a.disable_tls_verification,
        root_ca,
        access_key_id: a.access_key.clone().unwrap_or_default(),
        secret_access_key: a.secret_access_key.clone().unwrap_or_default(),
        session_token: a.session_token.clone().unwrap_or_default(),
        region: a.region.clone().unwrap_or_default(),
    }
    .normalized())
}

/// The storage config of an S3 repository.
pub fn s3_config(opts: &S3Options) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "s3".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// The options of an `s3` storage config.
pub fn s3_options_of(cfg: &StorageConfig) -> Result<S3Options> {
    serde_json::from_value(cfg.config.clone()).context("invalid s3 storage config")
}

/// Opens S3 storage without retries (probes the bucket first).
pub fn open_s3(opts: S3Options) -> Result<S3Storage> {
    let url = format!("s3://{}/{}", opts.bucket, opts.prefix);
    S3Storage::connect(opts).with_context(|| format!("cannot open S3 storage {url}"))
}

/// The Azure options of the `azure` flags.
pub fn azure_options(a: &AzureArgs) -> AzureOptions {
    AzureOptions {
        container: a.container.clone(),
        prefix: a.prefix.clone(),
        storage_account: a.storage_account.clone(),
        storage_key: a.storage_key.clone().unwrap_or_default(),
        sas_token: a.sas_token.clone().unwrap_or_default(),
        storage_domain: a.storage_domain.clone().unwrap_or_default(),
        do_not_use_tls: false,
    }
}

/// The storage config of an Azure repository.
pub fn azure_config(opts: &AzureOptions) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "azure".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// The GCS options of the `gcs` flags: `--embed-credentials` stores the file's JSON instead
/// of its name, as Kopia does.
pub fn gcs_options(a: &GcsArgs) -> Result<GcsOptions> {
    let mut o = GcsOptions {
        bucket: a.bucket.clone(),
        prefix: a.prefix.clone(),
        credentials_file: String::new(),
        credentials: None,
        read_only: a.read_only,
    };
    match (&a.credentials_file, a.embed_credentials) {
        (Some(f), true) => {
            let bytes = std::fs::read(f)
                .with_context(|| format!("cannot read --credentials-file {}", f.display()))?;
            o.credentials = Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("--credentials-file {} is not JSON", f.display()))?,
            );
        }
        (Some(f), false) => {
            let abs = if f.is_absolute() {
                f.clone()
            } else {
                std::env::current_dir()?.join(f)
            };
            if !abs.is_file() {
                bail!("--credentials-file {} does not exist", abs.display());
            }
            o.credentials_file = abs.to_string_lossy().into_owned();
        }
        (None, true) => bail!("--embed-credentials needs --credentials-file"),
        (None, false) => {}
    }
    Ok(o)
}

/// The storage config of a GCS repository.
pub fn gcs_config(opts: &GcsOptions) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "gcs".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// The rclone options of the `rclone` flags; `connect` leaves the shards to `.shards`.
pub fn rclone_options(a: &RcloneArgs, connect: bool) -> Result<RcloneOptions> {
    if kopr_blob::rclone::parse_duration(&a.startup_timeout).is_none() {
        bail!(
            "invalid --rclone-startup-timeout {:?}: expected e.g. 15s",
            a.startup_timeout
        );
    }
    Ok(RcloneOptions {
        remote_path: a.remote_path.clone(),
        rclone_exe: a.rclone_exe.clone().unwrap_or_default(),
        rclone_args: a.rclone_args.clone(),
        rclone_env: a.rclone_env.clone(),
        startup_timeout: a.startup_timeout.clone(),
        embedded_config: match &a.embed_rclone_config {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --embed-rclone-config {}", f.display()))?,
            None => String::new(),
        },
        atomic_writes: a.atomic_writes,
        dir_shards: (a.flat && !connect).then(Vec::new),
    })
}

/// The storage config of an rclone repository.
pub fn rclone_config(opts: &RcloneOptions) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "rclone".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// The WebDAV options of the `webdav` flags; `connect` leaves the shards to `.shards`.
pub fn webdav_options(a: &WebDavArgs, connect: bool) -> Result<WebDavOptions> {
    let username = a.username.clone().unwrap_or_default();
    let password = a.password.clone().unwrap_or_default();
    if !username.is_empty() && password.is_empty() {
        bail!("no WebDAV password for user {username:?}: use --webdav-password (or KOPIA_WEBDAV_PASSWORD)");
    }
    Ok(WebDavOptions {
        url: a.url.clone(),
        username,
        password,
        trusted_server_certificate_fingerprint: a
            .server_cert_fingerprint
            .clone()
            .unwrap_or_default(),
        atomic_writes: a.atomic_writes,
        // As Kopia: `--flat` stores every blob in the root directory.
        dir_shards: (a.flat && !connect).then(Vec::new),
    })
}

/// The storage config of a WebDAV repository.
pub fn webdav_config(opts: &WebDavOptions) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "webdav".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// An absolute form of `p` (relative to the current directory).
fn absolute(p: &Path) -> Result<String> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    Ok(abs.to_string_lossy().into_owned())
}

/// The SFTP options of the `sftp` flags, as Kopia builds them: file paths made absolute,
/// `--embed-credentials` stores the key and known hosts themselves; `connect` leaves the
/// shards to `.shards`.
pub fn sftp_options(a: &SftpArgs, connect: bool) -> Result<SftpOptions> {
    let mut o = SftpOptions {
        path: a.path.clone(),
        host: a.host.clone(),
        port: a.port,
        username: a.username.clone(),
        password: a.password.clone().unwrap_or_default(),
        keyfile: String::new(),
        key_data: a.key_data.clone().unwrap_or_default(),
        known_hosts_file: String::new(),
        known_hosts_data: a.known_hosts_data.clone().unwrap_or_default(),
        external_ssh: a.external,
        ssh_command: a.ssh_command.clone(),
        ssh_arguments: a.ssh_args.clone().unwrap_or_default(),
        dir_shards: (a.flat && !connect).then(Vec::new),
        list_parallelism: 0,
    };
    if o.external_ssh {
        return Ok(o);
    }
    if let Some(f) = &a.keyfile {
        if a.embed_credentials && o.key_data.is_empty() {
            o.key_data = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --keyfile {}", f.display()))?;
        } else {
            o.keyfile = absolute(f)?;
        }
    }
    if let Some(f) = &a.known_hosts {
        if a.embed_credentials && o.known_hosts_data.is_empty() {
            o.known_hosts_data = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --known-hosts {}", f.display()))?;
        } else {
            o.known_hosts_file = absolute(f)?;
        }
    }
    if o.password.is_empty() && o.key_data.is_empty() && o.keyfile.is_empty() {
        bail!("no SFTP credentials: use --sftp-password, --keyfile or --key-data");
    }
    if o.known_hosts_data.is_empty() && o.known_hosts_file.is_empty() {
        bail!("no known hosts for the SFTP server: use --known-hosts FILE or --known-hosts-data TEXT (e.g. from `ssh-keyscan -p PORT HOST`, checked against the server's fingerprint)");
    }
    Ok(o)
}

/// The storage config of an SFTP repository.
pub fn sftp_config(opts: &SftpOptions) -> Result<StorageConfig> {
    Ok(StorageConfig {
        kind: "sftp".into(),
        config: serde_json::to_value(opts)?,
    })
}

/// Opens the storage a config describes; `create` makes a missing filesystem directory.
/// Network storage retries transient failures.
pub fn open_or_create(cfg: &StorageConfig, create: bool) -> Result<Arc<dyn BlobStorage>> {
    let st: Arc<dyn BlobStorage> = match cfg.kind.as_str() {
        "filesystem" => return open_filesystem(cfg, create),
        "s3" => Arc::new(open_s3(s3_options_of(cfg)?)?),
        "azure" => {
            let opts: AzureOptions = serde_json::from_value(cfg.config.clone())
                .context("invalid azure storage config")?;
            let url = format!("azure://{}/{}", opts.container, opts.prefix);
            Arc::new(
                AzureStorage::connect(opts)
                    .with_context(|| format!("cannot open Azure storage {url}"))?,
            )
        }
        "gcs" => {
            let opts: GcsOptions =
                serde_json::from_value(cfg.config.clone()).context("invalid gcs storage config")?;
            let url = format!("gs://{}/{}", opts.bucket, opts.prefix);
            Arc::new(
                GcsStorage::connect(opts)
                    .with_context(|| format!("cannot open GCS storage {url}"))?,
            )
        }
        "rclone" => {
            let opts: RcloneOptions = serde_json::from_value(cfg.config.clone())
                .context("invalid rclone storage config")?;
            let remote = opts.remote_path.clone();
            Arc::new(
                RcloneStorage::start(opts, create)
                    .with_context(|| format!("cannot open rclone storage {remote}"))?,
            )
        }
        "webdav" => {
            let opts: WebDavOptions = serde_json::from_value(cfg.config.clone())
                .context("invalid webdav storage config")?;
            let url = opts.url.clone();
            Arc::new(
                WebDavStorage::open(opts, create)
                    .with_context(|| format!("cannot open WebDAV storage {url}"))?,
            )
        }
        "sftp" => open_sftp(cfg, create)?,
        other => bail!("unsupported storage type: {other}"),
    };
    Ok(Arc::new(RetryingStorage::new(
        st,
        S3_ATTEMPTS,
        S3_FIRST_RETRY_DELAY,
    )))
}

/// A filesystem storage (no retries: its failures are not transient).
fn open_filesystem(cfg: &StorageConfig, create: bool) -> Result<Arc<dyn BlobStorage>> {
    let Some(path) = cfg.config.get("path").and_then(|p| p.as_str()) else {
        bail!("invalid filesystem storage config: no path");
    };
    let st = if create {
        FilesystemStorage::create(path)
    } else {
        FilesystemStorage::open(path)
    }
    .with_context(|| format!("cannot open filesystem storage at {path}"))?;
    Ok(Arc::new(st))
}

/// An SFTP storage, named `sftp://user@host:port/path` in errors.
fn open_sftp(cfg: &StorageConfig, create: bool) -> Result<Arc<dyn BlobStorage>> {
    let opts: SftpOptions =
        serde_json::from_value(cfg.config.clone()).context("invalid sftp storage config")?;
    let url = format!(
        "sftp://{}@{}:{}/{}",
        opts.username,
        opts.host,
        opts.port,
        opts.path.trim_start_matches('/')
    );
    let st = SftpStorage::open(opts, create)
        .with_context(|| format!("cannot open SFTP storage {url}"))?;
    Ok(Arc::new(st))
}

/// Opens existing storage (behind the crash-test hooks when their variables are set).
pub fn open(cfg: &StorageConfig) -> Result<Arc<dyn BlobStorage>> {
    open_or_create(cfg, false).map(crate::test_hooks::wrap)
}

/// The storage config for display: secrets replaced by asterisks.
pub fn redacted(cfg: &StorageConfig) -> serde_json::Value {
    let mut v = cfg.config.clone();
    if let Some(o) = v.as_object_mut() {
        for k in [
            "secretAccessKey",
            "sessionToken",
            "storageKey",
            "sasToken",
            "ClientSecret",
            "clientCertificate",
            "password",
            "keyData",
            "embeddedConfig",
            "credentials",
        ] {
            if let Some(s) = o.get_mut(k) {
                // As Kopia's scrubber: one `*` per character.
                if let Some(len) = s.as_str().map(|s| s.chars().count()) {
                    *s = json!("*".repeat(len));
                } else if !s.is_null() {
                    // embedded GCS credentials (a JSON object holding a private key)
                    *s = json!("***");
                }
            }
        }
    }
    v
}
