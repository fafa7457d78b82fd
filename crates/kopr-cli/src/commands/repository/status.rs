//! `repository status`: the connection, storage, format, epoch and retention of the connected
//! repository, as text or as Kopia's `RepositoryStatus` JSON.

use anyhow::Result;
use kopr_repo::epoch::EpochState;
use kopr_repo::format_manager::FormatManager;
use serde_json::json;

use crate::app::StatusArgs;
use crate::commands::Context;
use crate::config::{ConnectionConfig, StorageConfig};
use crate::storage;
use crate::units;

pub(super) fn status(ctx: &Context, args: StatusArgs) -> Result<()> {
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
        "formatBlobCacheDuration":
            kopr_repo::format_blob_cache::effective_setting(cfg.format_blob_cache_duration),
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
    // As Kopia: the setting as configured (larger values are used capped at 15 minutes).
    match kopr_repo::format_blob_cache::effective_setting(cfg.format_blob_cache_duration) {
        n if n > 0 => println!(
            "Format blob cache:   {}",
            units::duration(chrono::Duration::nanoseconds(n))
        ),
        _ => println!("Format blob cache:   disabled"),
    }
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
