//! `repository set-parameters | set-client | throttle get|set | validate-provider | upgrade`:
//! Kopia's commands that change how a repository or a connection to it works.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use kopr_blob::throttle::ThrottleLimits;
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::{BlobStorageConfig, EpochParameters, RepositoryConfig};
use kopr_repo::format_params::{self, RawFormat};

use super::repository::parse_duration_nanos;
use super::Context;
use crate::config::ConnectionConfig;
use crate::{storage, units};

mod upgrade;
pub use upgrade::{upgrade, UpgradeCommand};

/// `repository set-parameters` flags (Kopia's).
#[derive(Debug, Args)]
pub struct SetParametersArgs {
    /// Set max pack file size.
    #[arg(long = "max-pack-size-mb", value_name = "MB")]
    pub max_pack_size_mb: Option<u32>,
    /// Set version of index format used for writing.
    #[arg(long = "index-version")]
    pub index_version: Option<u32>,
    /// Set the blob retention-mode for supported storage backends.
    #[arg(long = "retention-mode", value_parser = ["none", "GOVERNANCE", "COMPLIANCE"])]
    pub retention_mode: Option<String>,
    /// Set the blob retention-period for supported storage backends.
    #[arg(long = "retention-period")]
    pub retention_period: Option<String>,
    /// Upgrade repository to the latest stable format.
    #[arg(long)]
    pub upgrade: bool,
    /// Epoch refresh frequency.
    #[arg(long = "epoch-refresh-frequency")]
    pub epoch_refresh_frequency: Option<String>,
    /// Minimal duration of a single epoch.
    #[arg(long = "epoch-min-duration")]
    pub epoch_min_duration: Option<String>,
    /// Epoch cleanup safety margin.
    #[arg(long = "epoch-cleanup-safety-margin")]
    pub epoch_cleanup_safety_margin: Option<String>,
    /// Advance epoch if the number of indexes exceeds given threshold.
    #[arg(long = "epoch-advance-on-count")]
    pub epoch_advance_on_count: Option<i64>,
    /// Advance epoch if the total size of indexes exceeds given threshold.
    #[arg(long = "epoch-advance-on-size-mb")]
    pub epoch_advance_on_size_mb: Option<i64>,
    /// Epoch delete parallelism.
    #[arg(long = "epoch-delete-parallelism")]
    pub epoch_delete_parallelism: Option<i64>,
    /// Epoch range-compaction period.
    #[arg(long = "epoch-checkpoint-frequency", value_name = "number-of-epochs")]
    pub epoch_checkpoint_frequency: Option<i64>,
}

/// `repository set-client` flags (Kopia's).
#[derive(Debug, Args)]
pub struct SetClientArgs {
    /// Set repository to read-only.
    #[arg(long = "read-only", conflicts_with = "read_write")]
    pub read_only: bool,
    /// Set repository to read-write.
    #[arg(long = "read-write")]
    pub read_write: bool,
    /// Change description.
    #[arg(long)]
    pub description: Option<String>,
    /// Change username.
    #[arg(long)]
    pub username: Option<String>,
    /// Change hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Duration of kopia.repository format blob cache (at most 15m).
    #[arg(long = "repository-format-cache-duration", value_name = "DURATION")]
    pub repository_format_cache_duration: Option<String>,
    /// Disable caching of kopia.repository format blob.
    #[arg(long = "disable-repository-format-cache")]
    pub disable_repository_format_cache: bool,
}

/// `repository throttle …`
#[derive(Debug, Subcommand)]
pub enum ThrottleCommand {
    /// Get throttling parameters for a repository.
    Get {
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Set throttling parameters for a repository.
    Set(ThrottleSetArgs),
}

/// `repository throttle set` flags: a number, or `unlimited` / `-` to remove the limit.
#[derive(Debug, Args)]
pub struct ThrottleSetArgs {
    /// Set the download bytes per second.
    #[arg(long = "download-bytes-per-second")]
    pub download_bytes_per_second: Option<String>,
    /// Set the upload bytes per second.
    #[arg(long = "upload-bytes-per-second")]
    pub upload_bytes_per_second: Option<String>,
    /// Set max reads per second.
    #[arg(long = "read-requests-per-second")]
    pub read_requests_per_second: Option<String>,
    /// Set max writes per second.
    #[arg(long = "write-requests-per-second")]
    pub write_requests_per_second: Option<String>,
    /// Set max lists per second.
    #[arg(long = "list-requests-per-second")]
    pub list_requests_per_second: Option<String>,
    /// Set max concurrent reads.
    #[arg(long = "concurrent-reads")]
    pub concurrent_reads: Option<String>,
    /// Set max concurrent writes.
    #[arg(long = "concurrent-writes")]
    pub concurrent_writes: Option<String>,
}

/// `repository validate-provider` flags (Kopia's).
#[derive(Debug, Args)]
pub struct ValidateProviderArgs {
    /// Number of storage connections.
    #[arg(long = "num-storage-connections", default_value_t = 5)]
    pub num_storage_connections: usize,
    /// Duration of concurrency test.
    #[arg(long = "concurrency-test-duration", default_value = "30s")]
    pub concurrency_test_duration: String,
    /// Number of PutBlob workers.
    #[arg(long = "put-blob-workers", default_value_t = 3)]
    pub put_blob_workers: usize,
    /// Number of GetBlob workers.
    #[arg(long = "get-blob-workers", default_value_t = 3)]
    pub get_blob_workers: usize,
    /// Number of GetMetadata workers.
    #[arg(long = "get-metadata-workers", default_value_t = 3)]
    pub get_metadata_workers: usize,
}

fn info(msg: impl AsRef<str>) {
    tracing::info!(target: "cli", "{}", msg.as_ref());
}

fn nanos(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    v.as_deref()
        .map(|s| parse_duration_nanos(s).with_context(|| format!("invalid --{flag}")))
        .transpose()
}

fn go_nanos(n: i64) -> String {
    units::duration(chrono::Duration::nanoseconds(n))
}

fn set_duration(flag: &str, desc: &str, v: &Option<String>, dst: &mut i64) -> Result<bool> {
    match nanos(flag, v)?.filter(|n| *n != 0) {
        Some(n) => {
            *dst = n;
            info(format!(" - setting {desc} to {}.", go_nanos(n)));
            Ok(true)
        }
        None => Ok(false),
    }
}

fn set_int(desc: &str, v: Option<i64>, dst: &mut i64) -> bool {
    match v.filter(|n| *n != 0) {
        Some(n) => {
            *dst = n;
            info(format!(" - setting {desc} to {n}."));
            true
        }
        None => false,
    }
}

/// Kopia's `set-parameters`.
pub fn set_parameters(ctx: &Context, a: SetParametersArgs) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    if cfg.read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    let fm = repo.format();
    let mut c: RepositoryConfig = fm.config.clone();
    let mut blobcfg: BlobStorageConfig = fm.blob_config.clone();
    let mut any = false;
    let mut migration = None;
    if a.upgrade && !c.epoch_parameters.enabled {
        let raw = RawFormat::from_manager(repo.storage().as_ref(), fm)?;
        info("migrating current indexes to epoch format");
        let (nc, written) = format_params::migrate_indexes_to_epochs(
            repo.storage().clone(),
            &raw,
            repo.contents().clock().clone(),
        )?
        .ok_or_else(|| anyhow!("the epoch manager is already enabled"))?;
        tracing::debug!(target: "cli", blobs = written.len(), "wrote epoch 0 index blobs");
        c = nc;
        migration = Some(raw);
        any = true;
    } else if a.upgrade && c.version < 2 {
        c.version = 2;
        any = true;
    }
    any |= set_pack_and_index(&mut c, &a)?;
    any |= set_retention(&mut blobcfg, &a)?;
    any |= set_epoch_parameters(&mut c.epoch_parameters, &a)?;
    if !any {
        info("no changes");
        return Ok(());
    }
    format_params::validate_mutable(&c)?;
    let mut raw = match migration {
        Some(r) => r,
        None => RawFormat::from_manager(repo.storage().as_ref(), fm)?,
    };
    raw.write(repo.storage().as_ref(), c, &blobcfg)
        .context("error updating repository parameters")?;
    if a.upgrade {
        if let Err(e) = format_params::write_legacy_index_poison(repo.storage().as_ref()) {
            tracing::error!(target: "cli", "unable to write legacy index poison blob: {e}");
        }
    }
    info("NOTE: Repository parameters updated, you must disconnect and re-connect all other Kopia clients.");
    Ok(())
}

/// `--max-pack-size-mb` and `--index-version`. Returns whether anything changed.
fn set_pack_and_index(c: &mut RepositoryConfig, a: &SetParametersArgs) -> Result<bool> {
    let mut changed = false;
    if let Some(mb) = a.max_pack_size_mb.filter(|v| *v != 0) {
        c.max_pack_size = mb
            .checked_mul(1 << 20)
            .ok_or_else(|| anyhow!("--max-pack-size-mb {mb} is too large"))?;
        changed = true;
        info(format!(
            " - setting maximum pack size to {}.",
            units::bytes(i64::from(c.max_pack_size))
        ));
    }
    if let Some(v) = a.index_version.filter(|v| *v != 0) {
        let current = c.effective_index_version();
        if v > current {
            c.index_version = v;
            changed = true;
            info(format!(" - setting index format version to {v}."));
        } else if v < current {
            bail!("index format version can only be upgraded");
        }
    }
    Ok(changed)
}

/// `--retention-mode` and `--retention-period`. Returns whether anything changed.
fn set_retention(blobcfg: &mut BlobStorageConfig, a: &SetParametersArgs) -> Result<bool> {
    let mut changed = false;
    match a.retention_mode.as_deref() {
        Some("none") => {
            if blobcfg.is_retention_enabled() {
                info("disabling blob retention");
                *blobcfg = BlobStorageConfig::default();
                changed = true;
            }
        }
        mode => {
            if let Some(m) = mode {
                blobcfg.retention_mode = m.to_string();
                changed = true;
                info(format!(
                    " - setting storage backend blob retention mode to {m}."
                ));
            }
            if let Some(p) = nanos("retention-period", &a.retention_period)?.filter(|p| *p != 0) {
                blobcfg.retention_period_nanos = p;
                changed = true;
                info(format!(
                    " - setting storage backend blob retention period to {}.",
                    go_nanos(p)
                ));
            }
        }
    }
    Ok(changed)
}

/// The `--epoch-…` flags. Returns whether anything changed.
fn set_epoch_parameters(ep: &mut EpochParameters, a: &SetParametersArgs) -> Result<bool> {
    let mut changed = false;
    changed |= set_duration(
        "epoch-min-duration",
        "minimum epoch duration",
        &a.epoch_min_duration,
        &mut ep.min_epoch_duration_nanos,
    )?;
    changed |= set_duration(
        "epoch-refresh-frequency",
        "epoch refresh frequency",
        &a.epoch_refresh_frequency,
        &mut ep.refresh_frequency_nanos,
    )?;
    changed |= set_duration(
        "epoch-cleanup-safety-margin",
        "epoch cleanup safety margin",
        &a.epoch_cleanup_safety_margin,
        &mut ep.cleanup_safety_margin_nanos,
    )?;
    changed |= set_int(
        "epoch advance on count",
        a.epoch_advance_on_count,
        &mut ep.advance_on_count_threshold,
    );
    if let Some(mb) = a.epoch_advance_on_size_mb.filter(|n| *n != 0) {
        ep.advance_on_total_size_bytes_threshold = mb << 20;
        changed = true;
        info(format!(
            " - setting epoch advance on total size to {}.",
            units::bytes(mb << 20)
        ));
    }
    changed |= set_int(
        "epoch delete parallelism",
        a.epoch_delete_parallelism,
        &mut ep.delete_parallelism,
    );
    changed |= set_int(
        "epoch range-compaction period",
        a.epoch_checkpoint_frequency,
        &mut ep.full_checkpoint_frequency,
    );
    Ok(changed)
}

/// Kopia's `set-client`: changes the connection config only.
pub fn set_client(ctx: &Context, a: SetClientArgs) -> Result<()> {
    let mut cfg = ConnectionConfig::load(&ctx.config_path)?;
    let mut any = false;
    if a.read_only {
        if cfg.read_only {
            info("Repository is already in read-only mode.");
        } else {
            cfg.read_only = true;
            any = true;
            info("Setting repository to read-only mode.");
        }
    }
    if a.read_write {
        if !cfg.read_only {
            info("Repository is already in read-write mode.");
        } else {
            cfg.read_only = false;
            any = true;
            info("Setting repository to read-write mode.");
        }
    }
    if let Some(d) = a.description {
        info(format!("Setting description to {d}"));
        cfg.description = d;
        any = true;
    }
    if let Some(u) = a.username {
        info(format!("Setting local username to {u}"));
        cfg.username = u;
        any = true;
    }
    if let Some(h) = a.hostname {
        info(format!("Setting local hostname to {h}"));
        cfg.hostname = h;
        any = true;
    }
    if let Some(n) = super::repository::format_cache_setting(
        a.repository_format_cache_duration.as_deref(),
        a.disable_repository_format_cache,
    )? {
        if n < 0 {
            info("Disabling format blob cache");
        } else {
            info(format!(
                "Setting format blob cache duration to {}",
                go_nanos(n)
            ));
        }
        cfg.format_blob_cache_duration = n;
        any = true;
    }
    if !any {
        bail!("no changes");
    }
    cfg.save(&ctx.config_path)
}

fn throttle_value(desc: &str, v: &str, bps: bool) -> Result<f64> {
    if v == "unlimited" || v == "-" {
        info(format!("Setting {desc} to a unlimited."));
        return Ok(0.0);
    }
    let n: f64 = v
        .parse()
        .map_err(|_| anyhow!("can't parse the {desc} {v:?}"))?;
    if !(n >= 0.0 && n.is_finite()) {
        bail!("can't parse the {desc} {v:?}");
    }
    if bps {
        info(format!("Setting {desc} to {}.", bytes_per_second(n)));
    } else {
        info(format!("Setting {desc} to {n}."));
    }
    Ok(n)
}

fn bytes_per_second(v: f64) -> String {
    format!("{}/s", units::bytes(v as i64))
}

/// Kopia's `throttle get | set`: the limits live in the connection config and are applied to
/// every storage call of later commands.
pub fn throttle(ctx: &Context, cmd: ThrottleCommand) -> Result<()> {
    let mut cfg = ConnectionConfig::load(&ctx.config_path)?;
    let mut limits = cfg.throttling.unwrap_or_default();
    match cmd {
        ThrottleCommand::Get { json } => print_limits(&limits, json),
        ThrottleCommand::Set(a) => {
            if set_limits(&mut limits, &a)? == 0 {
                info("No changes made.");
                return Ok(());
            }
            cfg.throttling = limits.is_limited().then_some(limits);
            cfg.save(&ctx.config_path)
        }
    }
}

/// `throttle get`: the limits as JSON or as Kopia's table.
fn print_limits(limits: &ThrottleLimits, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&limits)?);
        return Ok(());
    }
    let line = |label: &str, v: f64, f: &dyn Fn(f64) -> String| {
        if v != 0.0 {
            println!("{label:<30} {}", f(v));
        } else {
            println!("{label:<30} (unlimited)");
        }
    };
    let plain = |v: f64| format!("{v:.0}");
    line(
        "Max Download Speed:",
        limits.download_bytes_per_second,
        &bytes_per_second,
    );
    line(
        "Max Upload Speed:",
        limits.upload_bytes_per_second,
        &bytes_per_second,
    );
    line(
        "Max Read Requests Per Second:",
        limits.reads_per_second,
        &plain,
    );
    line(
        "Max Write Requests Per Second:",
        limits.writes_per_second,
        &plain,
    );
    line(
        "Max List Requests Per Second:",
        limits.lists_per_second,
        &plain,
    );
    line(
        "Max Concurrent Reads:",
        limits.concurrent_reads as f64,
        &plain,
    );
    line(
        "Max Concurrent Writes:",
        limits.concurrent_writes as f64,
        &plain,
    );
    Ok(())
}

/// `throttle set`: applies the flags to `limits`; returns how many were given.
fn set_limits(limits: &mut ThrottleLimits, a: &ThrottleSetArgs) -> Result<usize> {
    let mut changes = 0;
    let mut f = |desc: &str, v: &Option<String>, bps: bool, dst: &mut f64| -> Result<()> {
        if let Some(v) = v {
            *dst = throttle_value(desc, v, bps)?;
            changes += 1;
        }
        Ok(())
    };
    f(
        "max download speed",
        &a.download_bytes_per_second,
        true,
        &mut limits.download_bytes_per_second,
    )?;
    f(
        "max upload speed",
        &a.upload_bytes_per_second,
        true,
        &mut limits.upload_bytes_per_second,
    )?;
    f(
        "reads per second",
        &a.read_requests_per_second,
        false,
        &mut limits.reads_per_second,
    )?;
    f(
        "writes per second",
        &a.write_requests_per_second,
        false,
        &mut limits.writes_per_second,
    )?;
    f(
        "lists per second",
        &a.list_requests_per_second,
        false,
        &mut limits.lists_per_second,
    )?;
    let mut i = |desc: &str, v: &Option<String>, dst: &mut usize| -> Result<()> {
        if let Some(v) = v {
            if v == "unlimited" || v == "-" {
                info(format!("Setting {desc} to a unlimited."));
                *dst = 0;
            } else {
                *dst = v
                    .parse()
                    .map_err(|_| anyhow!("can't parse the {desc} {v:?}"))?;
                info(format!("Setting {desc} to {dst}."));
            }
            changes += 1;
        }
        Ok(())
    };
    i(
        "concurrent reads",
        &a.concurrent_reads,
        &mut limits.concurrent_reads,
    )?;
    i(
        "concurrent writes",
        &a.concurrent_writes,
        &mut limits.concurrent_writes,
    )?;
    Ok(changes)
}

/// Applies the connection's throttling limits to its storage.
pub fn throttled(st: Arc<dyn BlobStorage>, limits: Option<ThrottleLimits>) -> Arc<dyn BlobStorage> {
    match limits.filter(ThrottleLimits::is_limited) {
        Some(l) => Arc::new(kopr_blob::throttle::ThrottledStorage::new(st, l)),
        None => st,
    }
}

/// Kopia's `validate-provider`, over `--num-storage-connections` connections to the
/// repository's storage.
pub fn validate_provider(ctx: &Context, a: ValidateProviderArgs) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    if cfg.read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    if std::env::var_os("KOPIA_SKIP_PROVIDER_VALIDATION").is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    let n = a.num_storage_connections.max(1);
    info(format!(
        "Opening {} equivalent storage connections...",
        n - 1
    ));
    let mut conns: Vec<Arc<dyn BlobStorage>> = vec![repo.storage().clone()];
    for _ in 1..n {
        let st = storage::open(&cfg.storage).context("unable to open storage connection")?;
        conns.push(throttled(st, cfg.throttling));
    }
    let opts = kopr_blob::validation::ValidationOptions {
        concurrency_test_duration: std::time::Duration::from_nanos(
            parse_duration_nanos(&a.concurrency_test_duration)?.max(0) as u64,
        ),
        put_blob_workers: a.put_blob_workers,
        get_blob_workers: a.get_blob_workers,
        get_metadata_workers: a.get_metadata_workers,
        ..Default::default()
    };
    let clock = repo.contents().clock().clone();
    kopr_blob::validation::validate_provider(&conns, &opts, &|| clock.now(), &|l: &str| info(l))
        .map_err(|e| anyhow!(e).context("provider validation error"))
}
