//! Index maintenance for epoch-managed repositories: compacting settled epochs, advancing the
//! write epoch, range checkpoints, the deletion watermark, and removing markers and index
//! blobs that compactions have superseded.

use chrono::{DateTime, Duration, Utc};
use kopr_blob::{BlobMetadata, PutOptions};

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
/// Returns the epoch compacted.
pub fn compact_single_epoch(repo: &Repository, obs: &dyn Observer) -> Result<Option<i64>> {
    let s = fresh_state(repo)?;
    let epoch = oldest_uncompacted_epoch(&s)?;
    if !s.is_settled(epoch) {
        obs.debug(&format!(
            "there are no uncompacted epochs eligible for compaction (oldest uncompacted epoch: {epoch})"
        ));
        return Ok(None);
    }
    if s.single_epoch_compactions.contains_key(&epoch) {
        return Ok(None);
    }
    let blobs = repo
        .contents()
        .epochs()
        .index_blobs_of_epochs(&s, epoch, epoch)?;
    if blobs.is_empty() {
        return Ok(None);
    }
    obs.debug(&format!(
        "compacting {} index blobs of epoch {epoch}",
        blobs.len()
    ));
    repo.contents()
        .compact_index_blobs(&blobs, &compacted_epoch_prefix(epoch))?;
    repo.contents().epochs().invalidate();
    Ok(Some(epoch))
}

/// Writes the next epoch marker when the current epoch is due.
pub fn advance_epoch(repo: &Repository) -> Result<bool> {
    repo.contents().epochs().invalidate();
    repo.contents().epochs().maybe_advance_write_epoch()
}

/// Compacts all settled epochs after the last range checkpoint into one `xr<min>_<max>_…`
/// set, once there are `full_checkpoint_frequency` of them.
pub fn generate_range_checkpoint(
    repo: &Repository,
    obs: &dyn Observer,
) -> Result<Option<(i64, i64)>> {
    let s = fresh_state(repo)?;
    let latest = s.last_settled_epoch();
    if latest < 0 {
        obs.debug("not generating range checkpoint");
        return Ok(None);
    }
    let first = s.range_checkpoints.last().map_or(0, |r| r.max_epoch + 1);
    let freq = repo
        .format()
        .config
        .epoch_parameters
        .full_checkpoint_frequency;
    if latest - first < freq {
        obs.debug("not generating range checkpoint");
        return Ok(None);
    }
    let blobs = repo
        .contents()
        .epochs()
        .index_blobs_of_epochs(&s, first, latest)?;
    repo.contents()
        .compact_index_blobs(&blobs, &range_checkpoint_prefix(first, latest))?;
    repo.contents().epochs().invalidate();
    Ok(Some((first, latest)))
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
/// replaced long enough ago. Returns `(markers, watermarks)` deleted.
pub fn cleanup_markers(repo: &Repository) -> Result<(usize, usize)> {
    let s = fresh_state(repo)?;
    let Some(max_time) = max_cleanup_time(&s) else {
        return Ok((0, 0));
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
    Ok((markers.len(), watermarks.len()))
}

/// Deletes `xn` index blobs of epochs whose single-epoch compaction was written long enough
/// ago. Returns `(count, bytes)` deleted.
pub fn cleanup_superseded_indexes(repo: &Repository) -> Result<(usize, u64)> {
    let s = fresh_state(repo)?;
    let Some(max_time) = max_cleanup_time(&s) else {
        return Ok((0, 0));
    };
    let max_replacement = max_time - cleanup_margin(repo);
    let mut deleted = (0, 0);
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
    Ok(deleted)
}
