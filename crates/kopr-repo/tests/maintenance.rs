//! Maintenance on an injected clock: the full timeline of a deleted snapshot (when its
//! contents are marked, forgotten and their packs deleted) for `--safety=full` and `none`,
//! snapshots written by another client between every two tasks of a cycle, and cycles that
//! stop after each task.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{TimeZone, Utc};
use kopr_blob::clock::{Clock, ManualClock};
use kopr_blob::memory::MemoryStorage;
use kopr_blob::BlobStorage;
use kopr_format::index::ContentId;
use kopr_format::repository_blob::LOCKING_PREFIXES;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::content::WriterIdentity;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, Observer, RunOptions, SafetyParameters};
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::{OpenOptions, RepoError, Repository};
use kopr_testkit::random_bytes;

struct Harness {
    clock: Arc<ManualClock>,
    st: Arc<dyn BlobStorage>,
    tmp: tempfile::TempDir,
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Observer for Lines {
    fn log(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

impl Lines {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn source(p: &Path) -> SourceInfo {
    SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: p.to_string_lossy().into_owned(),
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_pack_size(0)
    }

    /// A repository whose packs hold `max_pack_size` bytes (0: the default 20 MiB).
    fn with_pack_size(max_pack_size: u32) -> Self {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
            max_pack_size,
            ..Default::default()
        };
        Repository::create(&*st, &opts, "pw").unwrap();
        let h = Harness {
            clock,
            st,
            tmp: tempfile::tempdir().unwrap(),
        };
        let r = h.open("u");
        let mut p = params::get_params(&r).unwrap();
        p.owner = "u@h".into();
        params::set_params(&r, &p).unwrap();
        r.flush().unwrap();
        h
    }

    fn open(&self, user: &str) -> Repository {
        Repository::open(
            self.st.clone(),
            "pw",
            OpenOptions {
                clock: self.clock.clone(),
                identity: WriterIdentity {
                    user: user.into(),
                    host: "h".into(),
                },
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn advance_hours(&self, h: u64) {
        self.clock.advance(StdDuration::from_secs(h * 3600));
    }

    /// Writes a directory with `files` random files and snapshots it; returns the manifest id.
    fn snapshot(&self, r: &Repository, name: &str, seed: u64, files: usize) -> String {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..files {
            std::fs::write(
                dir.join(format!("f{i}")),
                random_bytes(seed * 1000 + i as u64, 200_000),
            )
            .unwrap();
        }
        let m = create_snapshot(
            r,
            &dir,
            &source(&dir),
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        m.id
    }

    fn pack_ids(&self) -> Vec<String> {
        self.st
            .list_all("p")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    }

    fn cycle(&self, safety: SafetyParameters) -> Vec<String> {
        let r = self.open("u");
        let lines = Lines::default();
        maintenance::run(
            &r,
            &RunOptions {
                mode: Mode::Full,
                safety,
                force: false,
            },
            &lines,
        )
        .unwrap();
        lines.take()
    }

    fn restore_all(&self) {
        let r = self.open("u");
        for (i, m) in list_snapshots(&r, None).unwrap().iter().enumerate() {
            let dest = self.tmp.path().join(format!("restore-{}-{i}", m.id));
            let _ = std::fs::remove_dir_all(&dest);
            let root = m.root_entry.as_ref().unwrap();
            restore(&r, root, &dest, RestoreOptions::default()).unwrap();
            let src = Path::new(&m.source.path);
            for e in std::fs::read_dir(src).unwrap().flatten() {
                let got = std::fs::read(dest.join(e.file_name())).unwrap();
                assert_eq!(got, std::fs::read(e.path()).unwrap(), "{:?}", e.path());
            }
        }
    }
}

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
        .filter(|e| packs.contains(&e.pack_blob_id))
        .map(|e| e.content_id)
        .collect();
    assert!(!ids.is_empty());
    r.manifests().delete(r.contents(), &doomed).unwrap();
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

/// Another client whose snapshot straddles one task of the cycle: its contents (and index)
/// are written before task `at`, its manifest only before the task after it, as a snapshot
/// still uploading when GC lists the snapshots.
struct Interleave<'a> {
    h: &'a Harness,
    at: String,
    seed: u64,
    /// Directories under the harness's folder whose files the concurrent snapshot copies
    /// (deduplicated against the contents they were snapshotted into); none: new data.
    reuse: &'static [&'static str],
    done: Mutex<bool>,
    pending: Mutex<Option<(Repository, kopr_format::snapshot::SnapshotManifest)>>,
}

impl Interleave<'_> {
    fn upload_contents(&self) {
        let r = self.h.open("other");
        let dir = self.h.tmp.path().join(format!("conc-{}", self.seed));
        std::fs::create_dir_all(&dir).unwrap();
        if !self.reuse.is_empty() {
            // e.g. the deleted snapshot's bytes: deduplicated against contents that this very
            // cycle may be marking deleted, dropping or moving
            for from in self.reuse {
                for e in std::fs::read_dir(self.h.tmp.path().join(from)).unwrap() {
                    let e = e.unwrap();
                    let name = format!(
                        "{}-{}",
                        from.replace('/', "-"),
                        e.file_name().to_string_lossy()
                    );
                    std::fs::copy(e.path(), dir.join(name)).unwrap();
                }
            }
        } else {
            for i in 0..2 {
                std::fs::write(
                    dir.join(format!("f{i}")),
                    random_bytes(self.seed * 7 + i, 150_000),
                )
                .unwrap();
            }
        }
        let m = create_snapshot(
            &r,
            &dir,
            &source(&dir),
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        // hide the manifest again: the upload is "still running"
        r.manifests().delete(r.contents(), &m.id).unwrap();
        r.flush().unwrap();
        *self.pending.lock().unwrap() = Some((r, m));
    }

    fn finish_upload(&self) {
        if let Some((r, m)) = self.pending.lock().unwrap().take() {
            r.manifests()
                .put(r.contents(), m.source.labels(), &m)
                .unwrap();
            r.flush().unwrap();
        }
    }
}

impl Observer for Interleave<'_> {
    fn log(&self, _msg: &str) {}
    fn before_task(&self, task: &str) -> kopr_repo::Result<()> {
        self.finish_upload();
        if task == self.at {
            let mut done = self.done.lock().unwrap();
            if !*done {
                *done = true;
                self.upload_contents();
            }
        }
        Ok(())
    }
}

const FULL_TASKS: &[&str] = &[
    "snapshot-gc",
    "full-rewrite-contents",
    "full-drop-deleted-content",
    "full-delete-blobs",
    "compact-single-epoch",
    "advance-epoch",
    "generate-epoch-range-index",
    "cleanup-epoch-markers",
    "delete-superseded-epoch-indexes",
    "cleanup-logs",
];

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
    r.manifests()
        .put(r.contents(), m.source.labels(), &m)
        .unwrap();
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

/// A repository on in-memory storage that keeps object locks, created with `mode` and a 48 h
/// retention period in its `kopia.blobcfg`, at 2026-01-01 on a manual clock.
fn locking_harness(
    mode: &str,
) -> (
    Harness,
    Arc<kopr_blob::memory::MemoryStorage>,
    Arc<ManualClock>,
) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mem = Arc::new(kopr_blob::memory::MemoryStorage::with_object_lock(
        clock.clone(),
    ));
    let st: Arc<dyn BlobStorage> = mem.clone();
    let mut opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..Default::default()
    };
    opts.blob_config.retention_mode = mode.into();
    opts.blob_config.retention_period_nanos = 48 * 3600 * 1_000_000_000;
    Repository::create(&*st, &opts, "pw").unwrap();
    let h = Harness {
        clock: clock.clone(),
        st,
        tmp: tempfile::tempdir().unwrap(),
    };
    (h, mem, clock)
}

#[test]
fn full_maintenance_extends_object_locks_when_configured() {
    let (h, mem, clock) = locking_harness("GOVERNANCE");
    let r = h.open("u");
    let mut p = params::get_params(&r).unwrap();
    p.owner = "u@h".into();
    p.extend_object_locks = true;
    p.full.interval = StdDuration::from_secs(30 * 3600);
    let err = maintenance::check_extend_retention(&r, &p).unwrap_err();
    assert!(err.to_string().contains("must be 24h0m0s greater"), "{err}");
    p.full.interval = StdDuration::from_secs(24 * 3600);
    maintenance::check_extend_retention(&r, &p).unwrap();
    params::set_params(&r, &p).unwrap();
    r.flush().unwrap();
    h.snapshot(&r, "locked", 5, 2);
    drop(r);
    h.advance_hours(1);
    let log = h.cycle(SafetyParameters::full());
    assert!(
        log.iter()
            .any(|l| l.starts_with("Extended retention time of ")),
        "{log:#?}"
    );
    let t1 = clock.now() + chrono::Duration::hours(48);
    for prefix in ["p", "q", "x", "kopia.repository"] {
        for b in mem.list_all(prefix).unwrap() {
            let (mode, until) = mem.retention_of(&b.id).expect("locked");
            assert_eq!(mode, "GOVERNANCE");
            assert!(
                until >= t1 - chrono::Duration::seconds(1),
                "{} until {until}",
                b.id
            );
        }
    }
    h.advance_hours(24);
    h.cycle(SafetyParameters::full());
    let p = mem.list_all("p").unwrap().remove(0);
    assert_eq!(
        mem.retention_of(&p.id).unwrap().1,
        clock.now() + chrono::Duration::hours(48),
        "extended again by the next cycle"
    );
    h.restore_all();
}

#[test]
fn snapshots_lock_every_pack_and_index_blob_they_write_when_retention_is_configured() {
    let (h, mem, clock) = locking_harness("COMPLIANCE");
    let t0 = clock.now();
    let r = h.open("u");
    h.snapshot(&r, "first", 7, 3);
    r.flush().unwrap();
    drop(r);
    let locked_until = |prefix: &str| -> Vec<(String, chrono::DateTime<Utc>)> {
        mem.list_all(prefix)
            .unwrap()
            .into_iter()
            .map(|b| {
                let (mode, until) = mem
                    .retention_of(&b.id)
                    .unwrap_or_else(|| panic!("{} written without a lock", b.id));
                assert_eq!(mode, "COMPLIANCE", "{}", b.id);
                (b.id, until)
            })
            .collect()
    };
    let first_packs = locked_until("p");
    assert!(!first_packs.is_empty(), "the snapshot wrote data packs");
    assert!(!locked_until("q").is_empty(), "and metadata packs");
    assert!(!locked_until("xn").is_empty(), "and epoch index blobs");
    for (id, until) in locked_until("")
        .into_iter()
        .filter(|(id, _)| LOCKING_PREFIXES.iter().any(|p| id.starts_with(p)))
    {
        assert_eq!(until, t0 + chrono::Duration::hours(48), "{id}");
    }
    // Blobs outside the locking prefixes (session markers, logs) stay deletable.
    for b in mem.list_all("").unwrap() {
        if !LOCKING_PREFIXES.iter().any(|p| b.id.starts_with(p)) {
            assert!(mem.retention_of(&b.id).is_none(), "{} locked", b.id);
        }
    }

    // A later snapshot's packs are locked for the period from their own write.
    h.advance_hours(5);
    let r = h.open("u");
    h.snapshot(&r, "second", 8, 2);
    r.flush().unwrap();
    let new_packs: Vec<_> = locked_until("p")
        .into_iter()
        .filter(|p| !first_packs.contains(p))
        .collect();
    assert!(!new_packs.is_empty());
    for (id, until) in new_packs {
        assert_eq!(until, t0 + chrono::Duration::hours(53), "{id}");
    }
}

// --- partly unused packs (kopr's max-unused-percent rule) ---

/// Packs of 1 MiB hold about ten 100 kB files, so packs are full and no short-pack rewrite
/// interferes.
const SMALL_PACKS: u32 = 1 << 20;

/// Snapshots `both` (files `NN-a` and `NN-b` of `b_len` bytes, interleaved in the same packs)
/// and `a` (the `NN-a` files again, deduplicated against the same contents), then deletes
/// `both`: the `b` files become garbage in packs that stay partly live. Returns the packs.
fn interleaved_then_delete(h: &Harness, b_len: usize) -> Vec<String> {
    let r = h.open("u");
    let both = h.tmp.path().join("both");
    let a = h.tmp.path().join("a");
    std::fs::create_dir_all(&both).unwrap();
    std::fs::create_dir_all(&a).unwrap();
    for i in 0..20u64 {
        let live = random_bytes(500 + i, 100_000);
        std::fs::write(both.join(format!("{i:02}-a")), &live).unwrap();
        std::fs::write(a.join(format!("{i:02}-a")), &live).unwrap();
        std::fs::write(both.join(format!("{i:02}-b")), random_bytes(700 + i, b_len)).unwrap();
    }
    let snap = |dir: &Path| {
        create_snapshot(
            &r,
            dir,
            &source(dir),
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap()
        .id
    };
    let doomed = snap(&both);
    let packs = h.pack_ids();
    snap(&a);
    assert_eq!(h.pack_ids(), packs, "the second snapshot wrote no data");
    r.manifests().delete(r.contents(), &doomed).unwrap();
    r.flush().unwrap();
    packs
}

/// Bytes of `p` pack blobs in storage, and packed bytes of the live `p` contents.
fn stored_and_live(h: &Harness) -> (u64, u64) {
    let stored = h.st.list_all("p").unwrap().iter().map(|b| b.length).sum();
    let r = h.open("u");
    let live = r
        .contents()
        .list_contents(false)
        .unwrap()
        .iter()
        .filter(|e| e.pack_blob_id.starts_with('p'))
        .map(|e| u64::from(e.packed_length))
        .sum();
    (stored, live)
}

/// The statistics of the latest full rewrite.
fn last_rewrite_stats(h: &Harness) -> serde_json::Value {
    let r = h.open("u");
    let s = maintenance::schedule::get_schedule(&r).unwrap();
    let run = s
        .runs_of("full-rewrite-contents")
        .iter()
        .max_by_key(|r| r.start)
        .expect("a full rewrite ran")
        .clone();
    run.extra.unwrap()[0]["data"].clone()
}

#[test]
fn partly_unused_packs_are_emptied_on_the_timeline_explain_predicts() {
    use kopr_repo::maintenance::explain::{explain, Rule};
    let h = Harness::with_pack_size(SMALL_PACKS);
    let packs = interleaved_then_delete(&h, 100_000);
    // 2 MB of a files and 2 MB of b files (incompressible)
    let (stored, _) = stored_and_live(&h);
    assert!(stored > 4_000_000, "{stored} stored");
    h.advance_hours(1);
    h.cycle(SafetyParameters::full());
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let hours = |n: i64| t0 + chrono::Duration::hours(n);
    // the 25h cycle marks the b contents and copies the a contents out; it waits
    // MinRewriteToOrphanDeletionDelay, the 49h cycle cannot forget marks made at 25h, the
    // 73h cycle forgets them and deletes the packs
    let r = h.open("u");
    let x = explain(&r, &SafetyParameters::full()).unwrap();
    drop(r);
    assert_eq!(x.max_unused_percent, 5);
    for p in &packs {
        let f = x.packs.iter().find(|f| &f.blob_id == p).expect("explained");
        assert_eq!(f.rule, Rule::PartlyUnusedRewrite, "{f:?}");
        assert!(f.live_contents > 0, "{f:?}");
        assert!(f.unused_percent > 30.0 && f.unused_percent < 70.0, "{f:?}");
        assert_eq!(f.rewrite_at, Some(hours(25)), "{f:?}");
        assert_eq!(f.earliest_deletion, Some(hours(73)), "{f:?}");
    }
    assert_eq!(x.full_cycle_now.blobs, 0);
    assert!(x.full_cycle_now_safety_none.blobs >= packs.len() as u64);
    for (at, gone) in [(25, false), (49, false), (73, true)] {
        h.clock.set(hours(at));
        let log = h.cycle(SafetyParameters::full());
        let stored_now = h.pack_ids();
        for p in &packs {
            assert_eq!(!stored_now.contains(p), gone, "{p} at {at}h: {log:#?}");
        }
        if at == 25 {
            let st = last_rewrite_stats(&h);
            assert_eq!(st["maxUnusedPercent"], 5, "{st}");
            assert_eq!(st["partlyUnusedPackCount"], packs.len(), "{st}");
            assert_eq!(
                st["partlyUnusedRewrittenContentCount"].as_u64(),
                Some(20),
                "{st}"
            );
            assert!(
                log.iter().any(|l| l.contains("more than 5% unused")),
                "{log:#?}"
            );
            assert!(
                log.iter().any(|l| l.starts_with("Skipping blob deletion")),
                "{log:#?}"
            );
        }
        if !gone {
            let r = h.open("u");
            let x = explain(&r, &SafetyParameters::full()).unwrap();
            for p in &packs {
                let f = x.packs.iter().find(|f| &f.blob_id == p).unwrap();
                assert_eq!(f.earliest_deletion, Some(hours(73)), "at {at}h: {f:?}");
            }
        }
        h.restore_all();
    }
    let (stored, live) = stored_and_live(&h);
    assert!(
        stored * 10 <= live * 11,
        "{stored} bytes stored for {live} live after pruning"
    );
}

#[test]
fn safety_none_empties_partly_unused_packs_in_one_cycle() {
    let h = Harness::with_pack_size(SMALL_PACKS);
    let packs = interleaved_then_delete(&h, 100_000);
    h.clock.advance(StdDuration::from_secs(60));
    let log = h.cycle(SafetyParameters::none());
    let stored_now = h.pack_ids();
    assert!(packs.iter().all(|p| !stored_now.contains(p)), "{log:#?}");
    let (stored, live) = stored_and_live(&h);
    assert!(stored * 10 <= live * 11, "{stored} stored for {live} live");
    h.restore_all();
}

/// Packs are emptied in batches that each take one more pass over the index (so memory stays
/// bounded on large repositories): with batches of a few contents the cycle moves the same
/// contents and leaves the same result as one batch would.
#[test]
fn a_rewrite_in_many_small_batches_empties_the_same_packs() {
    std::env::set_var("KOPR_REWRITE_BATCH_CONTENTS", "3");
    let h = Harness::with_pack_size(SMALL_PACKS);
    let packs = interleaved_then_delete(&h, 100_000);
    h.clock.advance(StdDuration::from_secs(60));
    let log = h.cycle(SafetyParameters::none());
    std::env::remove_var("KOPR_REWRITE_BATCH_CONTENTS");
    let st = last_rewrite_stats(&h);
    assert!(
        st["partlyUnusedRewrittenContentCount"].as_u64() > Some(3),
        "several batches: {st}"
    );
    let stored_now = h.pack_ids();
    assert!(packs.iter().all(|p| !stored_now.contains(p)), "{log:#?}");
    let (stored, live) = stored_and_live(&h);
    assert!(stored * 10 <= live * 11, "{stored} stored for {live} live");
    h.restore_all();
}

#[test]
fn packs_under_the_max_unused_share_are_left_alone() {
    use kopr_repo::maintenance::explain::{explain, Rule};
    // 3 kB of garbage beside every 100 kB of live data: 3%, under the default 5%
    let h = Harness::with_pack_size(SMALL_PACKS);
    let packs = interleaved_then_delete(&h, 3_000);
    for at in [1, 24, 24, 24] {
        h.advance_hours(at);
        h.cycle(SafetyParameters::full());
        assert_eq!(h.pack_ids().len(), packs.len());
        assert!(packs.iter().all(|p| h.pack_ids().contains(p)));
        // (short q packs of metadata may be merged: that is the short-pack rule)
        let st = last_rewrite_stats(&h);
        assert_eq!(st["partlyUnusedPackCount"].as_u64(), Some(0), "{st}");
        assert_eq!(
            st["partlyUnusedRewrittenContentCount"].as_u64(),
            Some(0),
            "{st}"
        );
        if at == 24 && h.clock.now() == Utc.with_ymd_and_hms(2026, 1, 2, 1, 0, 0).unwrap() {
            // marked deleted, not forgotten yet: explain shows why the packs stay
            let r = h.open("u");
            let x = explain(&r, &SafetyParameters::full()).unwrap();
            for p in &packs {
                let f = x.packs.iter().find(|f| &f.blob_id == p).unwrap();
                assert_eq!(f.rule, Rule::SharesPackWithLiveContents, "{f:?}");
                assert!(f.unused_percent > 0.0 && f.unused_percent < 5.0, "{f:?}");
                assert_eq!(f.earliest_deletion, None);
                assert_eq!(f.rewrite_at, None);
            }
        }
    }
    h.restore_all();

    // 100 turns the rule off: half-unused packs stay too
    let h = Harness::with_pack_size(SMALL_PACKS);
    let r = h.open("u");
    let mut p = params::get_params(&r).unwrap();
    p.max_unused_percent = Some(100);
    params::set_params(&r, &p).unwrap();
    r.flush().unwrap();
    drop(r);
    let packs = interleaved_then_delete(&h, 100_000);
    for at in [1, 24, 24, 24] {
        h.advance_hours(at);
        h.cycle(SafetyParameters::full());
        assert!(packs.iter().all(|p| h.pack_ids().contains(p)));
    }
    assert_eq!(last_rewrite_stats(&h)["maxUnusedPercent"], 100);
    h.restore_all();
}

/// A snapshot still uploading while the cycle that empties the partly unused packs runs
/// (its contents written before each task in turn, its manifest before the next) reuses
/// contents of those packs, live and garbage: it restores after every later cycle.
#[test]
fn snapshots_reusing_contents_of_rewritten_packs_during_the_cycle_survive() {
    let mut interleaved = std::collections::BTreeSet::new();
    // the cycle at 25h rewrites (and skips blob deletion), the one at 49h deletes blobs
    for (i, task) in FULL_TASKS.iter().enumerate() {
        for at_hour in [25, 49] {
            let h = Harness::with_pack_size(SMALL_PACKS);
            interleaved_then_delete(&h, 100_000);
            h.advance_hours(1);
            h.cycle(SafetyParameters::full());
            h.advance_hours(24);
            if at_hour == 49 {
                h.cycle(SafetyParameters::full());
                h.advance_hours(24);
            }
            let obs = Interleave {
                h: &h,
                at: task.to_string(),
                seed: 300 + i as u64 + at_hour,
                reuse: &["a", "both"],
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
            if *obs.done.lock().unwrap() {
                interleaved.insert(*task);
            }
            h.restore_all();
            for at in [1, 23, 24, 24, 24] {
                h.advance_hours(at);
                h.cycle(SafetyParameters::full());
                h.restore_all();
            }
        }
    }
    let all: std::collections::BTreeSet<&str> = FULL_TASKS.iter().copied().collect();
    assert_eq!(interleaved, all);
}
