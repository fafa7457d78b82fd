//! Maintenance, with Kopia's tasks, order, safety rules and schedule.
//!
//! A *full* cycle collects garbage: snapshot GC marks contents no live snapshot uses, a later
//! cycle forgets them (deletion watermark) once two GC runs far enough apart agree, and pack
//! blobs nothing references any more are then deleted. A *quick* cycle keeps metadata compact:
//! short `q` packs are rewritten, orphaned packs deleted, settled epochs compacted. Every task's
//! run is recorded in the schedule blob `kopia.maintenance`, which Kopia reads too, and
//! [`explain`] turns the same rules into an answer to "when will this space come back?".

pub mod blobs;
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

struct Cycle<'a> {
    repo: &'a Repository,
    params: MaintenanceParams,
    safety: SafetyParameters,
    start: DateTime<Utc>,
    obs: &'a dyn Observer,
    schedule: Schedule,
    /// The newest deletion mark on an unused content this cycle's GC saw or wrote.
    latest_mark: Option<DateTime<Utc>>,
}

impl Cycle<'_> {
    fn now(&self) -> DateTime<Utc> {
        self.repo.contents().clock().now()
    }

    /// Runs one task and records it (Kopia's `ReportRun`).
    fn task<T: Serialize>(
        &mut self,
        name: &str,
        kind: Option<&str>,
        f: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<T> {
        self.obs.before_task(name)?;
        let start = self.now();
        let result = f(self);
        let end = self.now();
        let extra = match (&result, kind) {
            (Ok(stats), Some(kind)) => serde_json::to_value(stats)
                .ok()
                .map(|data| serde_json::json!([{ "kind": kind, "data": data }])),
            _ => None,
        };
        let info = RunInfo {
            start,
            end,
            success: result.is_ok(),
            error: result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            extra,
        };
        self.schedule.report_run(name, info.clone());
        if let Err(e) = schedule::record_run(self.repo, name, info) {
            self.obs.log(&format!("unable to report run: {e}"));
        }
        result
    }

    fn delete_blobs(&mut self, name: &str, prefixes: &[&str]) -> Result<()> {
        self.task(name, Some(DeleteUnreferencedPacksStats::KIND), |c| {
            blobs::delete_unreferenced(c.repo, prefixes, c.start, &c.safety, c.obs)
        })?;
        Ok(())
    }

    fn maybe_delete_blobs(&mut self, quick: bool) -> Result<()> {
        let now = self.now();
        match next_blob_delete_time(&self.schedule, &self.safety) {
            Some(t) if now < t => {
                self.obs.log(&format!(
                    "Skipping blob deletion because not enough time has passed yet ({} left)",
                    left(t - now)
                ));
                Ok(())
            }
            _ if !quick || had_recent_full_rewrite(&self.schedule) => self.delete_blobs(
                task::DELETE_BLOBS_FULL,
                &[PACK_PREFIX_DATA, PACK_PREFIX_METADATA, SESSION_PREFIX],
            ),
            _ => self.delete_blobs(task::DELETE_BLOBS_QUICK, &[PACK_PREFIX_METADATA]),
        }
    }

    fn rewrite(&mut self, name: &str, prefix: &'static str, only_prefixed: bool) -> Result<()> {
        let tasks = [task::REWRITE_FULL, task::REWRITE_QUICK];
        let gate: &[&str] = if name == task::REWRITE_FULL {
            &tasks[..1]
        } else {
            &tasks
        };
        if !should_rewrite(&self.schedule, gate, &self.safety) {
            self.obs.debug(
                "Previous content rewrite has not been finalized yet, waiting until the next blob deletion.",
            );
            return Ok(());
        }
        // kopr's partly-unused rule belongs to the full rewrite only: a quick cycle runs no GC.
        let max_unused = if name == task::REWRITE_FULL {
            self.params.effective_max_unused_percent()
        } else {
            100
        };
        self.task(name, Some(RewriteContentsStats::KIND), |c| {
            rewrite::rewrite_short_packs(
                c.repo,
                prefix,
                only_prefixed,
                max_unused,
                &c.safety,
                c.obs,
            )
        })?;
        Ok(())
    }

    fn drop_deleted(&mut self) -> Result<()> {
        let safe = if self.safety.require_two_gc_cycles {
            find_safe_drop_time(self.schedule.runs_of(task::SNAPSHOT_GC), &self.safety)
        } else {
            // A mark is stamped one second past its content's own time when both fall in the
            // same second, so marks can run ahead of the clock; the drop time covers every
            // mark on an unused content, so one cycle forgets all of them.
            Some(self.latest_mark.map_or(self.now(), |m| m.max(self.now())))
        };
        let Some(safe) = safe else {
            self.obs.log("Not forgetting deleted contents yet since not enough time has passed since previous successful Snapshot GC. Will try again next time.");
            return Ok(());
        };
        self.obs
            .debug(&format!("Found safe time to drop indexes: {safe}"));
        if self.repo.contents().legacy_indexes().is_some() {
            // Without the epoch manager, forgetting is a compaction of every index blob that
            // leaves out deleted entries older than the safe time (Kopia's DropDeletedBefore,
            // a strict "before"; marks stamped at the safe second itself are included here as
            // the epoch watermark includes them).
            let before = if self.safety.require_two_gc_cycles {
                safe
            } else {
                safe + Duration::seconds(1)
            };
            self.task(
                task::DROP_DELETED_FULL,
                Some(CompactIndexesStats::KIND),
                |c| {
                    compact_legacy_indexes(
                        c.repo,
                        &crate::legacy_index::CompactOptions {
                            all_indexes: true,
                            drop_deleted_before: Some(before),
                            disable_eventual_consistency_safety: c
                                .safety
                                .disable_eventual_consistency_safety,
                            ..Default::default()
                        },
                    )?;
                    Ok(CompactIndexesStats {
                        dropped_contents_deleted_before: before,
                    })
                },
            )?;
            return Ok(());
        }
        self.task(
            task::DROP_DELETED_FULL,
            Some(CompactIndexesStats::KIND),
            |c| {
                epoch_tasks::advance_deletion_watermark(c.repo, safe)?;
                Ok(CompactIndexesStats {
                    dropped_contents_deleted_before: safe,
                })
            },
        )?;
        Ok(())
    }

    /// Kopia's quick index compaction of repositories without the epoch manager: merges the
    /// index blobs once there are at least 8 small ones, drops nothing.
    fn legacy_index_compaction(&mut self) -> Result<()> {
        self.obs.debug("Compacting indexes...");
        self.task(task::INDEX_COMPACTION, None, |c| {
            compact_legacy_indexes(
                c.repo,
                &crate::legacy_index::CompactOptions {
                    max_small_blobs: LEGACY_MAX_SMALL_BLOBS,
                    disable_eventual_consistency_safety: c
                        .safety
                        .disable_eventual_consistency_safety,
                    ..Default::default()
                },
            )
        })?;
        Ok(())
    }

    fn epoch_tasks(&mut self, full: bool) -> Result<()> {
        if self.repo.contents().legacy_indexes().is_some() {
            return Ok(()); // no epoch manager: Kopia skips these tasks
        }
        self.obs.log("Compacting an eligible uncompacted epoch...");
        self.task(
            task::EPOCH_COMPACT_SINGLE,
            Some(CompactSingleEpochStats::KIND),
            |c| epoch_tasks::compact_single_epoch(c.repo, c.obs),
        )?;
        self.obs.log("Advancing epoch markers...");
        self.task(task::EPOCH_ADVANCE, Some(AdvanceEpochStats::KIND), |c| {
            epoch_tasks::advance_epoch(c.repo)
        })?;
        if !full {
            return Ok(());
        }
        self.obs
            .log("Attempting to compact a range of epoch indexes ...");
        self.task(
            task::EPOCH_GENERATE_RANGE,
            Some(GenerateRangeCheckpointStats::KIND),
            |c| epoch_tasks::generate_range_checkpoint(c.repo, c.obs),
        )?;
        self.obs.log("Cleaning up unneeded epoch markers...");
        self.task(
            task::EPOCH_CLEANUP_MARKERS,
            Some(CleanupMarkersStats::KIND),
            |c| epoch_tasks::cleanup_markers(c.repo),
        )?;
        self.obs
            .log("Cleaning up old index blobs which have already been compacted...");
        self.task(
            task::EPOCH_DELETE_SUPERSEDED,
            Some(CleanupSupersededIndexesStats::KIND),
            |c| epoch_tasks::cleanup_superseded_indexes(c.repo),
        )?;
        Ok(())
    }

    fn cleanup_logs(&mut self) -> Result<()> {
        let retention = self.params.log_retention.clone();
        self.task(task::CLEANUP_LOGS, Some(CleanupLogsStats::KIND), |c| {
            logs::cleanup_logs(c.repo, &retention, c.obs)
        })?;
        Ok(())
    }

    fn full(&mut self) -> Result<()> {
        let gc = self.task(task::SNAPSHOT_GC, Some(SnapshotGcStats::KIND), |c| {
            gc::run_gc(c.repo, &c.safety, c.start, c.obs)
        })?;
        self.latest_mark = DateTime::from_timestamp(gc.latest_mark_seconds, 0)
            .filter(|_| gc.latest_mark_seconds > 0);
        self.schedule = schedule::get_schedule(self.repo)?;
        self.rewrite(task::REWRITE_FULL, "", false)?;
        self.drop_deleted()?;
        self.maybe_delete_blobs(false)?;
        if self.params.extend_object_locks {
            self.task(
                task::EXTEND_RETENTION,
                Some(ExtendBlobRetentionStats::KIND),
                |c| {
                    let n = extend_retention(c.repo, c.obs)?;
                    let period =
                        Duration::nanoseconds(c.repo.format().blob_config.retention_period_nanos);
                    Ok(ExtendBlobRetentionStats {
                        to_extend_blob_count: n,
                        extended_blob_count: n,
                        retention_period: kopr_format::units::duration(period),
                    })
                },
            )?;
        } else {
            self.obs
                .log("Extending object lock retention-period is disabled.");
        }
        self.epoch_tasks(true)?;
        self.cleanup_logs()
    }

    fn quick(&mut self) -> Result<()> {
        self.schedule = schedule::get_schedule(self.repo)?;
        self.rewrite(task::REWRITE_QUICK, PACK_PREFIX_METADATA, true)?;
        self.maybe_delete_blobs(true)?;
        if self.repo.contents().legacy_indexes().is_some() {
            self.legacy_index_compaction()?;
        }
        self.epoch_tasks(true)?;
        self.cleanup_logs()
    }
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
