//! `repository create | connect | disconnect | status`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use kopr_blob::s3::S3Options;
use kopr_blob::{BlobError, BlobStorage};
use kopr_format::repository_blob::BlobStorageConfig;
use kopr_format::repository_blob::REPOSITORY_BLOB_ID;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::{RepoError, Repository};

use super::{open_with, Context};
use crate::app::{ConnectArgs, ConnectStorage, CreateStorage, RepositoryCommand};
use crate::config::{self, CachingConfig, ConnectionConfig, StorageConfig};
use crate::storage;

mod status;

pub fn run(ctx: &Context, cmd: RepositoryCommand) -> Result<()> {
    match cmd {
        RepositoryCommand::Create(c) => create(ctx, c),
        RepositoryCommand::Connect(c) => connect(ctx, c),
        RepositoryCommand::Disconnect => {
            if config::remove(&ctx.config_path)? {
                println!("Disconnected from repository.");
            } else {
                println!("Not connected to a repository.");
            }
            Ok(())
        }
        RepositoryCommand::Status(args) => status::status(ctx, args),
        RepositoryCommand::ChangePassword { new_password } => change_password(ctx, new_password),
        RepositoryCommand::SyncTo(args) => super::sync_to::run(ctx, args),
        RepositoryCommand::SetParameters(a) => super::repo_admin::set_parameters(ctx, a),
        RepositoryCommand::SetClient(a) => super::repo_admin::set_client(ctx, a),
        RepositoryCommand::Throttle(c) => super::repo_admin::throttle(ctx, c),
        RepositoryCommand::ValidateProvider(a) => super::repo_admin::validate_provider(ctx, a),
        RepositoryCommand::Upgrade(c) => super::repo_admin::upgrade(ctx, c),
        RepositoryCommand::Scan(_) => unreachable!("dispatched to scan"),
    }
}

/// `repository create <storage>`: the storage's config from its flags, then the repository.
fn create(ctx: &Context, cmd: CreateStorage) -> Result<()> {
    let (sc, create, connect) = match cmd {
        CreateStorage::Filesystem {
            fs,
            create,
            connect,
        } => (storage::filesystem_config(&fs.path)?, create, connect),
        CreateStorage::S3 {
            s3,
            create,
            connect,
        } => (
            storage::s3_config(&storage::s3_options(&s3)?)?,
            create,
            connect,
        ),
        CreateStorage::Azure {
            azure,
            create,
            connect,
        } => (
            storage::azure_config(&storage::azure_options(&azure))?,
            create,
            connect,
        ),
        CreateStorage::Gcs {
            gcs,
            create,
            connect,
        } => (
            storage::gcs_config(&storage::gcs_options(&gcs)?)?,
            create,
            connect,
        ),
        CreateStorage::Rclone {
            rclone,
            create,
            connect,
        } => (
            storage::rclone_config(&storage::rclone_options(&rclone, false)?)?,
            create,
            connect,
        ),
        CreateStorage::Webdav {
            webdav,
            create,
            connect,
        } => (
            storage::webdav_config(&storage::webdav_options(&webdav, false)?)?,
            create,
            connect,
        ),
        CreateStorage::Sftp {
            sftp,
            create,
            connect,
        } => (
            storage::sftp_config(&storage::sftp_options(&sftp, false)?)?,
            create,
            connect,
        ),
    };
    let opts = create_options(&create)?;
    create_repository(ctx, sc, &opts, create.create_only, connect)
}

/// `repository connect <storage>`: the storage's config from its flags, then the connection.
fn connect(ctx: &Context, cmd: ConnectStorage) -> Result<()> {
    let (sc, connect) = match cmd {
        ConnectStorage::Filesystem { fs, connect } => {
            (storage::filesystem_config(&fs.path)?, connect)
        }
        ConnectStorage::S3 { s3, connect } => {
            (storage::s3_config(&storage::s3_options(&s3)?)?, connect)
        }
        ConnectStorage::Azure { azure, connect } => (
            storage::azure_config(&storage::azure_options(&azure))?,
            connect,
        ),
        ConnectStorage::Gcs { gcs, connect } => {
            (storage::gcs_config(&storage::gcs_options(&gcs)?)?, connect)
        }
        ConnectStorage::Rclone { rclone, connect } => (
            storage::rclone_config(&storage::rclone_options(&rclone, true)?)?,
            connect,
        ),
        ConnectStorage::Webdav { webdav, connect } => (
            storage::webdav_config(&storage::webdav_options(&webdav, true)?)?,
            connect,
        ),
        ConnectStorage::Sftp { sftp, connect } => (
            storage::sftp_config(&storage::sftp_options(&sftp, true)?)?,
            connect,
        ),
    };
    connect_repository(ctx, sc, connect, None)
}

/// Parses a Go-style duration (`24h`, `90m`, `1h30m`, `500ms`, `0s`) or days (`30d`) into
/// nanoseconds.
pub fn parse_duration_nanos(s: &str) -> Result<i64> {
    let text = s.trim();
    if text == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        bail!("invalid duration {s:?}: expected e.g. 24h or 30d");
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            bail!("invalid duration {s:?}: expected e.g. 24h or 30d");
        }
        let n: i64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
        let unit: i64 = match &rest[..unit_len] {
            "d" => 86_400_000_000_000,
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            "" => bail!("invalid duration {s:?}: expected e.g. 24h or 30d"),
            u => bail!("invalid duration {s:?}: unknown unit {u:?}"),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .with_context(|| format!("duration {s:?} is too long"))?;
    }
    Ok(total)
}

/// The `formatBlobCacheDuration` that `--repository-format-cache-duration` and
/// `--disable-repository-format-cache` ask for (Kopia's: disabling is -1), `None` without
/// either flag.
pub fn format_cache_setting(duration: Option<&str>, disable: bool) -> Result<Option<i64>> {
    if disable {
        return Ok(Some(-1));
    }
    match duration {
        None => Ok(None),
        Some(d) => {
            let n =
                parse_duration_nanos(d).context("invalid --repository-format-cache-duration")?;
            Ok((n != 0).then_some(n))
        }
    }
}

/// The format choices of `repository create`'s flags.
fn create_options(create: &crate::app::CreateArgs) -> Result<CreateOptions> {
    Ok(CreateOptions {
        hash: create.block_hash.clone(),
        encryption: create.encryption.clone(),
        splitter: create.object_splitter.clone(),
        key_derivation: create.key_derivation.clone(),
        blob_config: retention(
            create.retention_mode.clone(),
            create.retention_period.clone(),
        )?,
        max_pack_size: 0,
        ecc: create.ecc.clone(),
        ecc_overhead_percent: create.ecc_overhead_percent,
    })
}

fn retention(mode: Option<String>, period: Option<String>) -> Result<BlobStorageConfig> {
    let cfg = BlobStorageConfig {
        retention_mode: mode.map(|m| m.to_uppercase()).unwrap_or_default(),
        retention_period_nanos: period
            .as_deref()
            .map(parse_duration_nanos)
            .transpose()?
            .unwrap_or(0),
    };
    if !cfg.retention_mode.is_empty()
        && !matches!(cfg.retention_mode.as_str(), "GOVERNANCE" | "COMPLIANCE")
    {
        bail!(
            "invalid --retention-mode {:?}: use GOVERNANCE or COMPLIANCE",
            cfg.retention_mode
        );
    }
    cfg.validate()?;
    Ok(cfg)
}

fn new_password(ctx: &Context) -> Result<String> {
    if let Some(p) = &ctx.password {
        return Ok(p.clone());
    }
    let p1 = ctx.password("Enter password to create new repository: ", false)?;
    let p2 = ctx.password("Re-enter password for verification: ", false)?;
    if p1 != p2 {
        bail!("passwords don't match");
    }
    Ok(p1)
}

/// `repository change-password`: re-wraps the format under the new password, then persists
/// it and the key derived from it beside the config, as `repository connect` does.
fn change_password(ctx: &Context, flag: Option<String>) -> Result<()> {
    let new = match flag
        .or_else(|| std::env::var("KOPR_NEW_PASSWORD").ok())
        .or_else(|| std::env::var("KOPIA_NEW_PASSWORD").ok())
    {
        Some(p) => p,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("new password required: use --new-password or set KOPR_NEW_PASSWORD (or KOPIA_NEW_PASSWORD)");
            }
            let p1 = rpassword::prompt_password("Enter new password: ")
                .context("cannot read password")?;
            let p2 = rpassword::prompt_password("Re-enter new password for verification: ")
                .context("cannot read password")?;
            if p1 != p2 {
                bail!("passwords don't match");
            }
            p1
        }
    };
    if new.is_empty() {
        bail!("the new password must not be empty");
    }
    let (unique_id, key) = match ctx.open_repository() {
        Ok((cfg, repo)) => {
            if cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            let fm = repo.format();
            let key = fm
                .change_password(repo.storage().as_ref(), &new)
                .context("unable to change password")?;
            eprintln!("NOTE: Repository password has been changed.");
            (fm.repository_blob.unique_id.clone(), key)
        }
        // An object-locked repository whose change was interrupted between its two writes:
        // running the same command again finishes it.
        Err(e)
            if e.chain()
                .any(|c| c.to_string() == "unable to decrypt kopia.blobcfg") =>
        {
            let cfg = ConnectionConfig::load(&ctx.config_path)?;
            if cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            let st = storage::open(&cfg.storage)?;
            let old = ctx.password("Enter current password: ", true)?;
            let key = kopr_repo::format_manager::FormatManager::finish_password_change(
                st.as_ref(),
                &old,
                &new,
            )
            .map_err(|e2| anyhow::anyhow!(e2).context(e.to_string()))?;
            cfg.format_blob_cache().forget();
            eprintln!("NOTE: Finished the interrupted password change.");
            let blob = kopr_format::repository_blob::RepositoryBlob::parse(&st.get_blob(
                REPOSITORY_BLOB_ID,
                0,
                None,
            )?)?;
            (blob.unique_id, key)
        }
        Err(e) => return Err(e),
    };
    if !ctx.persist_credentials {
        config::forget_password(&ctx.config_path);
        return Ok(());
    }
    config::save_password(&ctx.config_path, &new).context("unable to persist password")?;
    use kopr_repo::format_manager::FormatKeyCache as _;
    config::FileKeyCache::new(&ctx.config_path).store(&unique_id, &new, &key);
    Ok(())
}

fn create_repository(
    ctx: &Context,
    sc: StorageConfig,
    opts: &CreateOptions,
    create_only: bool,
    connect: ConnectArgs,
) -> Result<()> {
    let password = new_password(ctx)?;
    if password.is_empty() {
        bail!("password cannot be empty");
    }
    let st = storage::open_or_create(&sc, true)?;
    println!("Initializing repository with:");
    println!("  block hash:          {}", opts.hash);
    println!("  encryption:          {}", opts.encryption);
    println!("  key derivation:      {}", opts.key_derivation);
    if !opts.ecc.is_empty() && opts.ecc_overhead_percent > 0 {
        println!(
            "  ecc:                 {} with {}% overhead",
            opts.ecc, opts.ecc_overhead_percent
        );
    }
    println!("  splitter:            {}", opts.splitter);
    Repository::create(&*st, opts, &password).map_err(|e| match e {
        RepoError::AlreadyInitialized(_) => {
            anyhow::anyhow!("repository already initialized at {}", display(&sc))
        }
        e => anyhow::Error::new(e).context("cannot create repository"),
    })?;
    // As Kopia does, a new repository starts with the default global policy.
    let cfg_for_policy = ConnectionConfig {
        storage: sc.clone(),
        caching: CachingConfig::default(),
        hostname: connect
            .override_hostname
            .clone()
            .unwrap_or_else(config::current_hostname),
        username: connect
            .override_username
            .clone()
            .unwrap_or_else(config::current_username),
        description: String::new(),
        read_only: false,
        throttling: None,
        format_blob_cache_duration: 0,
    };
    let cache = config::FileKeyCache::connecting(&ctx.config_path);
    let key_cache = ctx
        .persist_credentials
        .then_some(&cache as &dyn kopr_repo::format_manager::FormatKeyCache);
    let repo = open_with(st, &password, &cfg_for_policy, key_cache)?;
    kopr_repo::policy::set(
        &repo,
        &kopr_format::snapshot::SourceInfo::default(),
        &kopr_format::policy::Policy::new_repository_default(),
    )?;
    // ...and with maintenance owned by its creator.
    let mut mp = kopr_format::maintenance::MaintenanceParams::kopia_default();
    mp.owner = kopr_repo::maintenance::params::this_user(&repo);
    kopr_repo::maintenance::params::set_params(&repo, &mp)?;
    repo.flush()?;
    if create_only {
        return Ok(());
    }
    connect_repository(ctx, sc, connect, Some(password))
}

fn display(sc: &StorageConfig) -> String {
    if sc.kind == "s3" {
        let get = |k: &str| {
            sc.config
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        };
        return format!("s3://{}/{}", get("bucket"), get("prefix"));
    }
    if sc.kind == "gcs" {
        let get = |k: &str| {
            sc.config
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        };
        return format!("gs://{}/{}", get("bucket"), get("prefix"));
    }
    if sc.kind == "azure" {
        let get = |k: &str| {
            sc.config
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        };
        return format!("azure://{}/{}", get("container"), get("prefix"));
    }
    if let Some(r) = sc.config.get("remotePath").and_then(|u| u.as_str()) {
        return r.to_string();
    }
    if let Some(url) = sc.config.get("url").and_then(|u| u.as_str()) {
        return url.to_string();
    }
    sc.config
        .get("path")
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| sc.config.to_string())
}

fn connect_repository(
    ctx: &Context,
    sc: StorageConfig,
    args: ConnectArgs,
    password: Option<String>,
) -> Result<()> {
    let st = storage::open(&sc)?;
    if sc.kind == "s3" {
        ensure_s3_repository(&sc, &*st)?;
    }
    let cache_dir: PathBuf = match args
        .cache_directory
        .or_else(|| std::env::var_os("KOPIA_CACHE_DIRECTORY").map(PathBuf::from))
    {
        Some(dir) => config::absolute(&dir),
        // Without a readable format blob the open below fails with the reason.
        None => config::default_cache_dir(
            &ctx.config_path,
            &kopr_repo::format_manager::unique_id_of(&*st)
                .ok()
                .flatten()
                .unwrap_or_default(),
        ),
    };
    let format_blob_cache_duration = format_cache_setting(
        args.repository_format_cache_duration.as_deref(),
        args.disable_repository_format_cache,
    )?
    .unwrap_or(kopr_repo::format_blob_cache::DEFAULT_VALIDITY_NANOS);
    let cfg = ConnectionConfig {
        description: args
            .description
            .unwrap_or_else(|| format!("Repository in {}: {}", title(&sc.kind), display(&sc))),
        storage: sc,
        caching: CachingConfig {
            cache_directory: cache_dir.to_string_lossy().to_string(),
            ..CachingConfig::default()
        },
        hostname: args
            .override_hostname
            .unwrap_or_else(config::current_hostname),
        username: args
            .override_username
            .unwrap_or_else(config::current_username),
        read_only: args.readonly,
        throttling: None,
        format_blob_cache_duration,
    };
    let password = match password {
        Some(p) => p,
        None => ctx.password("Enter password to open repository: ", false)?,
    };
    // Copies of the format blobs left by an earlier connection (perhaps to another
    // repository) are not trusted: this open reads the storage and caches afresh.
    kopr_repo::format_blob_cache::forget_in(&cache_dir);
    // Opening proves the password and the format before anything is written locally.
    let cache = config::FileKeyCache::connecting(&ctx.config_path);
    let key_cache = ctx
        .persist_credentials
        .then_some(&cache as &dyn kopr_repo::format_manager::FormatKeyCache);
    open_with(st, &password, &cfg, key_cache)?;
    cfg.save(&ctx.config_path)?;
    if ctx.persist_credentials {
        config::save_password(&ctx.config_path, &password)?;
    } else {
        config::forget_password(&ctx.config_path);
    }
    println!("Connected to repository.");
    Ok(())
}

/// A clear error when an S3 prefix holds no repository, with a hint when the same prefix with
/// a trailing `/` does (Kopia adds no separator between prefix and blob names).
fn ensure_s3_repository(sc: &StorageConfig, st: &dyn BlobStorage) -> Result<()> {
    match st.get_metadata(REPOSITORY_BLOB_ID) {
        Ok(_) => return Ok(()),
        Err(BlobError::NotFound(_)) => {}
        Err(e) => return Err(e).context("cannot read the repository"),
    }
    let opts = storage::s3_options_of(sc)?;
    if !opts.prefix.is_empty() && !opts.prefix.ends_with('/') {
        let with_slash = S3Options {
            prefix: format!("{}/", opts.prefix),
            ..opts.clone()
        };
        if let Ok(alt) = storage::open_s3(with_slash) {
            if alt.get_metadata(REPOSITORY_BLOB_ID).is_ok() {
                bail!(
                    "no repository found at {}, but there is one at {}: use --prefix={}/",
                    display(sc),
                    alt.display_name(),
                    opts.prefix
                );
            }
        }
    }
    bail!("no repository found at {}", display(sc))
}

fn title(kind: &str) -> String {
    match kind {
        "filesystem" => "Filesystem".into(),
        "s3" => "S3".into(),
        "azure" => "Azure".into(),
        "gcs" => "GCS".into(),
        "rclone" => "RClone".into(),
        "webdav" => "WebDAV".into(),
        k => k.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kopia_flags() {
        assert_eq!(parse_duration_nanos("24h").unwrap(), 86_400_000_000_000);
        assert_eq!(parse_duration_nanos("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(
            parse_duration_nanos("30d").unwrap(),
            30 * 86_400_000_000_000
        );
        assert!(parse_duration_nanos("24").is_err());
        assert!(parse_duration_nanos("abc").is_err());
        assert!(parse_duration_nanos("5y").is_err());
        // Go's small units and zero, as Kopia's duration flags take them.
        assert_eq!(parse_duration_nanos("0s").unwrap(), 0);
        assert_eq!(parse_duration_nanos("0").unwrap(), 0);
        assert_eq!(parse_duration_nanos("1s500ms").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration_nanos("2us").unwrap(), 2_000);
        assert_eq!(parse_duration_nanos("7ns").unwrap(), 7);
        assert!(parse_duration_nanos("").is_err());
        assert!(parse_duration_nanos("h").is_err());
        assert!(parse_duration_nanos("1h5").is_err());
    }

    #[test]
    fn retention_flags_are_validated() {
        assert!(retention(None, None).unwrap() == BlobStorageConfig::default());
        assert!(retention(Some("governance".into()), Some("48h".into())).is_ok());
        assert!(retention(Some("governance".into()), None).is_err());
        assert!(retention(Some("other".into()), Some("48h".into())).is_err());
        assert!(retention(Some("COMPLIANCE".into()), Some("1h".into())).is_err());
    }
}
