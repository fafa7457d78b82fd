//! Maintenance, with Kopia's tasks, order, safety rules and schedule.
//!
//! A *full* cycle collects garbage: snapshot GC marks contents no live snapshot uses, a later
//! cycle forgets them (deletion watermark) once two GC runs far enough apart agree, and pack
//! blobs nothing references any more are then deleted. A *quick* cycle keeps metadata compact:
//! short `q` packs are rewritten, orphaned packs deleted, settled epochs compacted. Every task's
//! run is recorded in the schedule blob `kopia.maintenance`, which Kopia reads too, and
//! [`explain`] turns the same rules into an answer to "when will this space come back?".

pub mod blobs;
mod cycle;
pub mod epoch_tasks;
pub mod explain;
pub mod gc;
pub mod logs;
pub mod params;
pub mod rewrite;
pub mod safety;
pub mod schedule;

use chrono::{DateTime, Duration, Utc};
use kopr_format::maintenance::{MaintenanceParams, RunInfo, Schedule};
use kopr_format::maintenance_stats::{
    AdvanceEpochStats, CleanupLogsStats, CleanupMarkersStats, CleanupSupersededIndexesStats,
    CompactIndexesStats, CompactSingleEpochStats, DeleteUnreferencedPacksStats,
    ExtendBlobRetentionStats, GenerateRangeCheckpointStats, RewriteContentsStats, SnapshotGcStats,
};
use kopr_format::pack::{PACK_PREFIX_DATA, PACK_PREFIX_METADATA};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::repository::Repository;
use crate::session::SESSION_PREFIX;
use cycle::Cycle;
pub use safety::SafetyParameters;

/// Task names as Kopia records them in the schedule.
pub mod task {
    /// Snapshot garbage collection.
    pub const SNAPSHOT_GC: &str = "snapshot-gc";
    /// Deleting unreferenced `q` packs.
    pub const DELETE_BLOBS_QUICK: &str = "quick-delete-blobs";
    /// Deleting unreferenced `p`, `q` and `s` blobs.
    pub const DELETE_BLOBS_FULL: &str = "full-delete-blobs";
    /// Rewriting contents of short `q` packs.
    pub const REWRITE_QUICK: &str = "quick-rewrite-contents";
    /// Rewriting contents of all short packs.
    pub const REWRITE_FULL: &str = "full-rewrite-contents";
    /// Forgetting deleted contents (moving the deletion watermark).
    pub const DROP_DELETED_FULL: &str = "full-drop-deleted-content";
    /// Index compaction (non-epoch repositories).
    pub const INDEX_COMPACTION: &str = "index-compaction";
    /// Extending object-lock retention.
    pub const EXTEND_RETENTION: &str = "extend-blob-retention-time";
    /// Deleting old log blobs.
    pub const CLEANUP_LOGS: &str = "cleanup-logs";
    /// Writing the next epoch marker.
    pub const EPOCH_ADVANCE: &str = "advance-epoch";
    /// Deleting index blobs that compactions replaced.
    pub const EPOCH_DELETE_SUPERSEDED: &str = "delete-superseded-epoch-indexes";
    /// Deleting old epoch markers and watermarks.
    pub const EPOCH_CLEANUP_MARKERS: &str = "cleanup-epoch-markers";
    /// Range checkpoints.
    pub const EPOCH_GENERATE_RANGE: &str = "generate-epoch-range-index";
    /// Single-epoch compaction.
    pub const EPOCH_COMPACT_SINGLE: &str = "compact-single-epoch";
}

/// The largest difference between the local clock and the storage's that maintenance accepts.
pub fn max_clock_skew() -> Duration {
    Duration::minutes(5)
}

/// Where maintenance reports to; tests also use it to act between tasks.
pub trait Observer: Sync {
    /// A line users grep for.
    fn log(&self, msg: &str);
    /// Detail for `--log-level=debug`.
    fn debug(&self, _msg: &str) {}
    /// Called before each task starts; an error stops the cycle there.
    fn before_task(&self, _task: &str) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn log(&self, _msg: &str) {}
}

/// Quick or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Metadata and index upkeep.
    Quick,
    /// Garbage collection of contents and packs.
    Full,
}

impl Mode {
    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// How to run maintenance.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Which cycle.
    pub mode: Mode,
    /// Safety margins.
    pub safety: SafetyParameters,
    /// Run even when this user does not own maintenance.
    pub force: bool,
}

/// Whether a recorded rewrite run may have orphaned packs: Kopia-written runs without
/// statistics count; runs whose statistics show nothing rewritten do not.
pub fn rewrite_orphaned_packs(r: &RunInfo) -> bool {
    let Some(extra) = r.extra.as_ref().and_then(|e| e.as_array()) else {
        return true;
    };
    for x in extra {
        if x.get("kind").and_then(|k| k.as_str()) == Some(RewriteContentsStats::KIND) {
            let n = x
                .get("data")
                .and_then(|d| d.get("rewrittenContentCount"))
                .and_then(|n| n.as_u64());
            return n != Some(0);
        }
    }
    true
}

fn latest_end(s: &Schedule, tasks: &[&str], only_orphaning: bool) -> Option<DateTime<Utc>> {
    tasks
        .iter()
        .flat_map(|t| s.runs_of(t))
        .filter(|r| r.success && (!only_orphaning || rewrite_orphaned_packs(r)))
        .map(|r| r.end)
        .max()
}

fn latest_rewrite_end(s: &Schedule, tasks: &[&str]) -> Option<DateTime<Utc>> {
    latest_end(s, tasks, true)
}

fn latest_blob_delete(s: &Schedule) -> Option<DateTime<Utc>> {
    latest_end(
        s,
        &[task::DELETE_BLOBS_FULL, task::DELETE_BLOBS_QUICK],
        false,
    )
}

/// Whether a rewrite may start: the previous one's orphans must have been deleted first.
pub fn should_rewrite(s: &Schedule, tasks: &[&str], safety: &SafetyParameters) -> bool {
    let Some(rewrite) = latest_rewrite_end(s, tasks) else {
        return true;
    };
    if safety.min_rewrite_to_orphan_deletion_delay.is_zero() {
        return true;
    }
    latest_blob_delete(s).is_some_and(|d| d >= rewrite)
}

/// The earliest time orphaned blobs may be deleted (`None`: any time).
pub fn next_blob_delete_time(s: &Schedule, safety: &SafetyParameters) -> Option<DateTime<Utc>> {
    latest_rewrite_end(s, &[task::REWRITE_FULL, task::REWRITE_QUICK])
        .map(|t| t + safety.min_rewrite_to_orphan_deletion_delay)
}

fn had_recent_full_rewrite(s: &Schedule) -> bool {
    latest_rewrite_end(s, &[task::REWRITE_FULL]) >= latest_rewrite_end(s, &[task::REWRITE_QUICK])
}

/// The time before which deleted contents may be forgotten, from the history of successful
/// GC runs: the start of the newest run that ended more than `MarginBetweenSnapshotGC`
/// before the latest run started, minus `DropContentFromIndexExtraMargin`.
pub fn find_safe_drop_time(
    gc_runs: &[RunInfo],
    safety: &SafetyParameters,
) -> Option<DateTime<Utc>> {
    let mut ok: Vec<&RunInfo> = gc_runs.iter().filter(|r| r.success).collect();
    if ok.len() <= 1 {
        return None;
    }
    ok.sort_by_key(|r| std::cmp::Reverse(r.start));
    let newest = ok[0].start;
    ok[1..]
        .iter()
        .find(|r| newest - r.end > safety.margin_between_snapshot_gc)
        .map(|r| r.start - safety.drop_content_from_index_extra_margin)
}

/// Go's rounding of a duration for "(59m59s left)".
fn left(d: Duration) -> String {
    kopr_format::units::duration(Duration::seconds(d.num_seconds().max(0)))
}

/// Kopia's quick index compaction threshold (`maxSmallBlobsForIndexCompaction`).
pub const LEGACY_MAX_SMALL_BLOBS: usize = 8;

/// Runs a legacy index compaction and reloads the index.
pub fn compact_legacy_indexes(
    repo: &Repository,
    opts: &crate::legacy_index::CompactOptions,
) -> Result<crate::legacy_index::CompactStats> {
    let contents = repo.contents();
    let Some(legacy) = contents.legacy_indexes() else {
        return Err(RepoError::Refused(
            "index compaction of legacy index blobs needs a repository without the epoch manager"
                .into(),
        ));
    };
    let stats = legacy.compact(contents.index_cache(), opts)?;
    contents.refresh()?;
    Ok(stats)
}

/// Blob prefixes whose object-lock retention maintenance extends (Kopia's locking prefixes).
pub use kopr_format::repository_blob::LOCKING_PREFIXES;

/// The least margin between the retention period and the full cycle interval.
pub fn min_retention_maintenance_diff() -> Duration {
    Duration::hours(24)
}

/// Checks that locks outlive the time until the next full cycle extends them.
pub fn check_extend_retention(repo: &Repository, params: &MaintenanceParams) -> Result<()> {
    if !params.extend_object_locks {
        return Ok(());
    }
    let cfg = &repo.format().blob_config;
    if cfg.retention_mode.is_empty() || cfg.retention_period_nanos <= 0 {
        return Err(RepoError::Refused(
            "object lock extension needs a repository created with --retention-mode and --retention-period".into(),
        ));
    }
    let period = Duration::nanoseconds(cfg.retention_period_nanos);
    if period - chrono_dur(params.full.interval) < min_retention_maintenance_diff() {
        return Err(RepoError::Refused(format!(
            "The repo RetentionPeriod must be {} greater than the Full Maintenance interval {} {}",
            kopr_format::units::duration(min_retention_maintenance_diff()),
            kopr_format::units::duration(period),
            kopr_format::units::duration(chrono_dur(params.full.interval))
        )));
    }
    Ok(())
}

/// Extends the object-lock retention of every locking blob by the repository's period.
/// Returns how many blobs were extended.
pub fn extend_retention(repo: &Repository, obs: &dyn Observer) -> Result<u64> {
    let cfg = &repo.format().blob_config;
    if cfg.retention_mode.is_empty() || cfg.retention_period_nanos <= 0 {
        obs.log("Object lock retention is disabled.");
        return Ok(0);
    }
    let period = std::time::Duration::from_nanos(cfg.retention_period_nanos as u64);
    obs.log("Extending retention time for blobs...");
    let mut n = 0;
    let mut failed = 0;
    for prefix in LOCKING_PREFIXES {
        for bm in repo.storage().list_all(prefix)? {
            match repo
                .storage()
                .extend_retention(&bm.id, &cfg.retention_mode, period)
            {
                Ok(()) => n += 1,
                Err(e) => {
                    obs.debug(&format!("unable to extend retention of {}: {e}", bm.id));
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        return Err(RepoError::Invalid(format!(
            "Failed to extend {failed} blobs"
        )));
    }
    obs.log(&format!("Extended retention time of {n} blobs."));
    Ok(n)
}

/// Checks that this user may run maintenance.
pub fn check_owner(params: &MaintenanceParams, user: &str) -> Result<()> {
    if params.owner == user {
        return Ok(());
    }
    Err(RepoError::NotMaintenanceOwner(if params.owner.is_empty() {
        "(none set; use 'maintenance set --owner=me')".into()
    } else {
        params.owner.clone()
    }))
}

/// Runs one maintenance cycle.
pub fn run(repo: &Repository, opts: &RunOptions, obs: &dyn Observer) -> Result<()> {
    repo.contents().refresh()?;
    repo.manifests().invalidate();
    let params = params::get_params(repo)?;
    if !opts.force {
        check_owner(&params, &params::this_user(repo))?;
    }
    let now = repo.contents().clock().now();
    let mut s = schedule::get_schedule(repo)?;
    if opts.mode == Mode::Full {
        s.next_full = Some(now + chrono_dur(params.full.interval));
    }
    s.next_quick = Some(now + chrono_dur(params.quick.interval));
    schedule::set_schedule(repo, &s)?;
    let start = schedule::schedule_blob_time(repo)?;
    let skew = (start - now).abs();
    if skew > max_clock_skew() {
        return Err(RepoError::Refused(format!(
            "clock skew detected: local clock is out of sync with repository timestamp by more than allowed 5m0s (local: {now} repository: {start} skew: {}). Refusing to run maintenance.",
            kopr_format::units::duration(skew)
        )));
    }
    obs.log(&format!("Running {} maintenance...", opts.mode.name()));
    let mut cycle = Cycle {
        repo,
        params,
        safety: opts.safety,
        start,
        obs,
        schedule: s,
        latest_mark: None,
    };
    let result = match opts.mode {
        Mode::Full => cycle.full(),
        Mode::Quick => cycle.quick(),
    };
    obs.log(&format!("Finished {} maintenance.", opts.mode.name()));
    result
}

/// A std duration as chrono's (saturating).
pub fn chrono_dur(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// Which cycle is due at `now`, if any (for `maintenance run` without `--full` in auto mode
/// and for `maintenance info`).
pub fn due_mode(params: &MaintenanceParams, s: &Schedule, now: DateTime<Utc>) -> Option<Mode> {
    if params.full.enabled && s.next_full.is_none_or(|t| now >= t) {
        return Some(Mode::Full);
    }
    if params.quick.enabled && s.next_quick.is_none_or(|t| now >= t) {
        return Some(Mode::Quick);
    }
    None
}
