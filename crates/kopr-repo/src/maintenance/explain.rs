//! `maintenance explain`: for every pack blob that holds garbage and every deleted snapshot,
//! the safety rule that keeps it in storage and the earliest time it can leave, given the
//! schedule of full cycles; and what a full cycle would free right now, with `--safety=full`
//! and with `--safety=none`.
//!
//! The answer replays the rules of [`super::run`] on future cycles: contents unused for
//! `MinContentAgeSubjectToGC` are marked by the next GC, forgotten once two GC runs more than
//! `MarginBetweenSnapshotGC` apart have passed (minus `DropContentFromIndexExtraMargin`), and
//! their packs are deleted once nothing else in them is referenced and they are older than
//! `BlobDeleteMinAge` (and not part of a live session). A pack that also holds live contents
//! leaves once its unused share exceeds the `max-unused-percent` parameter: the full rewrite
//! of the cycle that marks enough of it copies its live contents out (when the previous
//! rewrite's orphans have been deleted), that cycle skips blob deletion
//! (`MinRewriteToOrphanDeletionDelay`), and the first deleting cycle after the garbage is
//! forgotten deletes the pack.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use kopr_blob::BlobMetadata;
use kopr_format::maintenance::{RunInfo, Schedule};
use kopr_format::manifest::MANIFEST_CONTENT_PREFIX;
use kopr_format::pack::{PACK_PREFIX_DATA, PACK_PREFIX_METADATA};
use kopr_format::snapshot::SnapshotId;
use kopr_format::BlobId;
use serde::Serialize;

use super::blobs::{retention, Retention};
use super::gc::find_in_use_contents;
use super::rewrite::exceeds_unused_share;
use super::safety::SafetyParameters;
use super::{
    chrono_dur, find_safe_drop_time, next_blob_delete_time, params, schedule, should_rewrite, task,
};
use crate::error::Result;
use crate::repository::Repository;
use crate::session::{SessionInfo, SESSION_PREFIX};

mod plan;
use plan::{cycles_from, later_cycle, simulate_rewrites, PackAgg, Plan};

/// How many future full cycles are simulated.
pub const SIMULATED_CYCLES: usize = 60;

/// The rule holding some storage back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// Unreferenced contents younger than `MinContentAgeSubjectToGC`: not marked yet.
    MinContentAgeSubjectToGc,
    /// Unreferenced and old enough, waiting for the next GC to mark them.
    AwaitingNextGc,
    /// Marked deleted; waiting for a second GC run (`RequireTwoGCCycles`,
    /// `MarginBetweenSnapshotGC`, `DropContentFromIndexExtraMargin`).
    RequireTwoGcCycles,
    /// Forgotten, but the pack is younger than `BlobDeleteMinAge`.
    BlobDeleteMinAge,
    /// The pack belongs to a write session that is still live (`SessionExpirationAge`).
    SessionExpirationAge,
    /// Written after the maintenance run would start.
    NewerThanMaintenanceStart,
    /// The pack also holds contents live snapshots use, and too few unused ones for the
    /// rewrite of partly unused packs: it stays until its unused share grows.
    SharesPackWithLiveContents,
    /// The pack also holds live contents but is unused beyond `max-unused-percent`: a full
    /// rewrite copies them out, then the pack leaves with its forgotten garbage.
    PartlyUnusedRewrite,
    /// Full maintenance is disabled or not scheduled.
    FullMaintenanceDisabled,
}

impl Rule {
    /// A sentence for humans.
    pub fn describe(self, s: &SafetyParameters) -> String {
        let d = |x: Duration| kopr_format::units::duration(x);
        match self {
            Rule::MinContentAgeSubjectToGc => format!(
                "unreferenced contents younger than MinContentAgeSubjectToGC ({}) are not marked yet",
                d(s.min_content_age_subject_to_gc)
            ),
            Rule::AwaitingNextGc => "unreferenced; the next snapshot GC marks it deleted".into(),
            Rule::RequireTwoGcCycles => format!(
                "marked deleted; forgotten only after a second GC run more than {} after the first (RequireTwoGCCycles, MarginBetweenSnapshotGC) less {} (DropContentFromIndexExtraMargin)",
                d(s.margin_between_snapshot_gc),
                d(s.drop_content_from_index_extra_margin)
            ),
            Rule::BlobDeleteMinAge => format!(
                "no longer referenced; pack blobs younger than BlobDeleteMinAge ({}) are kept",
                d(s.blob_delete_min_age)
            ),
            Rule::SessionExpirationAge => format!(
                "part of a write session that checkpointed less than SessionExpirationAge ({}) ago",
                d(s.session_expiration_age)
            ),
            Rule::NewerThanMaintenanceStart => "written after maintenance would start".into(),
            Rule::SharesPackWithLiveContents => {
                "the pack also holds contents that live snapshots use and is not unused beyond max-unused-percent; it leaves only after a content rewrite moves them".into()
            }
            Rule::PartlyUnusedRewrite => format!(
                "unused beyond max-unused-percent: a full rewrite copies its live contents out (when the previous rewrite's orphans are deleted), the garbage is forgotten (RequireTwoGCCycles) and the pack deleted at a later cycle (MinRewriteToOrphanDeletionDelay {}, BlobDeleteMinAge {})",
                d(s.min_rewrite_to_orphan_deletion_delay),
                d(s.blob_delete_min_age)
            ),
            Rule::FullMaintenanceDisabled => {
                "full maintenance is disabled: nothing is collected".into()
            }
        }
    }
}

/// One pack blob that holds garbage.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackFate {
    /// The blob.
    pub blob_id: BlobId,
    /// Its size in storage.
    pub bytes: u64,
    /// Packed bytes of garbage contents in it (0 for blobs no index references).
    pub garbage_bytes: u64,
    /// Contents in it that live snapshots use.
    pub live_contents: u64,
    /// Share of its packed bytes that no live snapshot uses, in percent (0 for blobs no
    /// index references).
    pub unused_percent: f64,
    /// When a full rewrite copies its live contents out (partly unused packs only).
    pub rewrite_at: Option<DateTime<Utc>>,
    /// What keeps it now.
    pub rule: Rule,
    /// The earliest time it can leave storage (`None`: not by the simulated schedule).
    pub earliest_deletion: Option<DateTime<Utc>>,
}

/// A snapshot whose manifest was deleted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSnapshot {
    /// Manifest id.
    pub id: SnapshotId,
    /// `user@host:path`.
    pub source: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
    /// Its exclusive data written more than `MinContentAgeSubjectToGC` before deletion
    /// leaves storage by then.
    pub old_data_gone_by: Option<DateTime<Utc>>,
    /// Data written just before deletion leaves by then.
    pub new_data_gone_by: Option<DateTime<Utc>>,
}

/// Totals per rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleTotal {
    /// The rule.
    pub rule: Rule,
    /// Its description.
    pub description: String,
    /// Pack blobs it holds.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The earliest any of them can leave.
    pub earliest_deletion: Option<DateTime<Utc>>,
}

/// What one full cycle would delete.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reclaimable {
    /// Pack blobs.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// When it was computed.
    pub now: DateTime<Utc>,
    /// `full`, `none` or `custom`.
    pub safety: String,
    /// Whether full cycles run.
    pub full_enabled: bool,
    /// Full cycle interval.
    pub full_interval: String,
    /// Packs with live contents more unused than this (percent of packed bytes) are emptied
    /// by the full rewrite (100: never).
    pub max_unused_percent: u32,
    /// When the next full cycle is due.
    pub next_full_cycle: Option<DateTime<Utc>>,
    /// Successful GC runs on record.
    pub gc_runs: usize,
    /// Deleted snapshots still known to the manifests.
    pub deleted_snapshots: Vec<DeletedSnapshot>,
    /// Storage held back, by rule.
    pub by_rule: Vec<RuleTotal>,
    /// Every pack blob with garbage in it.
    pub packs: Vec<PackFate>,
    /// What a full cycle run now would delete.
    pub full_cycle_now: Reclaimable,
    /// What a full cycle with `--safety=none` run now would delete.
    pub full_cycle_now_safety_none: Reclaimable,
}

/// Computes the explanation with the given safety level for the schedule.
pub fn explain(repo: &Repository, safety: &SafetyParameters) -> Result<Explanation> {
    repo.contents().refresh()?;
    repo.manifests().invalidate();
    let now = repo.contents().clock().now();
    let params = params::get_params(repo)?;
    let sched = schedule::get_schedule(repo)?;
    let history = gc_history(&sched);
    let interval = chrono_dur(params.full.interval);
    let next_full = sched.next_full.map(|t| t.max(now)).unwrap_or(now);
    let scheduled = if params.full.enabled {
        cycles_from(next_full, interval)
    } else {
        Vec::new()
    };
    let mut plan = Plan {
        safety,
        history: &history,
        cycles: scheduled,
        deletes: Vec::new(),
    };
    let max_unused = params.effective_max_unused_percent();
    let packs = aggregate_packs(repo, &plan, now)?;

    // One listing serves both the packs with garbage and the blobs no entry references
    // (every entry, deleted and manifest ones included, is in `packs`).
    let listed = list_pack_and_session_blobs(repo)?;
    let sizes: HashMap<String, (u64, DateTime<Utc>)> = listed
        .iter()
        .map(|b| (b.id.clone(), (b.length, b.timestamp)))
        .collect();
    let ready: Vec<(usize, &str)> = packs
        .iter()
        .filter_map(|(id, a)| Some((a.ready_cycle(&plan, max_unused)?, id.as_str())))
        .collect();
    let (rewrite_at, deletes) = simulate_rewrites(&plan, &sched, ready);
    plan.deletes = deletes;
    let mut out_packs = pack_fates(&plan, &packs, &sizes, &rewrite_at, params.full.enabled);
    let sessions = repo.contents().active_sessions()?;
    let unreferenced: Vec<BlobMetadata> = listed
        .into_iter()
        .filter(|b| !packs.contains_key(b.id.as_str()))
        .collect();
    let unreferenced_ok_now = deletable_now(&unreferenced, &sessions, safety, now);
    out_packs.extend(unreferenced_fates(
        &plan,
        unreferenced,
        &sessions,
        now,
        params.full.enabled,
    ));
    sort_by_deletion(&mut out_packs);
    let by_rule = totals_by_rule(&out_packs, safety);
    let (full_cycle_now, none_now) = reclaimable_now(
        &out_packs,
        &packs,
        &sizes,
        &unreferenced_ok_now,
        &sched,
        safety,
        now,
        max_unused,
    );
    let deleted_snapshots = deleted_snapshots(repo, &plan)?;
    Ok(Explanation {
        now,
        safety: safety.name().to_string(),
        full_enabled: params.full.enabled,
        full_interval: kopr_format::units::duration(interval),
        max_unused_percent: max_unused,
        next_full_cycle: params.full.enabled.then_some(next_full),
        gc_runs: history.len(),
        deleted_snapshots,
        by_rule,
        packs: out_packs,
        full_cycle_now,
        full_cycle_now_safety_none: none_now,
    })
}

/// The successful GC runs of the schedule's history.
fn gc_history(sched: &Schedule) -> Vec<RunInfo> {
    sched
        .runs_of(task::SNAPSHOT_GC)
        .iter()
        .filter(|r| r.success)
        .cloned()
        .collect()
}

/// The unreferenced blobs that no safety rule keeps a second from now.
fn deletable_now(
    unreferenced: &[BlobMetadata],
    sessions: &HashMap<String, SessionInfo>,
    safety: &SafetyParameters,
    now: DateTime<Utc>,
) -> std::collections::HashSet<String> {
    unreferenced
        .iter()
        .filter(|bm| retention(bm, now + Duration::seconds(1), sessions, safety).is_none())
        .map(|bm| bm.id.clone())
        .collect()
}

/// Every pack and session blob.
fn list_pack_and_session_blobs(repo: &Repository) -> Result<Vec<BlobMetadata>> {
    let mut listed = Vec::new();
    for p in [PACK_PREFIX_DATA, PACK_PREFIX_METADATA, SESSION_PREFIX] {
        listed.extend(repo.storage().list_all(p)?);
    }
    Ok(listed)
}

/// Soonest deletion first, the blobs that never leave last, then by id.
fn sort_by_deletion(packs: &mut [PackFate]) {
    packs.sort_by(|a, b| {
        a.earliest_deletion
            .is_none()
            .cmp(&b.earliest_deletion.is_none())
            .then(a.earliest_deletion.cmp(&b.earliest_deletion))
            .then(a.blob_id.cmp(&b.blob_id))
    });
}

/// Walks the index once: per pack, its live contents and when the last of its garbage goes.
fn aggregate_packs(
    repo: &Repository,
    plan: &Plan<'_>,
    now: DateTime<Utc>,
) -> Result<HashMap<BlobId, PackAgg>> {
    let safety = plan.safety;
    let (used, _) = find_in_use_contents(repo)?;
    let now_plan = Plan {
        safety,
        history: plan.history,
        cycles: vec![now],
        deletes: Vec::new(),
    };
    let mut packs: HashMap<BlobId, PackAgg> = HashMap::new();
    repo.contents().for_each_committed(true, &mut |e| {
        let agg = packs.entry(e.pack_blob_id.clone()).or_default();
        if e.content_id.prefix() == Some(MANIFEST_CONTENT_PREFIX) || used.contains(&e.content_id) {
            agg.live += 1;
            agg.live_bytes += u64::from(e.packed_length);
            agg.newest_live = agg.newest_live.max(e.timestamp_seconds);
            return Ok(());
        }
        agg.garbage += u64::from(e.packed_length);
        let ts = DateTime::from_timestamp(e.timestamp_seconds, 0).unwrap_or(now);
        let dropped_now = if e.deleted {
            now_plan.drop_cycle(ts, 0).is_some()
        } else {
            now_plan.marking_cycle(ts).is_some() && now_plan.drop_cycle(now, 0).is_some()
        };
        agg.not_now |= !dropped_now;
        let (mark, drop, rule) = if e.deleted {
            (Some(0), plan.drop_cycle(ts, 0), Rule::RequireTwoGcCycles)
        } else {
            let rule = if now - ts < safety.min_content_age_subject_to_gc {
                Rule::MinContentAgeSubjectToGc
            } else {
                Rule::AwaitingNextGc
            };
            let k = plan.marking_cycle(ts);
            (k, k.and_then(|k| plan.drop_cycle(plan.cycles[k], k)), rule)
        };
        let m = agg.by_mark.entry(mark.unwrap_or(usize::MAX)).or_default();
        m.0 += u64::from(e.packed_length);
        m.1 = Some(match m.1 {
            None => drop,
            Some(d) => later_cycle(d, drop),
        });
        let later = match &agg.worst {
            None => true,
            Some((w, _)) => match (w, drop) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(a), Some(b)) => b > *a,
            },
        };
        if later {
            agg.worst = Some((drop, rule));
        }
        Ok(())
    })?;

    Ok(packs)
}

/// What becomes of each pack that holds garbage: the rule that holds it and when it goes.
fn pack_fates(
    plan: &Plan<'_>,
    packs: &HashMap<BlobId, PackAgg>,
    sizes: &HashMap<String, (u64, DateTime<Utc>)>,
    rewrite_at: &HashMap<&str, usize>,
    full_enabled: bool,
) -> Vec<PackFate> {
    let mut out_packs = Vec::new();
    for (id, agg) in packs {
        let Some((drop, rule)) = agg.worst else {
            continue;
        };
        let Some(&(bytes, written)) = sizes.get(id.as_str()) else {
            continue;
        };
        let rewritten = rewrite_at.get(id.as_str()).copied();
        let (rule, earliest) = if !full_enabled {
            (Rule::FullMaintenanceDisabled, None)
        } else if let Some(kr) = rewritten {
            // the rewrite's own cycle waits MinRewriteToOrphanDeletionDelay (blob_cycle
            // skips it); garbage marked later was copied out with the live contents
            let k = agg
                .forgotten_by(kr)
                .and_then(|d| plan.blob_cycle(written, d.max(kr)));
            (Rule::PartlyUnusedRewrite, plan.at(k))
        } else if agg.live > 0 {
            (Rule::SharesPackWithLiveContents, None)
        } else {
            let k = drop.and_then(|d| plan.blob_cycle(written, d));
            (rule, plan.at(k))
        };
        out_packs.push(PackFate {
            blob_id: id.clone(),
            bytes,
            garbage_bytes: agg.garbage,
            live_contents: agg.live,
            unused_percent: if agg.packed() == 0 {
                0.0
            } else {
                agg.garbage as f64 * 100.0 / agg.packed() as f64
            },
            rewrite_at: rewritten.and_then(|k| plan.at(Some(k))),
            rule,
            earliest_deletion: earliest,
        });
    }
    out_packs
}

/// What becomes of blobs no index entry references any more.
fn unreferenced_fates(
    plan: &Plan<'_>,
    unreferenced: Vec<BlobMetadata>,
    sessions: &HashMap<String, SessionInfo>,
    now: DateTime<Utc>,
    full_enabled: bool,
) -> Vec<PackFate> {
    let safety = plan.safety;
    let cutoff = plan.cycles.first().copied().unwrap_or(now) + Duration::seconds(1);
    let mut out_packs = Vec::new();
    for bm in unreferenced {
        let (rule, earliest) = if !full_enabled {
            (Rule::FullMaintenanceDisabled, None)
        } else {
            match retention(&bm, cutoff, sessions, safety) {
                None => (Rule::BlobDeleteMinAge, plan.at(plan.deleting_cycle(0))),
                Some(Retention::AfterCutoff) => (Rule::NewerThanMaintenanceStart, plan.at(Some(1))),
                Some(Retention::BelowMinAge { until }) => (
                    Rule::BlobDeleteMinAge,
                    plan.cycles.iter().copied().find(|c| *c >= until),
                ),
                Some(Retention::ActiveSession { until, .. }) => (
                    Rule::SessionExpirationAge,
                    plan.cycles.iter().copied().find(|c| *c >= until),
                ),
            }
        };
        out_packs.push(PackFate {
            blob_id: bm.id.into(),
            bytes: bm.length,
            garbage_bytes: 0,
            live_contents: 0,
            unused_percent: 0.0,
            rewrite_at: None,
            rule,
            earliest_deletion: earliest,
        });
    }
    out_packs
}

/// Blobs, bytes and earliest deletion by the rule that holds them.
fn totals_by_rule(out_packs: &[PackFate], safety: &SafetyParameters) -> Vec<RuleTotal> {
    let mut totals: HashMap<Rule, RuleTotal> = HashMap::new();
    for p in out_packs {
        let t = totals.entry(p.rule).or_insert_with(|| RuleTotal {
            rule: p.rule,
            description: p.rule.describe(safety),
            blobs: 0,
            bytes: 0,
            earliest_deletion: p.earliest_deletion,
        });
        t.blobs += 1;
        t.bytes += p.bytes;
        t.earliest_deletion = match (t.earliest_deletion, p.earliest_deletion) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut by_rule: Vec<RuleTotal> = totals.into_values().collect();
    by_rule.sort_by_key(|t| t.rule);

    by_rule
}

/// What a full cycle started now would free: with this safety level, and with none.
#[allow(clippy::too_many_arguments)]
fn reclaimable_now(
    out_packs: &[PackFate],
    packs: &HashMap<BlobId, PackAgg>,
    sizes: &HashMap<String, (u64, DateTime<Utc>)>,
    unreferenced_ok_now: &std::collections::HashSet<String>,
    sched: &Schedule,
    safety: &SafetyParameters,
    now: DateTime<Utc>,
    max_unused: u32,
) -> (Reclaimable, Reclaimable) {
    // A cycle started now: with this safety level, and with none.
    let mut full_cycle_now = Reclaimable::default();
    let mut none_now = Reclaimable::default();
    let now_cutoff = now + Duration::seconds(1);
    // a pack with live contents goes in one cycle only when its rewrite may run now and the
    // deletion need not wait for it (`--safety=none`: every unused content counts)
    let rewrite_now = should_rewrite(sched, &[task::REWRITE_FULL], safety)
        && safety.min_rewrite_to_orphan_deletion_delay.is_zero();
    for p in out_packs {
        let agg = packs.get(&p.blob_id);
        let partly = agg.is_some_and(|a| exceeds_unused_share(a.garbage, a.packed(), max_unused));
        if (p.live_contents > 0 && !partly) || p.rule == Rule::NewerThanMaintenanceStart {
            continue;
        }
        none_now.blobs += 1;
        none_now.bytes += p.bytes;
        let ok = match agg {
            Some(a) => {
                !a.not_now
                    && (a.live == 0
                        || (rewrite_now
                            && now.timestamp() - a.newest_live
                                >= safety.rewrite_min_age.num_seconds()))
                    && sizes
                        .get(p.blob_id.as_str())
                        .is_some_and(|x| now_cutoff - x.1 >= safety.blob_delete_min_age)
            }
            None => unreferenced_ok_now.contains(p.blob_id.as_str()),
        };
        if ok {
            full_cycle_now.blobs += 1;
            full_cycle_now.bytes += p.bytes;
        }
    }

    (full_cycle_now, none_now)
}

fn deleted_snapshots(repo: &Repository, plan: &Plan<'_>) -> Result<Vec<DeletedSnapshot>> {
    let labels = crate::snapshot::snapshot_labels(None);
    let mut out = Vec::new();
    for e in repo.manifests().find_deleted(&labels)? {
        let si = kopr_format::labels::source_of(&e.labels);
        let source = format!("{}@{}:{}", si.user_name, si.host, si.path);
        let when = |written: DateTime<Utc>| {
            let k = plan.marking_cycle(written)?;
            let k = k.max(plan.cycles.iter().position(|c| *c >= e.modified)?);
            let d = plan.drop_cycle(plan.cycles[k], k)?;
            plan.at(plan.blob_cycle(written, d))
        };
        out.push(DeletedSnapshot {
            id: e.id.clone().into(),
            source,
            deleted_at: e.modified,
            old_data_gone_by: when(
                e.modified - plan.safety.min_content_age_subject_to_gc - Duration::seconds(1),
            ),
            new_data_gone_by: when(e.modified),
        });
    }
    out.sort_by_key(|d| d.deleted_at);
    Ok(out)
}
