//! Maintenance on an injected clock: the full timeline of a deleted snapshot (when its
//! contents are marked, forgotten and their packs deleted) for `--safety=full` and `none`,
//! snapshots written by another client between every two tasks of a cycle, and cycles that
//! stop after each task.

use chrono::{TimeZone, Utc};
use kopr_format::index::ContentId;
use kopr_repo::maintenance::{self, Mode, Observer, RunOptions, SafetyParameters};
use kopr_repo::snapshot::list_snapshots;
use kopr_repo::RepoError;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

mod maintenance_harness;
use maintenance_harness::*;

/// State of the contents of a deleted snapshot in a fresh view of the repository.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Live,
    MarkedDeleted,
    Dropped,
}

fn fate(h: &Harness, ids: &[ContentId]) -> Fate {
    let r = h.open("u");
    let infos: Vec<_> = ids
        .iter()
        .map(|id| r.contents().content_info(id).unwrap())
        .collect();
    if infos.iter().all(|i| i.is_none()) {
        Fate::Dropped
    } else if infos.iter().all(|i| i.as_ref().is_some_and(|e| e.deleted)) {
        Fate::MarkedDeleted
    } else {
        assert!(infos.iter().all(|i| i.as_ref().is_some_and(|e| !e.deleted)));
        Fate::Live
    }
}

/// Creates snapshot `keep` and snapshot `doomed` (deleted at once); returns the doomed
/// snapshot's data contents and packs.
fn keep_and_delete(h: &Harness) -> (Vec<ContentId>, Vec<String>) {
    let r = h.open("u");
    h.snapshot(&r, "keep", 1, 3);
    let before = h.pack_ids();
    let doomed = h.snapshot(&r, "doomed", 2, 3);
    let packs: Vec<String> = h
        .pack_ids()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!packs.is_empty());
    let ids: Vec<ContentId> = r
        .contents()
        .list_contents(false)
        .unwrap()
        .into_iter()
        .filter(|e| packs.contains(&e.pack_blob_id.to_string()))
        .map(|e| e.content_id)
        .collect();
    assert!(!ids.is_empty());
    r.manifests().delete(doomed.manifest_id()).unwrap();
    r.flush().unwrap();
    (ids, packs)
}

/// Whether all of `packs` are stored; fails when only some are (a pack that holds only the
/// deleted snapshot's data goes as a whole set or not at all in these timelines).
fn present(h: &Harness, packs: &[String]) -> bool {
    let all = h.pack_ids();
    let n = packs.iter().filter(|p| all.contains(p)).count();
    assert!(
        n == 0 || n == packs.len(),
        "{n} of the packs {packs:?} are stored"
    );
    n == packs.len()
}

#[test]
fn safety_full_timeline_with_a_cycle_four_hours_after_the_first_gc() {
    let h = Harness::new();
    let (ids, packs) = keep_and_delete(&h);
    // (hours since deletion, expected fate after the cycle, packs still stored)
    let steps = [
        (1, Fate::Live, true),           // contents younger than 24h: not marked
        (24, Fate::MarkedDeleted, true), // first GC that may mark them
        (28, Fate::MarkedDeleted, true), // exactly 4h after: not "more than" 4h apart
        (48, Fate::Dropped, false),      // GC at 28h ended >4h before: drop and delete
        (72, Fate::Dropped, false),
    ];
    let mut now = 0;
    for (at, want, stored) in steps {
        h.advance_hours(at - now);
        now = at;
        let log = h.cycle(SafetyParameters::full());
        assert_eq!(fate(&h, &ids), want, "after the cycle at {at}h: {log:#?}");
        assert_eq!(present(&h, &packs), stored, "packs after {at}h: {log:#?}");
        // the log counts the doomed packs among the deleted blobs at 48h
        if at == 48 {
            let deleted = log
                .iter()
                .find_map(|l| l.strip_prefix("Deleted total "))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok());
            assert!(deleted >= Some(packs.len()), "{log:#?}");
        }
    }
    h.restore_all();
}

#[test]
fn safety_full_daily_cycles_delete_a_snapshot_removed_at_creation_after_72_hours() {
    let h = Harness::new();
    let (ids, packs) = keep_and_delete(&h);
    let steps = [
        (1, Fate::Live, true),
        (24, Fate::MarkedDeleted, true),
        (48, Fate::MarkedDeleted, true), // the GC at 24h marked them after the 1h run's drop time
        (72, Fate::Dropped, false),
    ];
    let mut now = 0;
    for (at, want, stored) in steps {
        h.advance_hours(at - now);
        now = at;
        let log = h.cycle(SafetyParameters::full());
        assert_eq!(fate(&h, &ids), want, "after the cycle at {at}h: {log:#?}");
        assert_eq!(present(&h, &packs), stored, "packs after {at}h: {log:#?}");
    }
    h.restore_all();
}

#[test]
fn safety_none_frees_everything_in_one_cycle() {
    let h = Harness::new();
    let (ids, packs) = keep_and_delete(&h);
    h.clock.advance(StdDuration::from_secs(60));
    let log = h.cycle(SafetyParameters::none());
    assert_eq!(fate(&h, &ids), Fate::Dropped, "{log:#?}");
    assert!(!present(&h, &packs), "{log:#?}");
    assert!(log
        .iter()
        .any(|l| l.starts_with("Found ") && l.contains("blobs to delete")));
    let deleted = log
        .iter()
        .find_map(|l| l.strip_prefix("Deleted total "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(deleted >= Some(packs.len()), "{log:#?}");
    h.restore_all();
}

#[test]
fn a_second_full_cycle_within_the_hour_skips_blob_deletion() {
    let h = Harness::new();
    let r = h.open("u");
    for i in 0..3 {
        h.snapshot(&r, &format!("s{i}"), 10 + i, 1);
    }
    drop(r);
    h.advance_hours(3); // contents older than RewriteMinAge: short packs get merged
    let first = h.cycle(SafetyParameters::full());
    assert!(
        first.iter().any(|l| l.starts_with(
            "Skipping blob deletion because not enough time has passed yet (59m59s left)"
        ) || l.starts_with(
            "Skipping blob deletion because not enough time has passed yet (1h0m0s left)"
        )),
        "{first:#?}"
    );
    h.advance_hours(2);
    let second = h.cycle(SafetyParameters::full());
    assert!(
        second
            .iter()
            .any(|l| l.starts_with("found ") && l.ends_with("pack blobs not in use")),
        "{second:#?}"
    );
    h.restore_all();
}

#[test]
fn only_the_owner_runs_maintenance_unless_forced() {
    let h = Harness::new();
    let other = h.open("intruder");
    let opts = RunOptions {
        mode: Mode::Quick,
        safety: SafetyParameters::full(),
        force: false,
    };
    let err = maintenance::run(&other, &opts, &Lines::default()).unwrap_err();
    assert!(
        matches!(err, RepoError::NotMaintenanceOwner(ref o) if o == "u@h"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "maintenance must be run by designated user: u@h"
    );
    maintenance::run(
        &other,
        &RunOptions {
            force: true,
            ..opts
        },
        &Lines::default(),
    )
    .unwrap();
}

#[test]
fn snapshots_written_during_every_task_of_a_full_cycle_survive() {
    let mut interleaved = std::collections::BTreeSet::new();
    // (concurrent snapshot reuses the deleted snapshot's bytes, hours of the cycle it runs in):
    // at 24h the deleted contents are being marked, at 48h they are being dropped.
    for (i, task) in FULL_TASKS.iter().enumerate() {
        for (reuse, at_hour) in [(false, 48), (true, 24), (true, 48)] {
            let h = Harness::new();
            let _ = keep_and_delete(&h);
            let mut now = 0;
            for at in [1, 24, 28] {
                if at < at_hour {
                    h.advance_hours(at - now);
                    now = at;
                    h.cycle(SafetyParameters::full());
                }
            }
            h.advance_hours(at_hour - now);
            let obs = Interleave {
                h: &h,
                at: task.to_string(),
                seed: 100 + i as u64,
                reuse: if reuse { &["doomed"] } else { &[] },
                done: Mutex::new(false),
                pending: Mutex::new(None),
            };
            let r = h.open("u");
            maintenance::run(
                &r,
                &RunOptions {
                    mode: Mode::Full,
                    safety: SafetyParameters::full(),
                    force: false,
                },
                &obs,
            )
            .unwrap();
            obs.finish_upload();
            drop(r);
            // and every later cycle keeps what the concurrent snapshot needs
            for at in [1, 24, 4, 20, 24] {
                h.advance_hours(at);
                h.cycle(SafetyParameters::full());
            }
            h.restore_all();
            if *obs.done.lock().unwrap() {
                interleaved.insert(*task);
            }
        }
    }
    let all: std::collections::BTreeSet<&str> = FULL_TASKS.iter().copied().collect();
    assert_eq!(
        interleaved, all,
        "every task had a snapshot written before it"
    );
}

struct StopAt(String);

impl Observer for StopAt {
    fn log(&self, _msg: &str) {}
    fn before_task(&self, task: &str) -> kopr_repo::Result<()> {
        if task == self.0 {
            return Err(RepoError::MaintenanceAborted(task.into()));
        }
        Ok(())
    }
}

/// Every task of the full cycle is stopped at every cycle of the deleted snapshot's timeline
/// in which it runs (then the cycle is run again to completion): the repository restores after
/// each stop, every task was stopped at least once (a task the schedule skips cannot pass for
/// a stopped one), and the deleted snapshot's packs still leave storage on time.
#[test]
fn a_cycle_stopped_before_any_task_leaves_a_working_repository() {
    for task in FULL_TASKS {
        let h = Harness::new();
        let (_, packs) = keep_and_delete(&h);
        let mut stops = 0;
        for at in [1, 23, 4, 20, 24, 1] {
            h.advance_hours(at);
            let r = h.open("u");
            let result = maintenance::run(
                &r,
                &RunOptions {
                    mode: Mode::Full,
                    safety: SafetyParameters::full(),
                    force: false,
                },
                &StopAt(task.to_string()),
            );
            drop(r);
            match result {
                Ok(()) => {}
                Err(RepoError::MaintenanceAborted(t)) => {
                    assert_eq!(t, *task);
                    stops += 1;
                    h.restore_all();
                    h.cycle(SafetyParameters::full());
                }
                Err(e) => panic!("{task}: {e}"),
            }
            h.restore_all();
        }
        assert!(stops >= 1, "{task} never ran, so it was never stopped");
        // 73 hours after the deletion the doomed packs are gone, as without the stops
        let stored = h.pack_ids();
        assert!(
            packs.iter().all(|p| !stored.contains(p)),
            "{task}: deleted data still stored"
        );
    }
}

#[test]
fn explain_predicts_when_the_deleted_snapshot_leaves_storage() {
    use kopr_repo::maintenance::explain::{explain, Rule};
    let h = Harness::new();
    let (_, packs) = keep_and_delete(&h);
    h.advance_hours(1);
    h.cycle(SafetyParameters::full());
    // next full cycle is due 24h after that one: 25h, then 49h, 73h
    let r = h.open("u");
    let x = explain(&r, &SafetyParameters::full()).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let hours = |n: i64| t0 + chrono::Duration::hours(n);
    assert_eq!(x.next_full_cycle, Some(hours(25)));
    for p in &packs {
        let fate = x
            .packs
            .iter()
            .find(|f| &f.blob_id == p)
            .expect("pack explained");
        assert_eq!(fate.rule, Rule::MinContentAgeSubjectToGc, "{fate:?}");
        assert_eq!(fate.earliest_deletion, Some(hours(73)), "{fate:?}");
    }
    assert_eq!(x.deleted_snapshots.len(), 1);
    assert_eq!(x.deleted_snapshots[0].new_data_gone_by, Some(hours(73)));
    assert_eq!(x.full_cycle_now.blobs, 0, "{:?}", x.full_cycle_now);
    assert!(x.full_cycle_now_safety_none.blobs >= packs.len() as u64);
    assert!(serde_json::to_string(&x)
        .unwrap()
        .contains("\"minContentAgeSubjectToGc\""));
    drop(r);
    // and the prediction holds
    for (at, gone) in [(25, false), (49, false), (73, true)] {
        h.clock.set(hours(at));
        h.cycle(SafetyParameters::full());
        assert_eq!(!present(&h, &packs), gone, "at {at}h");
        if !gone {
            let r = h.open("u");
            let x = explain(&r, &SafetyParameters::full()).unwrap();
            let fate = x.packs.iter().find(|f| f.blob_id == packs[0]).unwrap();
            assert_eq!(
                fate.earliest_deletion,
                Some(hours(73)),
                "at {at}h: {fate:?}"
            );
        }
    }
}

#[test]
fn gc_refuses_to_collect_around_a_snapshot_with_missing_contents() {
    use kopr_format::object_id::ObjectId;
    use kopr_format::snapshot::{DirEntry, EntryType, Permissions};
    let h = Harness::new();
    let (ids, packs) = keep_and_delete(&h);
    let r = h.open("u");
    let ghost = ContentId::new(None, &[0xab; 32]).unwrap();
    let mut m = list_snapshots(&r, None).unwrap().remove(0);
    m.root_entry = Some(DirEntry {
        name: "ghost".into(),
        entry_type: EntryType::File,
        permissions: Permissions(0o644),
        file_size: 1,
        mod_time: 0,
        user_id: 0,
        group_id: 0,
        object_id: ObjectId::direct(ghost),
        dir_summary: None,
    });
    r.manifests().put(m.source.labels(), &m).unwrap();
    r.flush().unwrap();
    drop(r);
    h.advance_hours(1);
    let err = maintenance::run(
        &h.open("u"),
        &RunOptions {
            mode: Mode::Full,
            safety: SafetyParameters::none(),
            force: false,
        },
        &Lines::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing from the index"), "{err}");
    assert_eq!(fate(&h, &ids), Fate::Live, "nothing was marked");
    assert!(present(&h, &packs));
}
