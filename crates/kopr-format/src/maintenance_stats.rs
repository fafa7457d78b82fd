//! What each maintenance task did, as Kopia records it in a run's `extra` of the
//! `kopia.maintenance` schedule (`[{"kind":"snapshotGCStats","data":{…}}]`), and the one-line
//! summary `maintenance info` prints after `SUCCESS:`. Both tools read each other's records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::units::bytes;

/// Kopia's byte strings take unsigned counts.
fn b(n: u64) -> String {
    bytes(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A time as Go's `%v` prints it: `2026-11-29 23:52:12.070461197 +0000 UTC`.
pub fn go_time_string(t: &DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let ns = t.timestamp_subsec_nanos();
    if ns != 0 {
        let frac = format!("{ns:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

macro_rules! stats {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$fdoc])* #[serde(default)] pub $field: $ty,)*
        }
        impl $name {
            /// Kopia's `kind` of these statistics.
            pub const KIND: &'static str = $kind;
        }
    };
}

stats!(
    /// `snapshot-gc`.
    SnapshotGcStats, "snapshotGCStats" {
    /// Unused contents old enough to be marked.
    unreferenced_content_count: u64,
    /// Their bytes.
    unreferenced_content_size: u64,
    /// Marked deleted now.
    deleted_content_count: u64,
    /// Their bytes.
    deleted_content_size: u64,
    /// Unused but too young.
    unreferenced_recent_content_count: u64,
    /// Their bytes.
    unreferenced_recent_content_size: u64,
    /// In use.
    in_use_content_count: u64,
    /// Their bytes.
    in_use_content_size: u64,
    /// Manifest contents.
    in_use_system_content_count: u64,
    /// Their bytes.
    in_use_system_content_size: u64,
    /// Deleted contents in use again.
    recovered_content_count: u64,
    /// Their bytes.
    recovered_content_size: u64,
});

stats!(
    /// `quick-rewrite-contents`, `full-rewrite-contents`.
    RewriteContentsStats, "rewriteContentsStats" {
    /// Selected.
    to_rewrite_content_count: u64,
    /// Their bytes.
    to_rewrite_content_size: u64,
    /// Written anew.
    rewritten_content_count: u64,
    /// Their bytes.
    rewritten_content_size: u64,
    /// Kept where they are.
    retained_content_count: u64,
    /// Their bytes.
    retained_content_size: u64,
});

stats!(
    /// `quick-delete-blobs`, `full-delete-blobs`.
    DeleteUnreferencedPacksStats, "deleteUnreferencedPacksStats" {
    /// Unreferenced packs.
    unreferenced_pack_count: u64,
    /// Their bytes.
    unreferenced_total_size: u64,
    /// Deleted.
    deleted_pack_count: u64,
    /// Their bytes.
    deleted_total_size: u64,
    /// Kept by a safety rule.
    retained_pack_count: u64,
    /// Their bytes.
    retained_total_size: u64,
});

stats!(
    /// `compact-single-epoch`.
    CompactSingleEpochStats, "compactSingleEpochStats" {
    /// Index blobs compacted.
    superseded_index_blob_count: u64,
    /// Their bytes.
    superseded_index_total_size: u64,
    /// The epoch.
    epoch: u64,
});

stats!(
    /// `advance-epoch`.
    AdvanceEpochStats, "advanceEpochStats" {
    /// The write epoch after the task.
    current_epoch: u64,
    /// Whether it moved.
    was_advanced: bool,
});

stats!(
    /// `generate-epoch-range-index`.
    GenerateRangeCheckpointStats, "generateRangeCheckpointStats" {
    /// First epoch of the range.
    range_min_epoch: u64,
    /// Last epoch of the range.
    range_max_epoch: u64,
});

stats!(
    /// `cleanup-epoch-markers`.
    CleanupMarkersStats, "cleanupMarkersStats" {
    /// Epoch markers deleted.
    deleted_epoch_marker_blob_count: u64,
    /// Deletion watermarks deleted.
    deleted_watermark_blob_count: u64,
});

stats!(
    /// `cleanup-logs`.
    CleanupLogsStats, "cleanupLogsStats" {
    /// Logs beyond retention.
    to_delete_blob_count: u64,
    /// Their bytes.
    to_delete_blob_size: u64,
    /// Deleted.
    deleted_blob_count: u64,
    /// Their bytes.
    deleted_blob_size: u64,
    /// Kept.
    retained_blob_count: u64,
    /// Their bytes.
    retained_blob_size: u64,
});

stats!(
    /// `extend-blob-retention-time`.
    ExtendBlobRetentionStats, "extendBlobRetentionStats" {
    /// Blobs found.
    to_extend_blob_count: u64,
    /// Blobs extended.
    extended_blob_count: u64,
    /// The period, as Go prints a duration.
    retention_period: String,
});

/// `delete-superseded-epoch-indexes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupSupersededIndexesStats {
    /// Index blobs replaced before this time were deleted.
    #[serde(with = "crate::gotime")]
    pub max_replacement_time: DateTime<Utc>,
    /// Deleted.
    #[serde(default)]
    pub deleted_blob_count: u64,
    /// Their bytes.
    #[serde(default)]
    pub deleted_total_size: u64,
}

impl CleanupSupersededIndexesStats {
    /// Kopia's `kind` of these statistics.
    pub const KIND: &'static str = "cleanupSupersededIndexesStats";
}

/// `full-drop-deleted-content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactIndexesStats {
    /// Contents deleted before this time were dropped from the index.
    #[serde(with = "crate::gotime")]
    pub dropped_contents_deleted_before: DateTime<Utc>,
}

impl CompactIndexesStats {
    /// Kopia's `kind` of these statistics.
    pub const KIND: &'static str = "compactIndexesStats";
}

/// Reads recorded statistics; `null` (Kopia records it for tasks that had nothing to do) reads
/// as all zeros, as Go's decoder leaves the struct.
fn parse<T: for<'de> Deserialize<'de>>(data: &serde_json::Value) -> Option<T> {
    let data = if data.is_null() {
        serde_json::json!({})
    } else {
        data.clone()
    };
    serde_json::from_value(data).ok()
}

/// Kopia's summary of one recorded `{kind, data}`; `None` for a kind it does not know.
pub fn summary(kind: &str, data: &serde_json::Value) -> Option<String> {
    content_summary(kind, data).or_else(|| index_summary(kind, data))
}

/// The summaries of the content and blob tasks (GC, rewrite, pack deletion, logs, retention).
fn content_summary(kind: &str, data: &serde_json::Value) -> Option<String> {
    Some(match kind {
        SnapshotGcStats::KIND => {
            let s: SnapshotGcStats = parse(data)?;
            format!(
                "Found {}({}) unreferenced contents and marked {}({}) for deletion. Found {}({}) in-use contents and {}({}) in-use system contents. Retained {}({}) recent contents. Recovered {}({}) contents",
                s.unreferenced_content_count, s.unreferenced_content_size,
                s.deleted_content_count, s.deleted_content_size,
                s.in_use_content_count, s.in_use_content_size,
                s.in_use_system_content_count, s.in_use_system_content_size,
                s.unreferenced_recent_content_count, s.unreferenced_recent_content_size,
                s.recovered_content_count, s.recovered_content_size
            )
        }
        RewriteContentsStats::KIND => {
            let s: RewriteContentsStats = parse(data)?;
            format!(
                "Found {}({}) contents to rewrite and rewrote {}({}). Retained {}({}) contents from rewrite",
                s.to_rewrite_content_count, b(s.to_rewrite_content_size),
                s.rewritten_content_count, b(s.rewritten_content_size),
                s.retained_content_count, b(s.retained_content_size)
            )
        }
        DeleteUnreferencedPacksStats::KIND => {
            let s: DeleteUnreferencedPacksStats = parse(data)?;
            format!(
                "Found {}({}) unreferenced pack blobs to delete and deleted {}({}). Retained {}({}) unreferenced pack blobs.",
                s.unreferenced_pack_count, b(s.unreferenced_total_size),
                s.deleted_pack_count, b(s.deleted_total_size),
                s.retained_pack_count, b(s.retained_total_size)
            )
        }
        CleanupLogsStats::KIND => {
            let s: CleanupLogsStats = parse(data)?;
            format!(
                "Found {}({}) logs blobs for deletion and deleted {}({}) of them. Retained {}({}) log blobs.",
                s.to_delete_blob_count, b(s.to_delete_blob_size),
                s.deleted_blob_count, b(s.deleted_blob_size),
                s.retained_blob_count, b(s.retained_blob_size)
            )
        }
        ExtendBlobRetentionStats::KIND => {
            let s: ExtendBlobRetentionStats = parse(data)?;
            format!(
                "Blob retention extension found {} blobs and extended for {} blobs, retention period {}",
                s.to_extend_blob_count, s.extended_blob_count, s.retention_period
            )
        }
        _ => return None,
    })
}

/// The summaries of the epoch and index tasks.
fn index_summary(kind: &str, data: &serde_json::Value) -> Option<String> {
    Some(match kind {
        CompactSingleEpochStats::KIND => {
            let s: CompactSingleEpochStats = parse(data)?;
            format!(
                "Compacted {}({}) index blobs for epoch {}",
                s.superseded_index_blob_count,
                b(s.superseded_index_total_size),
                s.epoch
            )
        }
        AdvanceEpochStats::KIND => {
            let s: AdvanceEpochStats = parse(data)?;
            if s.was_advanced {
                format!("Advanced epoch to {}", s.current_epoch)
            } else {
                format!("Stayed at epoch {}", s.current_epoch)
            }
        }
        GenerateRangeCheckpointStats::KIND => {
            let s: GenerateRangeCheckpointStats = parse(data)?;
            format!(
                "Generated a range checkpoint from epoch {} to {} inclusive",
                s.range_min_epoch, s.range_max_epoch
            )
        }
        CleanupMarkersStats::KIND => {
            let s: CleanupMarkersStats = parse(data)?;
            format!(
                "Cleaned up {} epoch markers and {} deletion watermarks",
                s.deleted_epoch_marker_blob_count, s.deleted_watermark_blob_count
            )
        }
        CleanupSupersededIndexesStats::KIND => {
            let s: CleanupSupersededIndexesStats = parse(data)?;
            format!(
                "Cleaned up {}({}) superseded index blobs, max replacement time {}",
                s.deleted_blob_count,
                b(s.deleted_total_size),
                go_time_string(&s.max_replacement_time)
            )
        }
        CompactIndexesStats::KIND => {
            let s: CompactIndexesStats = parse(data)?;
            format!(
                "Dropped contents deleted before {}",
                go_time_string(&s.dropped_contents_deleted_before)
            )
        }
        _ => return None,
    })
}

/// What `maintenance info` prints for a successful run with these `extra` records:
/// `SUCCESS`, then `: ` and the summaries of the kinds it knows.
pub fn success_message(extra: Option<&serde_json::Value>) -> String {
    let mut msg = String::new();
    for x in extra.and_then(|e| e.as_array()).into_iter().flatten() {
        let kind = x.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
        if let Some(s) = x.get("data").and_then(|d| summary(kind, d)) {
            msg.push_str(&s);
        }
    }
    if msg.is_empty() {
        "SUCCESS".into()
    } else {
        format!("SUCCESS: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Messages as Kopia 0.23.1 printed them for the `default` fixture's runs.
    #[test]
    fn summaries_read_like_kopias() {
        let extra = json!([{"kind": "cleanupLogsStats", "data": {"toDeleteBlobCount":0,"toDeleteBlobSize":0,"deletedBlobCount":0,"deletedBlobSize":0,"retainedBlobCount":6,"retainedBlobSize":9000}}]);
        assert_eq!(
            success_message(Some(&extra)),
            "SUCCESS: Found 0(0 B) logs blobs for deletion and deleted 0(0 B) of them. Retained 6(9 KB) log blobs."
        );
        let t = DateTime::parse_from_rfc3339("2026-11-29T23:52:12.070461197Z")
            .unwrap()
            .with_timezone(&Utc);
        let data = serde_json::to_value(CleanupSupersededIndexesStats {
            max_replacement_time: t,
            deleted_blob_count: 0,
            deleted_total_size: 0,
        })
        .unwrap();
        assert_eq!(
            summary(CleanupSupersededIndexesStats::KIND, &data).unwrap(),
            "Cleaned up 0(0 B) superseded index blobs, max replacement time 2026-11-29 23:52:12.070461197 +0000 UTC"
        );
        let gc = json!({"unreferencedContentCount":5,"unreferencedContentSize":305066,"deletedContentCount":5,"deletedContentSize":305066,"inUseContentCount":52,"inUseContentSize":2376136,"inUseSystemContentCount":6,"inUseSystemContentSize":3019});
        assert_eq!(
            summary("snapshotGCStats", &gc).unwrap(),
            "Found 5(305066) unreferenced contents and marked 5(305066) for deletion. Found 52(2376136) in-use contents and 6(3019) in-use system contents. Retained 0(0) recent contents. Recovered 0(0) contents"
        );
        let adv = json!({"currentEpoch": 0, "wasAdvanced": false});
        assert_eq!(
            summary("advanceEpochStats", &adv).unwrap(),
            "Stayed at epoch 0"
        );
        assert_eq!(success_message(None), "SUCCESS");
        // Kopia records `"data":null` when a task had nothing to do.
        assert_eq!(
            success_message(Some(
                &json!([{"data": null, "kind": "compactSingleEpochStats"}])
            )),
            "SUCCESS: Compacted 0(0 B) index blobs for epoch 0"
        );
        assert_eq!(
            success_message(Some(&json!([{"kind": "unknownStats", "data": {}}]))),
            "SUCCESS"
        );
        let whole = go_time_string(&DateTime::from_timestamp(1_796_010_732, 0).unwrap());
        assert_eq!(whole, "2026-11-30 03:52:12 +0000 UTC");
    }
}
