//! Kopia's low-level repair commands, all behind `--dangerous-commands=enabled` as in Kopia:
//! `content delete` (marks contents deleted), `content rewrite` (moves contents into new
//! packs: named ones, those of short packs, those of a format version), `index optimize`
//! (drops deleted entries: the deletion watermark of epoch repositories, a compaction of
//! legacy ones), and the read-only `index inspect` (every entry of index blobs, in Kopia's
//! line format).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use kopr_format::index::{ContentId, IndexEntry};
use kopr_format::BlobId;
use kopr_repo::maintenance::safety::SafetyParameters;
use kopr_repo::Repository;

use super::{require_dangerous, Context};
use crate::config::ConnectionConfig;

/// `content rewrite` flags (Kopia's).
#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Identifiers of contents to rewrite.
    #[arg(value_name = "contentID")]
    pub ids: Vec<String>,
    /// Number of parallel workers (accepted for Kopia's scripts; kopr rewrites pack by pack).
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Rewrite contents from short packs.
    #[arg(long)]
    pub short: bool,
    /// Rewrite contents using the provided format version.
    #[arg(
        long = "format-version",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub format_version: i32,
    /// Only rewrite contents from pack blobs with a given prefix.
    #[arg(long = "pack-prefix", default_value = "")]
    pub pack_prefix: String,
    /// Do not actually rewrite, only print what would happen.
    #[arg(long = "dry-run", short = 'n')]
    pub dry_run: bool,
    /// Safety level: full (default) or none.
    #[arg(long, default_value = "full", value_parser = ["full", "none"])]
    pub safety: String,
}

/// `index inspect` flags (Kopia's).
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Inspect all index blobs in the repository, including inactive.
    #[arg(long)]
    pub all: bool,
    /// Inspect all active index blobs.
    #[arg(long)]
    pub active: bool,
    /// Only entries of these content IDs.
    #[arg(long = "content-id")]
    pub content_ids: Vec<String>,
    /// Parallelism (accepted for Kopia's scripts; kopr reads blobs one after another).
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Names of index blobs to inspect.
    pub blobs: Vec<String>,
}

/// `index optimize` flags (Kopia's).
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// Maximum number of small index blobs that can be left after compaction.
    #[arg(long = "max-small-blobs", default_value_t = 1)]
    pub max_small_blobs: usize,
    /// Drop deleted contents above given age (e.g. 24h).
    #[arg(long = "drop-deleted-older-than")]
    pub drop_deleted_older_than: Option<String>,
    /// Drop contents with given IDs (not supported by kopr yet).
    #[arg(long = "drop-contents")]
    pub drop_contents: Vec<String>,
    /// Optimize all indexes, even those above maximum size.
    #[arg(long)]
    pub all: bool,
}

fn parse_ids(ids: &[String]) -> Result<Vec<ContentId>> {
    ids.iter()
        .map(|s| {
            s.parse()
                .map_err(|e| anyhow!("error parsing content ID: {s:?}: {e}"))
        })
        .collect()
}

fn writable(ctx: &Context, read_only: bool) -> Result<()> {
    require_dangerous(ctx)?;
    if read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    Ok(())
}

/// `content delete ID…`: marks each content deleted in a new index blob.
pub fn content_delete(
    ctx: &Context,
    cfg: &ConnectionConfig,
    repo: &Repository,
    ids: &[String],
) -> Result<()> {
    writable(ctx, cfg.read_only)?;
    for id in parse_ids(ids)? {
        repo.contents()
            .delete_content(&id)
            .with_context(|| format!("error deleting content {id}"))?;
    }
    repo.flush()?;
    Ok(())
}

/// `content rewrite`: the named contents, those of short packs (`--short`) and those of a
/// format version (`--format-version`), moved into new packs; contents younger than the
/// safety level's minimum age stay.
pub fn content_rewrite(
    ctx: &Context,
    cfg: &ConnectionConfig,
    repo: &Repository,
    a: &RewriteArgs,
) -> Result<()> {
    require_dangerous(ctx)?;
    if !a.dry_run && cfg.read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    let safety = SafetyParameters::by_name(&a.safety)
        .ok_or_else(|| anyhow!("invalid --safety {:?}: use full or none", a.safety))?;
    let cm = repo.contents();
    let chosen = contents_to_rewrite(repo, a)?;
    let now = cm.clock().now().timestamp();
    let mut by_pack: BTreeMap<BlobId, Vec<IndexEntry>> = BTreeMap::new();
    let (mut retained, mut retained_bytes) = (0u64, 0u64);
    for e in chosen.into_values() {
        let age = now - e.timestamp_seconds;
        if age < safety.rewrite_min_age.num_seconds() {
            eprintln!(
                "Not rewriting content {} ({} bytes) from pack {}: too recent",
                e.content_id, e.packed_length, e.pack_blob_id
            );
            retained += 1;
            retained_bytes += u64::from(e.packed_length);
            continue;
        }
        eprintln!(
            "Rewriting content {} ({} bytes) from pack {}{}",
            e.content_id,
            e.packed_length,
            e.pack_blob_id,
            if e.deleted { " (deleted)" } else { "" }
        );
        by_pack.entry(e.pack_blob_id.clone()).or_default().push(e);
    }
    let total: u64 = by_pack.values().map(|v| v.len() as u64).sum();
    let bytes: u64 = by_pack
        .values()
        .flatten()
        .map(|e| u64::from(e.packed_length))
        .sum();
    if a.dry_run {
        eprintln!(
            "Would rewrite {total} contents ({}), keep {retained} too recent ({}).",
            crate::units::bytes(bytes as i64),
            crate::units::bytes(retained_bytes as i64)
        );
        return Ok(());
    }
    let mut moved = 0;
    for (pack, mut entries) in by_pack {
        entries.sort_by_key(|e| e.pack_offset);
        moved += cm
            .rewrite_pack_contents(&pack, &entries)
            .with_context(|| format!("error rewriting contents of {pack}"))?;
    }
    repo.flush()?;
    eprintln!(
        "Rewrote {moved} contents ({}), kept {retained} too recent ({}).",
        crate::units::bytes(bytes as i64),
        crate::units::bytes(retained_bytes as i64)
    );
    Ok(())
}

/// The contents `content rewrite` was asked for, by id (a content named twice is rewritten
/// once): the named ones, those of short packs with `--short`, those of `--format-version`.
fn contents_to_rewrite(
    repo: &Repository,
    a: &RewriteArgs,
) -> Result<BTreeMap<ContentId, IndexEntry>> {
    let cm = repo.contents();
    let mut chosen: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
    for id in parse_ids(&a.ids)? {
        let e = cm.content_info(&id)?.ok_or_else(|| {
            anyhow!(
                "unable to get info for content {:?}: not found",
                id.to_string()
            )
        })?;
        chosen.insert(id, e);
    }
    if a.short {
        eprintln!("Rewriting contents from short packs...");
        for e in
            kopr_repo::maintenance::rewrite::contents_in_short_packs(repo, &a.pack_prefix, false)?
        {
            chosen.insert(e.content_id, e);
        }
    } else {
        eprintln!("Rewriting contents...");
    }
    if a.format_version >= 0 {
        cm.for_each_committed(false, &mut |e: &IndexEntry| {
            if i32::from(e.format_version) == a.format_version
                && e.pack_blob_id.starts_with(&a.pack_prefix)
            {
                chosen.insert(e.content_id, e.clone());
            }
            Ok(())
        })?;
    }
    Ok(chosen)
}

/// `index inspect`: one line per entry of each index blob, Kopia's format: blob time, blob id,
/// content id, `created` or `deleted`, content time, pack, offset, packed length.
pub fn index_inspect(repo: &Repository, a: &InspectArgs) -> Result<()> {
    let blobs: Vec<kopr_blob::BlobMetadata> = if a.all {
        let mut v = Vec::new();
        for prefix in ["n", "x"] {
            v.extend(repo.storage().list_all(prefix)?);
        }
        v
    } else if a.active {
        repo.contents().index_blobs()?
    } else if !a.blobs.is_empty() {
        a.blobs
            .iter()
            .map(|id| {
                repo.storage()
                    .get_metadata(id)
                    .with_context(|| format!("unable to get metadata for {id}"))
            })
            .collect::<Result<_>>()?
    } else {
        bail!("must pass either --all, --active or provide a list of blob IDs to inspect");
    };
    let wanted = parse_ids(&a.content_ids)?;
    let mut out = std::io::stdout().lock();
    for bm in &blobs {
        inspect_one(repo, bm, &wanted, &mut out)?;
    }
    Ok(())
}

/// Kopia's precise timestamp: milliseconds and the zone's abbreviation.
fn precise(ts: chrono::DateTime<chrono::Utc>) -> String {
    let local = ts.with_timezone(&chrono::Local);
    if local.offset().local_minus_utc() == 0 {
        return ts.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string();
    }
    local.format("%Y-%m-%d %H:%M:%S%.3f %Z").to_string()
}

fn inspect_one(
    repo: &Repository,
    bm: &kopr_blob::BlobMetadata,
    wanted: &[ContentId],
    out: &mut dyn std::io::Write,
) -> Result<()> {
    // Index blobs only: a pack or session blob would not decrypt as one anyway.
    if !bm.id.starts_with('n') && !bm.id.starts_with('x') || bm.id.starts_with("xe") {
        return Ok(());
    }
    let index = repo
        .contents()
        .read_index_blob(bm)
        .with_context(|| format!("unable to recover index from {}", bm.id))?;
    let blob_ts = precise(bm.timestamp);
    for e in index.iter() {
        let e = e.with_context(|| format!("unable to recover index from {}", bm.id))?;
        if !wanted.is_empty() && !wanted.contains(&e.content_id) {
            continue;
        }
        let ts = chrono::DateTime::from_timestamp(e.timestamp_seconds, 0).unwrap_or_default();
        writeln!(
            out,
            "{blob_ts} {} {} {} {} {} {} {}",
            bm.id,
            e.content_id,
            if e.deleted { "deleted" } else { "created" },
            precise(ts),
            e.pack_blob_id,
            e.pack_offset,
            e.packed_length
        )?;
    }
    Ok(())
}

/// `index optimize`: in an epoch repository, advances the deletion watermark to now minus
/// `--drop-deleted-older-than` (Kopia does nothing else there: epochs are compacted by
/// maintenance); in a legacy repository, compacts the index blobs.
pub fn index_optimize(
    ctx: &Context,
    cfg: &ConnectionConfig,
    repo: &Repository,
    a: &OptimizeArgs,
) -> Result<()> {
    writable(ctx, cfg.read_only)?;
    if !a.drop_contents.is_empty() {
        parse_ids(&a.drop_contents)?;
        bail!("--drop-contents is not supported by kopr yet");
    }
    let drop_before = match &a.drop_deleted_older_than {
        None => None,
        Some(d) => {
            let nanos = super::repository::parse_duration_nanos(d)
                .map_err(|e| anyhow!("invalid --drop-deleted-older-than: {e}"))?;
            Some(repo.contents().clock().now() - chrono::Duration::nanoseconds(nanos))
        }
    };
    if repo.format().uses_epoch_manager() {
        let Some(ts) = drop_before else {
            eprintln!("Nothing to do: index blobs of this repository are compacted by maintenance (pass --drop-deleted-older-than to drop deleted entries).");
            return Ok(());
        };
        let moved = kopr_repo::maintenance::epoch_tasks::advance_deletion_watermark(repo, ts)
            .context("error optimizing indexes")?;
        if moved {
            eprintln!(
                "Deleted contents older than {} are dropped from the index.",
                super::format_timestamp(ts)
            );
        } else {
            eprintln!("The deletion watermark is already past that time.");
        }
        return Ok(());
    }
    let opts = kopr_repo::legacy_index::CompactOptions {
        max_small_blobs: a.max_small_blobs,
        all_indexes: a.all,
        drop_deleted_before: drop_before,
        disable_eventual_consistency_safety: false,
    };
    let st = kopr_repo::maintenance::compact_legacy_indexes(repo, &opts)
        .context("error optimizing indexes")?;
    eprintln!(
        "Compacted {} index blobs into {}, dropped {} deleted contents.",
        st.inputs, st.outputs, st.dropped_contents
    );
    Ok(())
}
