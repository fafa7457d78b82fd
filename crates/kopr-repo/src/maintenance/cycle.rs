//! One maintenance cycle, quick or full: its tasks in Kopia's order, each run and recorded
//! in the schedule, with the safety rules that let a task run or skip it.

use super::*;

pub(super) struct Cycle<'a> {
    pub(super) repo: &'a Repository,
    pub(super) params: MaintenanceParams,
    pub(super) safety: SafetyParameters,
    pub(super) start: DateTime<Utc>,
    pub(super) obs: &'a dyn Observer,
    pub(super) schedule: Schedule,
    /// The newest deletion mark on an unused content this cycle's GC saw or wrote.
    pub(super) latest_mark: Option<DateTime<Utc>>,
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

    pub(super) fn full(&mut self) -> Result<()> {
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

    pub(super) fn quick(&mut self) -> Result<()> {
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
