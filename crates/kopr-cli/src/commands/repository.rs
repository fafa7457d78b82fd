//! `repository create | connect | disconnect | status`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use kopr_blob::s3::S3Options;
use kopr_blob::{BlobError, BlobStorage};
use kopr_format::repository_blob::BlobStorageConfig;
use kopr_format::repository_blob::REPOSITORY_BLOB_ID;
use kopr_repo::epoch::EpochState;
use kopr_repo::format_manager::{CreateOptions, FormatManager};
use kopr_repo::{RepoError, Repository};
use serde_json::json;

use super::{open_with, Context};
use crate::app::{ConnectArgs, ConnectStorage, CreateStorage, RepositoryCommand, StatusArgs};
use crate::config::{self, CachingConfig, ConnectionConfig, StorageConfig};
use crate::storage;
use crate::units;

pub fn run(ctx: &Context, cmd: RepositoryCommand) -> Result<()> {
    match cmd {
        RepositoryCommand::Create(CreateStorage::Filesystem {
            fs,
            create,
            connect,
        }) => {
            let sc = storage::filesystem_config(&fs.path)?;
            let opts = CreateOptions {
                hash: create.block_hash,
                encryption: create.encryption,
                splitter: create.object_splitter,
                key_derivation: create.key_derivation,
                blob_config: retention(create.retention_mode, create.retention_period)?,
                max_pack_size: 0,
                ecc: create.ecc,
                ecc_overhead_percent: create.ecc_overhead_percent,
            };
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Create(CreateStorage::S3 {
            s3,
            create,
            connect,
        }) => {
            let sc = storage::s3_config(&storage::s3_options(&s3)?)?;
            let opts = CreateOptions {
                hash: create.block_hash,
                encryption: create.encryption,
                splitter: create.object_splitter,
                key_derivation: create.key_derivation,
                blob_config: retention(create.retention_mode, create.retention_period)?,
                max_pack_size: 0,
                ecc: create.ecc,
                ecc_overhead_percent: create.ecc_overhead_percent,
            };
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Create(CreateStorage::Azure {
            azure,
            create,
            connect,
        }) => {
            let sc = storage::azure_config(&storage::azure_options(&azure))?;
            let opts = create_options(&create)?;
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Create(CreateStorage::Gcs {
            gcs,
            create,
            connect,
        }) => {
            let sc = storage::gcs_config(&storage::gcs_options(&gcs)?)?;
            let opts = create_options(&create)?;
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Connect(ConnectStorage::Gcs { gcs, connect }) => {
            let sc = storage::gcs_config(&storage::gcs_options(&gcs)?)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Create(CreateStorage::Rclone {
            rclone,
            create,
            connect,
        }) => {
            let sc = storage::rclone_config(&storage::rclone_options(&rclone, false)?)?;
            let opts = create_options(&create)?;
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Connect(ConnectStorage::Rclone { rclone, connect }) => {
            let sc = storage::rclone_config(&storage::rclone_options(&rclone, true)?)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Create(CreateStorage::Webdav {
            webdav,
            create,
            connect,
        }) => {
            let sc = storage::webdav_config(&storage::webdav_options(&webdav, false)?)?;
            let opts = create_options(&create)?;
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Connect(ConnectStorage::Azure { azure, connect }) => {
            let sc = storage::azure_config(&storage::azure_options(&azure))?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Connect(ConnectStorage::Webdav { webdav, connect }) => {
            let sc = storage::webdav_config(&storage::webdav_options(&webdav, true)?)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Create(CreateStorage::Sftp {
            sftp,
            create,
            connect,
        }) => {
            let sc = storage::sftp_config(&storage::sftp_options(&sftp, false)?)?;
            let opts = create_options(&create)?;
            create_repository(ctx, sc, &opts, create.create_only, connect)
        }
        RepositoryCommand::Connect(ConnectStorage::Sftp { sftp, connect }) => {
            let sc = storage::sftp_config(&storage::sftp_options(&sftp, true)?)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Connect(ConnectStorage::Filesystem { fs, connect }) => {
            let sc = storage::filesystem_config(&fs.path)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Connect(ConnectStorage::S3 { s3, connect }) => {
            let sc = storage::s3_config(&storage::s3_options(&s3)?)?;
            connect_repository(ctx, sc, connect, None)
        }
        RepositoryCommand::Disconnect => {
            if config::remove(&ctx.config_path)? {
                println!("Disconnected from repository.");
            } else {
                println!("Not connected to a repository.");
            }
            Ok(())
        }
        RepositoryCommand::Status(args) => status(ctx, args),
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
    let cache_dir: PathBuf = args
        .cache_directory
        .or_else(|| std::env::var_os("KOPIA_CACHE_DIRECTORY").map(PathBuf::from))
        .unwrap_or_else(|| config::default_cache_dir(&ctx.config_path));
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
    };
    let password = match password {
        Some(p) => p,
        None => ctx.password("Enter password to open repository: ", false)?,
    };
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

fn status(ctx: &Context, args: StatusArgs) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    let f = repo.format();
    let epoch = if f.config.epoch_parameters.enabled {
        repo.contents().epochs().current()?
    } else {
        EpochState::default()
    };
    if args.json {
        let v = status_json(ctx, &cfg, f);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_connection(ctx, &cfg);
    print_format(f, &epoch);
    Ok(())
}

/// Kopia's `RepositoryStatus` shape, secrets left out as Kopia's scrubber does.
fn status_json(ctx: &Context, cfg: &ConnectionConfig, f: &FormatManager) -> serde_json::Value {
    let c = &f.config;
    let mut client = json!({
        "hostname": cfg.hostname,
        "username": cfg.username,
        "enableActions": false,
        "formatBlobCacheDuration": 900_000_000_000i64,
    });
    if cfg.read_only {
        client["readonly"] = json!(true);
    }
    if !cfg.description.is_empty() {
        client["description"] = json!(cfg.description);
    }
    let mut content = json!({
        "hash": c.hash,
        "encryption": c.encryption,
        "version": c.version,
        "maxPackSize": c.effective_max_pack_size(),
        "indexVersion": c.effective_index_version(),
        "epochParameters": c.epoch_parameters,
        "enablePasswordChange": c.enable_password_change,
    });
    if !c.ecc.is_empty() {
        content["ecc"] = json!(c.ecc);
        content["eccOverheadPercent"] = json!(c.ecc_overhead_percent);
    }
    let mut retention = json!({});
    if f.blob_config.is_retention_enabled() {
        retention = json!({
            "retentionMode": f.blob_config.retention_mode,
            "retentionPeriod": f.blob_config.retention_period_nanos,
        });
    }
    let mut v = json!({
        "configFile": ctx.config_path,
        "uniqueIDHex": f.unique_id_hex(),
        "clientOptions": client,
        "storage": { "type": cfg.storage.kind, "config": storage::redacted(&cfg.storage) },
        "contentFormat": content,
        "objectFormat": { "splitter": c.splitter },
        "blobRetention": retention,
    });
    if let Some((size, free)) = storage_capacity(&cfg.storage) {
        v["volume"] = json!({ "capacity": size, "available": free });
    }
    v
}

/// The client and storage part of `repository status`.
fn print_connection(ctx: &Context, cfg: &ConnectionConfig) {
    println!("Config file:         {}", ctx.config_path.display());
    println!();
    println!("Description:         {}", cfg.description);
    println!("Hostname:            {}", cfg.hostname);
    println!("Username:            {}", cfg.username);
    println!("Read-only:           {}", cfg.read_only);
    // kopr reads the format blob afresh on every open; Kopia's default cache time is shown
    // because Kopia's clients of the same config use it.
    println!("Format blob cache:   15m0s");
    println!();
    println!("Storage type:        {}", cfg.storage.kind);
    match storage_capacity(&cfg.storage) {
        Some((size, free)) => {
            println!("Storage capacity:    {}", units::bytes(size));
            println!("Storage available:   {}", units::bytes(free));
        }
        None => println!("Storage capacity:    unbounded"),
    }
    println!(
        "Storage config:      {}",
        crate::gojson::storage_config(
            &cfg.storage.kind,
            &storage::redacted(&cfg.storage),
            &" ".repeat(21)
        )
    );
    println!();
}

/// The format, epoch and retention part of `repository status`.
fn print_format(f: &FormatManager, epoch: &EpochState) {
    let c = &f.config;
    let ep = &c.epoch_parameters;
    let dur = |n: i64| units::duration(chrono::Duration::nanoseconds(n));
    println!("Unique ID:           {}", f.unique_id_hex());
    println!("Hash:                {}", c.hash);
    println!("Encryption:          {}", c.encryption);
    println!("Splitter:            {}", c.splitter);
    println!("Format version:      {}", c.version);
    println!("Content compression: {}", c.effective_index_version() >= 2);
    println!("Password changes:    {}", c.enable_password_change);
    println!(
        "Max pack length:     {}",
        units::bytes(i64::from(c.effective_max_pack_size()))
    );
    println!("Index Format:        v{}", c.effective_index_version());
    // As Kopia: a blank line and the epoch parameters only with the epoch manager, then
    // the retention settings.
    if ep.enabled {
        println!();
        println!("Epoch Manager:       enabled");
        println!("Current Epoch: {}", epoch.write_epoch);
        println!();
        println!(
            "Epoch refresh frequency: {}",
            dur(ep.refresh_frequency_nanos)
        );
        println!(
            "Epoch advance on:        {} blobs or {}, minimum {}",
            ep.advance_on_count_threshold,
            units::bytes(ep.advance_on_total_size_bytes_threshold),
            dur(ep.min_epoch_duration_nanos)
        );
        println!(
            "Epoch cleanup margin:    {}",
            dur(ep.cleanup_safety_margin_nanos)
        );
        println!(
            "Epoch range-compaction every: {} epochs",
            ep.full_checkpoint_frequency
        );
    } else {
        println!("Epoch Manager:       disabled");
    }
    if f.blob_config.is_retention_enabled() {
        println!();
        println!("Blob retention mode:     {}", f.blob_config.retention_mode);
        println!(
            "Blob retention period:   {}",
            dur(f.blob_config.retention_period_nanos)
        );
    }
}

/// Size and free bytes of the volume holding a filesystem repository (`None`: unbounded, as
/// Kopia says of object stores).
fn storage_capacity(sc: &StorageConfig) -> Option<(i64, i64)> {
    if sc.kind != "filesystem" {
        return None;
    }
    let path = sc.config.get("path")?.as_str()?;
    let c = std::ffi::CString::new(path).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as i64;
    Some((st.f_blocks as i64 * frag, st.f_bavail as i64 * frag))
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
