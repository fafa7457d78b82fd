//! Index maintenance for epoch-managed repositories: compacting settled epochs, advancing the
//! write epoch, range checkpoints, the deletion watermark, and removing markers and index
//! blobs that compactions have superseded.

use chrono::{DateTime, Duration, Utc};
use kopr_blob::{BlobMetadata, PutOptions};
use kopr_format::maintenance_stats::{
    AdvanceEpochStats, CleanupMarkersStats, CleanupSupersededIndexesStats, CompactSingleEpochStats,
    GenerateRangeCheckpointStats,
};

use super::Observer;
use crate::epoch::{
    compacted_epoch_prefix, epoch_number_from_blob_id, range_checkpoint_prefix, EpochState,
    DELETION_WATERMARK_PREFIX, UNCOMPACTED_PREFIX,
};
use crate::error::{RepoError, Result};
use crate::repository::Repository;

fn fresh_state(repo: &Repository) -> Result<EpochState> {
    repo.contents().epochs().invalidate();
    repo.contents().epochs().current()
}

/// The oldest epoch without a single-epoch compaction (after the range checkpoints).
pub fn oldest_uncompacted_epoch(s: &EpochState) -> Result<i64> {
    let mut candidate = 0;
    if let (Some(first), Some(last)) = (s.range_checkpoints.first(), s.range_checkpoints.last()) {
        if first.min_epoch != 0 {
            return Err(RepoError::Invalid(format!(
                "invalid compacted epoch range: epoch 0 not included in range compactions (lowest is {})",
                first.min_epoch
            )));
        }
        candidate = last.max_epoch + 1;
    }
    let mut compacted: Vec<i64> = s
        .single_epoch_compactions
        .keys()
        .copied()
        .filter(|&e| e >= candidate)
        .collect();
    compacted.sort_unstable();
    for e in compacted {
        if e == candidate {
            candidate += 1;
        } else if e > candidate {
            break;
        }
    }
    Ok(candidate)
}

/// Compacts the oldest settled epoch that has no compaction yet into `xs<epoch>_…` blobs.
/// Returns what was compacted (Kopia's statistics: nothing, for the oldest uncompacted epoch,
/// when none is due).
pub fn compact_single_epoch(
    repo: &Repository,
    obs: &dyn Observer,
) -> Result<CompactSingleEpochStats> {
    let s = fresh_state(repo)?;
    let epoch = oldest_uncompacted_epoch(&s)?;
    let mut stats = CompactSingleEpochStats {
        epoch: epoch.max(0) as u64,
        ..Default::default()
    };
    if !s.is_settled(epoch) {
        obs.debug(&format!(
            "there are no uncompacted epochs eligible for compaction (oldest uncompacted epoch: {epoch})"
        ));
        return Ok(stats);
    }
    if s.single_epoch_compactions.contains_key(&epoch) {
        return Ok(stats);
    }
    let blobs = repo
        .contents()
        .epochs()
        .index_blobs_of_epochs(&s, epoch, epoch)?;
    if blobs.is_empty() {
        return Ok(stats);
    }
    obs.debug(&format!(
        "compacting {} index blobs of epoch {epoch}",
        blobs.len()
    ));
    repo.contents()
        .compact_index_blobs(&blobs, &compacted_epoch_prefix(epoch))?;
    repo.contents().epochs().invalidate();
    stats.superseded_index_blob_count = blobs.len() as u64;
    stats.superseded_index_total_size = blobs.iter().map(|b| b.length).sum();
    Ok(stats)
}

/// Writes the next epoch marker when the current epoch is due.
pub fn advance_epoch(repo: &Repository) -> Result<AdvanceEpochStats> {
    repo.contents().epochs().invalidate();
    let was_advanced = repo.contents().epochs().maybe_advance_write_epoch()?;
    Ok(AdvanceEpochStats {
        current_epoch: fresh_state(repo)?.write_epoch.max(0) as u64,
        was_advanced,
    })
}

/// Compacts all settled epochs after the last range checkpoint into one `xr<min>_<max>_…`
/// set, once there are `full_checkpoint_frequency` of them.
/// The statistics name the range (the one it would cover when nothing was generated).
pub fn generate_range_checkpoint(
    repo: &Repository,
    obs: &dyn Observer,
) -> Result<GenerateRangeCheckpointStats> {
    let s = fresh_state(repo)?;
    let latest = s.last_settled_epoch();
    let first = s.range_checkpoints.last().map_or(0, |r| r.max_epoch + 1);
    let stats = GenerateRangeCheckpointStats {
        range_min_epoch: first.max(0) as u64,
        range_max_epoch: latest.max(first).max(0) as u64,
    };
    if latest < 0 {
        obs.debug("not generating range checkpoint");
        return Ok(stats);
    }
    let freq = repo
        .format()
        .config
        .epoch_parameters
        .full_checkpoint_frequency;
    if latest - first < freq {
        obs.debug("not generating range checkpoint");
        return Ok(stats);
    }
    let blobs = repo
        .contents()
        .epochs()
        .index_blobs_of_epochs(&s, first, latest)?;
    repo.contents()
        .compact_index_blobs(&blobs, &range_checkpoint_prefix(first, latest))?;
    repo.contents().epochs().invalidate();
    Ok(stats)
}

/// Moves the deletion watermark to `ts` (never backwards): deleted index entries at or
/// before it are forgotten. Returns whether it moved.
pub fn advance_deletion_watermark(repo: &Repository, ts: DateTime<Utc>) -> Result<bool> {
    let s = fresh_state(repo)?;
    if s.deletion_watermark.is_some_and(|w| ts < w) {
        return Ok(false);
    }
    let id = format!("{DELETION_WATERMARK_PREFIX}{}", ts.timestamp());
    repo.storage()
        .put_blob(&id, b"deletion-watermark", &PutOptions::default())?;
    repo.contents().epochs().invalidate();
    repo.contents().refresh()?;
    Ok(true)
}

fn max_cleanup_time(s: &EpochState) -> Option<DateTime<Utc>> {
    s.uncompacted
        .values()
        .flat_map(|v| v.iter().map(|b| b.timestamp))
        .max()
}

fn cleanup_margin(repo: &Repository) -> Duration {
    Duration::nanoseconds(
        repo.format()
            .config
            .epoch_parameters
            .cleanup_safety_margin_nanos,
    )
}

/// Deletes epoch markers older than the previous epoch and watermarks that a newer one
/// replaced long enough ago.
pub fn cleanup_markers(repo: &Repository) -> Result<CleanupMarkersStats> {
    let s = fresh_state(repo)?;
    let Some(max_time) = max_cleanup_time(&s) else {
        return Ok(CleanupMarkersStats::default());
    };
    let max_replacement = max_time - cleanup_margin(repo);
    let markers: Vec<&BlobMetadata> = s
        .epoch_markers
        .iter()
        .filter(|b| epoch_number_from_blob_id(&b.id).is_some_and(|n| n < s.write_epoch - 1))
        .collect();
    let watermarks: Vec<&BlobMetadata> = s
        .watermark_blobs
        .iter()
        .filter(|b| {
            let ts = crate::epoch::deletion_watermark_from_blob_id(&b.id);
            ts.is_some() && ts != s.deletion_watermark && b.timestamp < max_replacement
        })
        .collect();
    for b in markers.iter().chain(watermarks.iter()) {
        repo.storage().delete_blob(&b.id)?;
    }
    repo.contents().epochs().invalidate();
    Ok(CleanupMarkersStats {
        deleted_epoch_marker_blob_count: markers.len() as u64,
        deleted_watermark_blob_count: watermarks.len() as u64,
    })
}

/// Deletes `xn` index blobs of epochs whose single-epoch compaction was written long enough
/// ago (Kopia's statistics: how many, their bytes and that time; with no uncompacted blob
/// the time is now less the cleanup margin).
pub fn cleanup_superseded_indexes(repo: &Repository) -> Result<CleanupSupersededIndexesStats> {
    let s = fresh_state(repo)?;
    let margin = cleanup_margin(repo);
    let Some(max_time) = max_cleanup_time(&s) else {
        return Ok(CleanupSupersededIndexesStats {
            max_replacement_time: repo.contents().clock().now() - margin,
            deleted_blob_count: 0,
            deleted_total_size: 0,
        });
    };
    let max_replacement = max_time - margin;
    let mut deleted = (0u64, 0u64);
    for bm in repo.storage().list_all(UNCOMPACTED_PREFIX)? {
        let Some(epoch) = epoch_number_from_blob_id(&bm.id) else {
            continue;
        };
        let written = s
            .single_epoch_compactions
            .get(&epoch)
            .and_then(|set| set.iter().map(|b| b.timestamp).max());
        if written.is_some_and(|t| t < max_replacement) {
            repo.storage().delete_blob(&bm.id)?;
            deleted.0 += 1;
            deleted.1 += bm.length;
        }
    }
    repo.contents().epochs().invalidate();
    Ok(CleanupSupersededIndexesStats {
        max_replacement_time: max_replacement,
        deleted_blob_count: deleted.0,
        deleted_total_size: deleted.1,
    })
}
