//! The simulation behind `maintenance explain`: future full cycles and the cycle in which
//! each pack's garbage is marked, forgotten and its pack rewritten or deleted.

use super::*;

/// Future full cycles and the GC history they extend.
pub(super) struct Plan<'a> {
    pub(super) safety: &'a SafetyParameters,
    pub(super) history: &'a [RunInfo],
    pub(super) cycles: Vec<DateTime<Utc>>,
    /// Whether each cycle deletes blobs (a cycle whose rewrite moved contents waits
    /// `MinRewriteToOrphanDeletionDelay`); cycles past its end do.
    pub(super) deletes: Vec<bool>,
}

impl Plan<'_> {
    /// The first cycle that marks a content written at `ts`.
    pub(super) fn marking_cycle(&self, ts: DateTime<Utc>) -> Option<usize> {
        self.cycles
            .iter()
            .position(|c| *c - ts >= self.safety.min_content_age_subject_to_gc)
    }

    /// The first cycle at or after `from` that forgets a content marked at `marked`.
    pub(super) fn drop_cycle(&self, marked: DateTime<Utc>, from: usize) -> Option<usize> {
        if !self.safety.require_two_gc_cycles {
            return (from < self.cycles.len()).then_some(from);
        }
        let mut runs: Vec<RunInfo> = self.history.to_vec();
        for (k, c) in self.cycles.iter().enumerate() {
            runs.push(RunInfo {
                start: *c,
                end: *c,
                success: true,
                error: String::new(),
                extra: None,
            });
            if k < from {
                continue;
            }
            if find_safe_drop_time(&runs, self.safety).is_some_and(|t| marked <= t) {
                return Some(k);
            }
        }
        None
    }

    /// The first cycle at or after `from` that may delete a blob written at `ts`.
    pub(super) fn blob_cycle(&self, ts: DateTime<Utc>, from: usize) -> Option<usize> {
        (from..self.cycles.len()).find(|&k| {
            self.deletes.get(k).copied().unwrap_or(true)
                && self.cycles[k] + Duration::seconds(1) - ts >= self.safety.blob_delete_min_age
        })
    }

    /// The first cycle at or after `from` that deletes blobs.
    pub(super) fn deleting_cycle(&self, from: usize) -> Option<usize> {
        (from..self.cycles.len()).find(|&k| self.deletes.get(k).copied().unwrap_or(true))
    }

    pub(super) fn at(&self, k: Option<usize>) -> Option<DateTime<Utc>> {
        k.and_then(|k| self.cycles.get(k).copied())
    }
}

#[derive(Default)]
pub(super) struct PackAgg {
    pub(super) garbage: u64,
    pub(super) live: u64,
    /// Packed bytes of its live contents.
    pub(super) live_bytes: u64,
    /// The newest live content's timestamp (the rewrite moves only old enough ones).
    pub(super) newest_live: i64,
    /// Garbage by the cycle that marks it (`usize::MAX`: not within the schedule): bytes and
    /// the cycle that forgets it.
    pub(super) by_mark: BTreeMap<usize, (u64, Option<Option<usize>>)>,
    /// The latest cycle at which one of its garbage contents is forgotten, and why.
    pub(super) worst: Option<(Option<usize>, Rule)>,
    /// Whether some garbage in it survives a cycle started now.
    pub(super) not_now: bool,
}

/// The later of two cycles, `None` (never) being the latest.
pub(super) fn later_cycle(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl PackAgg {
    pub(super) fn packed(&self) -> u64 {
        self.garbage + self.live_bytes
    }

    /// The first cycle whose rewrite may empty this pack: enough of its garbage is marked to
    /// exceed `max_unused` and its live contents are older than `RewriteMinAge`.
    pub(super) fn ready_cycle(&self, plan: &Plan<'_>, max_unused: u32) -> Option<usize> {
        if self.live == 0 || self.garbage == 0 {
            return None;
        }
        let mut marked = 0;
        for (&k, &(bytes, _)) in &self.by_mark {
            if k == usize::MAX {
                return None;
            }
            marked += bytes;
            if exceeds_unused_share(marked, self.packed(), max_unused) {
                return (k..plan.cycles.len()).find(|&j| {
                    plan.cycles[j].timestamp() - self.newest_live
                        >= plan.safety.rewrite_min_age.num_seconds()
                });
            }
        }
        None
    }

    /// The cycle at which the garbage marked by cycle `k` is all forgotten.
    pub(super) fn forgotten_by(&self, k: usize) -> Option<usize> {
        self.by_mark
            .range(..=k)
            .map(|(_, (_, d))| d.flatten())
            .try_fold(0, |acc, d| d.map(|d| acc.max(d)))
    }
}

/// Replays the full rewrite's gate on the simulated cycles: a cycle rewrites the packs that
/// are ready when the previous rewrite's orphans have been deleted, and deletes blobs unless
/// its rewrite moved contents less than `MinRewriteToOrphanDeletionDelay` ago. Returns the
/// rewrite cycle of each pack and which cycles delete blobs.
pub(super) fn simulate_rewrites<'p>(
    plan: &Plan<'_>,
    sched: &kopr_format::maintenance::Schedule,
    mut ready: Vec<(usize, &'p str)>,
) -> (HashMap<&'p str, usize>, Vec<bool>) {
    let safety = plan.safety;
    ready.sort();
    let mut pending = !should_rewrite(sched, &[task::REWRITE_FULL], safety);
    let mut blocked_until = next_blob_delete_time(sched, safety);
    let mut at = HashMap::new();
    let mut deletes = Vec::with_capacity(plan.cycles.len());
    let mut next = 0;
    for (k, &c) in plan.cycles.iter().enumerate() {
        let due = next < ready.len() && ready[next].0 <= k;
        if due && (!pending || safety.min_rewrite_to_orphan_deletion_delay.is_zero()) {
            while next < ready.len() && ready[next].0 <= k {
                at.insert(ready[next].1, k);
                next += 1;
            }
            pending = true;
            blocked_until = Some(c + safety.min_rewrite_to_orphan_deletion_delay);
        }
        let d = blocked_until.is_none_or(|t| c >= t);
        if d {
            pending = false;
        }
        deletes.push(d);
    }
    (at, deletes)
}

pub(super) fn cycles_from(first: DateTime<Utc>, interval: Duration) -> Vec<DateTime<Utc>> {
    let step = if interval <= Duration::zero() {
        Duration::hours(24)
    } else {
        interval
    };
    (0..SIMULATED_CYCLES as i32)
        .map(|i| first + step * i)
        .collect()
}
