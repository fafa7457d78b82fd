//! Policies (manifests with `type=policy`) and retention: which snapshots to keep and why.
//!
//! A source's effective policy is its path policy, then its parent directories' policies, then
//! `user@host`, `host` and the global policy, each filling what the more specific ones leave
//! unset, and Kopia's defaults last.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, Local, Months, TimeZone, Utc};
use kopr_format::labels;
use kopr_format::manifest::ManifestId;
use kopr_format::policy::{Policy, RetentionPolicy};
use kopr_format::snapshot::{SnapshotManifest, SourceInfo};

use crate::error::Result;
use crate::repository::Repository;

/// Manifest labels of the policy of `si` (global when host is empty).
pub fn labels_for(si: &SourceInfo) -> BTreeMap<String, String> {
    labels::of_policy_target(si)
}

/// The policy defined exactly for `si`, if any.
pub fn get_defined(repo: &Repository, si: &SourceInfo) -> Result<Option<(ManifestId, Policy)>> {
    let found = repo.manifests().find(&labels_for(si))?;
    let Some(e) = found.into_iter().rfind(|e| e.labels == labels_for(si)) else {
        return Ok(None);
    };
    let p: Policy = serde_json::from_str(e.data.get())
        .map_err(|err| crate::RepoError::Invalid(format!("policy {} is malformed: {err}", e.id)))?;
    Ok(Some((e.id, p)))
}

/// Replaces the policy of `si` (call `repo.flush()` to persist).
pub fn set(repo: &Repository, si: &SourceInfo, p: &Policy) -> Result<()> {
    for e in repo.manifests().find(&labels_for(si))? {
        if e.labels == labels_for(si) {
            repo.manifests().delete(&e.id)?;
        }
    }
    repo.manifests().put(labels_for(si), p)?;
    Ok(())
}

/// Removes the policy defined for `si`; returns how many manifests were deleted (0 when none
/// was defined). Call `repo.flush()` to persist.
pub fn remove(repo: &Repository, si: &SourceInfo) -> Result<usize> {
    let mut n = 0;
    for e in repo.manifests().find(&labels_for(si))? {
        if e.labels == labels_for(si) {
            repo.manifests().delete(&e.id)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The target of the policy whose manifest id is `id`, if there is one.
pub fn target_of(repo: &Repository, id: &ManifestId) -> Option<SourceInfo> {
    list(repo)
        .ok()?
        .into_iter()
        .find(|(_, pid, _)| pid == id)
        .map(|(si, _, _)| si)
}

/// Every defined policy with its target.
pub fn list(repo: &Repository) -> Result<Vec<(SourceInfo, ManifestId, Policy)>> {
    let mut out = Vec::new();
    for e in repo.manifests().find(&labels::of_type(labels::POLICY))? {
        let si = labels::source_of(&e.labels);
        if let Ok(p) = serde_json::from_str::<Policy>(e.data.get()) {
            out.push((si, e.id, p));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The effective policy of `si`.
pub fn effective(repo: &Repository, si: &SourceInfo) -> Result<Policy> {
    let mut chain = Vec::new();
    if !si.path.is_empty() {
        let mut p = std::path::PathBuf::from(&si.path);
        loop {
            chain.push(SourceInfo {
                path: p.to_string_lossy().into_owned(),
                ..si.clone()
            });
            if !p.pop() || p.as_os_str().is_empty() {
                break;
            }
        }
    }
    chain.push(SourceInfo {
        path: String::new(),
        ..si.clone()
    });
    chain.push(SourceInfo {
        host: si.host.clone(),
        ..SourceInfo::default()
    });
    chain.push(SourceInfo::default());
    let mut result = Policy::default();
    for target in chain {
        if let Some((_, p)) = get_defined(repo, &target)? {
            result.inherit(&p);
            if p.no_parent {
                return Ok(result);
            }
        }
    }
    result.inherit(&Policy::kopia_default());
    Ok(result)
}

/// (cutoff time, period id, reason kind, how many to keep)
type RetentionCase<'a> = (Option<DateTime<Local>>, String, &'a str, Option<i64>);

const INCOMPLETE_KEEP_YOUNGER_THAN_HOURS: i64 = 4;
const INCOMPLETE_KEEP_MIN_COUNT: usize = 3;

fn to_local(nanos: i64) -> DateTime<Local> {
    Utc.timestamp_nanos(nanos).with_timezone(&Local)
}

/// Puts retention tags in Kopia's canonical order: latest, hourly, daily, weekly, monthly,
/// annual (then others by name), each kind by its suffix.
pub fn sort_retention_tags(tags: &mut [String]) {
    const RANK: [&str; 6] = ["latest", "hourly", "daily", "weekly", "monthly", "annual"];
    let key = |t: &String| {
        let (kind, n) = t.rsplit_once('-').unwrap_or((t.as_str(), ""));
        let rank = RANK.iter().position(|k| *k == kind).unwrap_or(RANK.len());
        (rank, kind.to_string(), n.to_string())
    };
    tags.sort_by_key(key);
}

/// The oldest time each kind of retention reaches back to, counted from the newest complete
/// snapshot (a year past it for a kind the policy does not set), and the `latest` count.
struct Cutoffs {
    annual: DateTime<Local>,
    monthly: DateTime<Local>,
    weekly: DateTime<Local>,
    daily: DateTime<Local>,
    hourly: DateTime<Local>,
    keep_latest: Option<i64>,
}

impl Cutoffs {
    fn new(r: &RetentionPolicy, max_complete: i64) -> Self {
        let base = to_local(max_complete);
        let far = base + Duration::days(365);
        let cutoff = |v: Option<i64>, f: &dyn Fn(DateTime<Local>, i64) -> DateTime<Local>| {
            v.map(|n| f(base, n)).unwrap_or(far)
        };
        let total: i64 = [
            r.keep_latest,
            r.keep_hourly,
            r.keep_daily,
            r.keep_weekly,
            r.keep_monthly,
            r.keep_annual,
        ]
        .iter()
        .map(|v| v.unwrap_or(0))
        .sum();
        Cutoffs {
            annual: cutoff(r.keep_annual, &|b, n| {
                b.checked_sub_months(Months::new((12 * n) as u32))
                    .unwrap_or(b)
            }),
            monthly: cutoff(r.keep_monthly, &|b, n| {
                b.checked_sub_months(Months::new(n as u32)).unwrap_or(b)
            }),
            weekly: cutoff(r.keep_weekly, &|b, n| b - Duration::days(7 * n)),
            daily: cutoff(r.keep_daily, &|b, n| b - Duration::days(n)),
            hourly: cutoff(r.keep_hourly, &|b, n| b - Duration::hours(n)),
            keep_latest: if total == 0 {
                Some(i64::MAX)
            } else {
                r.keep_latest
            },
        }
    }

    /// The retention cases of the `i`-th newest snapshot, taken at `t`.
    fn cases(
        &self,
        r: &RetentionPolicy,
        i: usize,
        t: DateTime<Local>,
    ) -> [RetentionCase<'static>; 6] {
        let iso = t.iso_week();
        [
            (None, i.to_string(), "latest", self.keep_latest),
            (
                Some(self.annual),
                t.format("%Y").to_string(),
                "annual",
                r.keep_annual,
            ),
            (
                Some(self.monthly),
                t.format("%Y-%m").to_string(),
                "monthly",
                r.keep_monthly,
            ),
            (
                Some(self.weekly),
                format!("{:04}-{:02}", iso.year(), iso.week()),
                "weekly",
                r.keep_weekly,
            ),
            (
                Some(self.daily),
                t.format("%Y-%m-%d").to_string(),
                "daily",
                r.keep_daily,
            ),
            (
                Some(self.hourly),
                t.format("%Y-%m-%d %H").to_string(),
                "hourly",
                r.keep_hourly,
            ),
        ]
    }
}

/// Kopia's retention: for each snapshot (in the given order), why it is kept (`latest-1`,
/// `daily-3`, …); an empty list means it expires.
pub fn retention_reasons(p: &Policy, snaps: &[SnapshotManifest]) -> Vec<Vec<String>> {
    let r = &p.retention;
    let mut reasons = vec![Vec::new(); snaps.len()];
    if snaps.is_empty() {
        return reasons;
    }
    let max_complete = snaps
        .iter()
        .filter(|s| s.incomplete_reason.is_empty())
        .map(|s| s.start_time)
        .max()
        .unwrap_or(0);
    let cutoffs = Cutoffs::new(r, max_complete);
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by(|&a, &b| snaps[b].start_time.cmp(&snaps[a].start_time));
    let mut ids: HashMap<String, ()> = HashMap::new();
    let mut counters: HashMap<&str, i64> = HashMap::new();
    for (i, &idx) in order.iter().enumerate() {
        let s = &snaps[idx];
        if !s.incomplete_reason.is_empty() {
            continue;
        }
        let t = to_local(s.start_time);
        for (cut, period, kind, max) in cutoffs.cases(r, i, t) {
            let Some(max) = max else { continue };
            if cut.is_some_and(|c| t < c) || ids.contains_key(&period) {
                continue;
            }
            let n = counters.entry(kind).or_insert(0);
            if *n < max {
                ids.insert(period, ());
                *n += 1;
                reasons[idx].push(format!("{kind}-{n}"));
            }
        }
        sort_retention_tags(&mut reasons[idx]);
    }
    keep_incomplete(snaps, &order, &mut reasons);
    reasons
}

/// Keeps the newest incomplete snapshots (newer than any complete one): those younger than
/// four hours, and at least three.
fn keep_incomplete(snaps: &[SnapshotManifest], order: &[usize], reasons: &mut [Vec<String>]) {
    let max_start = snaps.iter().map(|s| s.start_time).max().unwrap_or(0);
    for (i, &idx) in order.iter().enumerate() {
        let s = &snaps[idx];
        if s.incomplete_reason.is_empty() {
            break;
        }
        let age = Duration::nanoseconds(max_start - s.start_time);
        if age < Duration::hours(INCOMPLETE_KEEP_YOUNGER_THAN_HOURS)
            || i < INCOMPLETE_KEEP_MIN_COUNT
        {
            reasons[idx].push("incomplete".into());
        } else {
            break;
        }
    }
}

/// Snapshots of `source` that its retention policy expires (pinned snapshots never expire);
/// deletes them when `really_delete`.
pub fn expire(
    repo: &Repository,
    source: &SourceInfo,
    really_delete: bool,
) -> Result<Vec<SnapshotManifest>> {
    let snaps = crate::snapshot::manifests::list_snapshots(repo, Some(source))?;
    let p = effective(repo, source)?;
    let reasons = retention_reasons(&p, &snaps);
    let expired: Vec<SnapshotManifest> = snaps
        .into_iter()
        .zip(reasons)
        .filter(|(s, r)| r.is_empty() && s.pins.is_empty())
        .map(|(s, _)| s)
        .collect();
    if really_delete {
        for s in &expired {
            repo.manifests().delete(s.id.manifest_id())?;
        }
        repo.flush()?;
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kopr_format::policy::RetentionPolicy;

    fn snap(id: &str, t: DateTime<Utc>) -> SnapshotManifest {
        serde_json::from_value(serde_json::json!({
            "id": id, "source": {"host":"h","userName":"u","path":"/p"},
            "startTime": kopr_format::gotime::format(&t), "endTime": kopr_format::gotime::format(&t),
            "rootEntry": null
        }))
        .unwrap()
    }

    fn policy(r: RetentionPolicy) -> Policy {
        Policy {
            retention: r,
            ..Default::default()
        }
    }

    fn kept(p: &Policy, snaps: &[SnapshotManifest]) -> Vec<(String, Vec<String>)> {
        retention_reasons(p, snaps)
            .into_iter()
            .zip(snaps)
            .filter(|(r, _)| !r.is_empty())
            .map(|(r, s)| (s.id.to_string(), r))
            .collect()
    }

    #[test]
    fn keep_latest_keeps_the_newest() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let snaps: Vec<_> = (0..10)
            .map(|i| snap(&format!("s{i}"), t0 + Duration::hours(i)))
            .collect();
        let p = policy(RetentionPolicy {
            keep_latest: Some(3),
            ..Default::default()
        });
        assert_eq!(
            kept(&p, &snaps),
            vec![
                ("s7".to_string(), vec!["latest-3".to_string()]),
                ("s8".to_string(), vec!["latest-2".to_string()]),
                ("s9".to_string(), vec!["latest-1".to_string()]),
            ]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_within_the_window() {
        let mut snaps = Vec::new();
        for day in 1..=4 {
            for hour in 1..=3 {
                let t = Local
                    .with_ymd_and_hms(2026, 1, day, hour, 0, 0)
                    .unwrap()
                    .with_timezone(&Utc);
                snaps.push(snap(&format!("d{day}h{hour}"), t));
            }
        }
        let p = policy(RetentionPolicy {
            keep_latest: Some(1),
            keep_daily: Some(2),
            ..Default::default()
        });
        assert_eq!(
            kept(&p, &snaps),
            vec![
                ("d3h3".to_string(), vec!["daily-2".to_string()]),
                (
                    "d4h3".to_string(),
                    vec!["latest-1".to_string(), "daily-1".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn no_retention_settings_keep_everything_and_incomplete_ones_are_kept_briefly() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut snaps: Vec<_> = (0..5)
            .map(|i| snap(&format!("s{i}"), t0 + Duration::days(i)))
            .collect();
        assert_eq!(kept(&policy(RetentionPolicy::default()), &snaps).len(), 5);
        let mut inc = snap("partial", t0 + Duration::days(4) + Duration::hours(1));
        inc.incomplete_reason = "canceled".into();
        snaps.push(inc);
        let p = policy(RetentionPolicy {
            keep_latest: Some(1),
            ..Default::default()
        });
        let k = kept(&p, &snaps);
        assert_eq!(k.len(), 2);
        assert!(k.contains(&("partial".to_string(), vec!["incomplete".to_string()])));
        assert!(k.contains(&("s4".to_string(), vec!["latest-1".to_string()])));
    }

    #[test]
    fn labels_follow_kopia() {
        let si = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/p".into(),
        };
        assert_eq!(
            labels_for(&si).get("policyType").map(String::as_str),
            Some("path")
        );
        assert_eq!(labels_for(&SourceInfo::default()).len(), 2);
        let host = SourceInfo {
            host: "h".into(),
            ..Default::default()
        };
        assert_eq!(
            labels_for(&host).get("policyType").map(String::as_str),
            Some("host")
        );
    }
}
