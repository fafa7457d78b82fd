//! Retention of diagnostic log blobs (`_log…`): newest first, kept while under the count,
//! total size and age limits.

use chrono::{DateTime, Utc};
use kopr_blob::BlobMetadata;
use kopr_format::maintenance::LogRetention;
use kopr_format::maintenance_stats::CleanupLogsStats;
use kopr_format::units;

use super::Observer;
use crate::error::Result;
use crate::repository::Repository;

/// Prefix of log blobs.
pub const LOG_BLOB_PREFIX: &str = "_log";

/// The log blobs that `retention` lets go at `now` (input in any order).
pub fn logs_to_delete(
    mut logs: Vec<BlobMetadata>,
    retention: &LogRetention,
    now: DateTime<Utc>,
) -> (Vec<BlobMetadata>, usize, u64) {
    logs.sort_by_key(|b| std::cmp::Reverse(b.timestamp));
    let mut kept_size = 0u64;
    let mut cut = logs.len();
    let max_age = chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    for (i, bm) in logs.iter().enumerate() {
        if retention.max_total_size > 0 && kept_size + bm.length > retention.max_total_size as u64 {
            cut = i;
            break;
        }
        if retention.max_count > 0 && i as i64 >= retention.max_count {
            cut = i;
            break;
        }
        if !retention.max_age.is_zero() && now - bm.timestamp > max_age {
            cut = i;
            break;
        }
        kept_size += bm.length;
    }
    let doomed = logs.split_off(cut);
    (doomed, cut, kept_size)
}

/// Deletes log blobs beyond the retention limits (Kopia's statistics of what it did).
pub fn cleanup_logs(
    repo: &Repository,
    retention: &LogRetention,
    obs: &dyn Observer,
) -> Result<CleanupLogsStats> {
    let now = repo.contents().clock().now();
    let all = repo.storage().list_all(LOG_BLOB_PREFIX)?;
    let (doomed, kept, kept_size) = logs_to_delete(all, &retention.or_default(), now);
    obs.debug(&format!(
        "Keeping {kept} logs of total size {}",
        units::bytes(kept_size as i64)
    ));
    for bm in &doomed {
        repo.storage().delete_blob(&bm.id)?;
    }
    obs.log(&format!("Cleaned up {} logs.", doomed.len()));
    let doomed_size: u64 = doomed.iter().map(|b| b.length).sum();
    Ok(CleanupLogsStats {
        to_delete_blob_count: doomed.len() as u64,
        to_delete_blob_size: doomed_size,
        deleted_blob_count: doomed.len() as u64,
        deleted_blob_size: doomed_size,
        retained_blob_count: kept as u64,
        retained_blob_size: kept_size,
    })
}
