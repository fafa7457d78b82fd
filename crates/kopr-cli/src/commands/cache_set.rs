//! `cache set | sync | prefetch`: the cache limits Kopia keeps in the connection config, and
//! filling kopr's caches ahead of use.
//!
//! kopr has two caches: index blobs (`indexes/`, always kept in step with the repository) and
//! the content cache (`contents/`: ranges of packs read by restores, bounded by
//! `--content-cache-size-mb`, on by default for object stores only). Kopia's metadata cache
//! (its copy of `q` packs) has no counterpart: its limits are stored for Kopia's sake.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;

use super::Context;
use crate::config::ConnectionConfig;
use crate::units;

/// `cache set` flags (Kopia's).
#[derive(Debug, Args)]
pub struct CacheSetArgs {
    /// Directory where to store cache files.
    #[arg(long = "cache-directory")]
    pub cache_directory: Option<std::path::PathBuf>,
    /// Desired size of local content cache (soft limit).
    #[arg(long = "content-cache-size-mb", value_name = "MB")]
    pub content_cache_size_mb: Option<i64>,
    /// Maximum size of local content cache (hard limit).
    #[arg(long = "content-cache-size-limit-mb", value_name = "MB")]
    pub content_cache_size_limit_mb: Option<i64>,
    /// Minimal age of content cache item to be subject to sweeping.
    #[arg(long = "content-min-sweep-age")]
    pub content_min_sweep_age: Option<String>,
    /// Desired size of local metadata cache (soft limit).
    #[arg(long = "metadata-cache-size-mb", value_name = "MB")]
    pub metadata_cache_size_mb: Option<i64>,
    /// Maximum size of local metadata cache (hard limit).
    #[arg(long = "metadata-cache-size-limit-mb", value_name = "MB")]
    pub metadata_cache_size_limit_mb: Option<i64>,
    /// Minimal age of metadata cache item to be subject to sweeping.
    #[arg(long = "metadata-min-sweep-age")]
    pub metadata_min_sweep_age: Option<String>,
    /// Minimal age of index cache item to be subject to sweeping.
    #[arg(long = "index-min-sweep-age")]
    pub index_min_sweep_age: Option<String>,
    /// Duration of index cache.
    #[arg(long = "max-list-cache-duration")]
    pub max_list_cache_duration: Option<String>,
}

fn megabytes(flag: &str, mb: i64) -> Result<i64> {
    if mb < 0 {
        bail!("invalid --{flag} {mb}: must not be negative");
    }
    mb.checked_mul(1_000_000)
        .ok_or_else(|| anyhow!("invalid --{flag} {mb}: too large"))
}

/// `cache set`: changes the limits in the connection config (no repository access needed).
pub fn set(ctx: &Context, a: &CacheSetArgs) -> Result<()> {
    let mut cfg = ConnectionConfig::load(&ctx.config_path)?;
    let c = &mut cfg.caching;
    let mut changed = 0;
    if let Some(d) = &a.cache_directory {
        let d = crate::config::absolute(d);
        eprintln!("setting cache directory to {}", d.display());
        c.cache_directory = d.to_string_lossy().into_owned();
        changed += 1;
    }
    let sizes = [
        (
            a.content_cache_size_mb,
            "content-cache-size-mb",
            "content cache size",
            &mut c.content_cache_size_bytes,
        ),
        (
            a.content_cache_size_limit_mb,
            "content-cache-size-limit-mb",
            "content cache size limit",
            &mut c.content_cache_size_limit_bytes,
        ),
        (
            a.metadata_cache_size_mb,
            "metadata-cache-size-mb",
            "metadata cache size",
            &mut c.metadata_cache_size_bytes,
        ),
        (
            a.metadata_cache_size_limit_mb,
            "metadata-cache-size-limit-mb",
            "metadata cache size limit",
            &mut c.metadata_cache_size_limit_bytes,
        ),
    ];
    for (v, flag, what, field) in sizes {
        if let Some(mb) = v {
            let bytes = megabytes(flag, mb)?;
            eprintln!("changing {what} to {}", units::bytes(bytes));
            *field = Some(bytes);
            changed += 1;
        }
    }
    changed += set_durations(c, a)?;
    if changed == 0 {
        bail!("no changes");
    }
    cfg.save(&ctx.config_path)
}

/// The list cache duration and sweep ages (Kopia stores them as seconds); returns how many
/// were given.
fn set_durations(c: &mut crate::config::CachingConfig, a: &CacheSetArgs) -> Result<usize> {
    let mut changed = 0;
    let durations = [
        (
            &a.max_list_cache_duration,
            "max-list-cache-duration",
            "list cache duration",
            "maxListCacheDuration",
        ),
        (
            &a.metadata_min_sweep_age,
            "metadata-min-sweep-age",
            "minimum metadata sweep age",
            "minMetadataSweepAge",
        ),
        (
            &a.content_min_sweep_age,
            "content-min-sweep-age",
            "minimum content sweep age",
            "minContentSweepAge",
        ),
        (
            &a.index_min_sweep_age,
            "index-min-sweep-age",
            "minimum index sweep age",
            "minIndexSweepAge",
        ),
    ];
    for (v, flag, what, key) in durations {
        if let Some(d) = v {
            let nanos = super::repository::parse_duration_nanos(d)
                .map_err(|e| anyhow!("invalid --{flag}: {e}"))?;
            eprintln!("changing {what} to {d}");
            // Kopia stores these as seconds.
            c.extra
                .insert(key.into(), serde_json::json!(nanos / 1_000_000_000));
            changed += 1;
        }
    }
    Ok(changed)
}

/// `cache sync`: brings the index cache in step with the repository's index blobs (fetching
/// those missing, dropping those no longer used). Opening the repository does exactly that.
pub fn sync(ctx: &Context) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let n = repo.contents().index_blobs()?.len();
    eprintln!("Index cache synchronized: {n} index blobs.");
    Ok(())
}

/// `cache prefetch OBJECT…`: reads the contents of each object (snapshot id or object id,
/// optionally with a path) through the content cache, so later reads are local.
pub fn prefetch(ctx: &Context, objects: &[String]) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    if !repo.content_cache().is_enabled() {
        bail!("the content cache of this connection is off (filesystem repositories have none unless set with `kopr cache set --content-cache-size-mb=N`)");
    }
    let mut n = 0usize;
    for spec in objects {
        let entry = super::snapshot::resolve(&repo, spec)
            .with_context(|| format!("unable to parse ID: {spec}"))?;
        let ids = kopr_repo::snapshot::object_content_ids(&repo, &entry.object_id)
            .context("error prefetching")?;
        for id in ids {
            kopr_repo::content_cache::get_content(repo.contents(), repo.content_cache(), &id)
                .context("error prefetching")?;
            n += 1;
        }
    }
    eprintln!("prefetched {n} contents");
    Ok(())
}
