//! Snapshots and maintenance over storage that fails, lies and lags: transient errors are
//! retried away, permanent ones fail the snapshot without damaging what was stored before,
//! and listings that miss recent writes never make maintenance delete them. Time is a manual
//! clock moved past the safety windows, so maintenance really deletes; every test asserts that
//! its faults fired.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kopr_blob::clock::ManualClock;
use kopr_blob::fault::{Fault, FaultyStorage, Op, Rule};
use kopr_blob::memory::MemoryStorage;
use kopr_blob::retrying::RetryingStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, RunOptions, SafetyParameters, Silent};
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::verify::verify_contents;
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

fn tree(root: &Path, seed: u64) -> SourceInfo {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..3 {
        std::fs::write(
            root.join(format!("f{i}")),
            random_bytes(seed * 10 + i, 700_000),
        )
        .unwrap();
    }
    SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: root.to_string_lossy().into_owned(),
    }
}

struct Setup {
    mem: Arc<MemoryStorage>,
    faulty: Arc<FaultyStorage>,
    st: Arc<dyn BlobStorage>,
    clock: Arc<ManualClock>,
}

impl Setup {
    fn open(&self) -> Repository {
        Repository::open(
            self.st.clone(),
            "pw",
            OpenOptions {
                clock: self.clock.clone(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn advance_hours(&self, h: u64) {
        self.clock.advance(Duration::from_secs(h * 3600));
    }

    fn snapshot(&self, tmp: &Path, seed: u64) -> kopr_format::snapshot::SnapshotId {
        let dir = tmp.join(format!("src{seed}"));
        let src = tree(&dir, seed);
        create_snapshot(
            &self.open(),
            &dir,
            &src,
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap()
        .id
    }

    fn cycle(&self, mode: Mode, safety: SafetyParameters) {
        maintenance::run(
            &self.open(),
            &RunOptions {
                mode,
                safety,
                force: false,
            },
            &Silent,
        )
        .unwrap();
    }
}

fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mem = Arc::new(MemoryStorage::with_clock(clock.clone()));
    let faulty = Arc::new(FaultyStorage::new(mem.clone()));
    let st: Arc<dyn BlobStorage> = Arc::new(RetryingStorage::new(
        faulty.clone(),
        5,
        Duration::from_millis(1),
    ));
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").unwrap();
    let s = Setup {
        mem,
        faulty,
        st,
        clock,
    };
    let r = s.open();
    let mut p = params::get_params(&r).unwrap();
    p.owner = params::this_user(&r);
    params::set_params(&r, &p).unwrap();
    r.flush().unwrap();
    s
}

fn restores(r: &Repository, tmp: &Path, seed: u64) {
    let src = tmp.join(format!("src{seed}"));
    let m = list_snapshots(r, None)
        .unwrap()
        .into_iter()
        .find(|m| m.source.path == src.to_string_lossy())
        .expect("snapshot listed");
    let dest = tmp.join(format!("restore{seed}-{}", m.id));
    let _ = std::fs::remove_dir_all(&dest);
    restore(
        r,
        m.root_entry.as_ref().unwrap(),
        &dest,
        RestoreOptions::default(),
    )
    .unwrap();
    for i in 0..3 {
        assert_eq!(
            std::fs::read(dest.join(format!("f{i}"))).unwrap(),
            random_bytes(seed * 10 + i, 700_000)
        );
    }
}

#[test]
fn transient_failures_on_every_kind_of_call_are_retried_away() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let s = setup();
    let rules = [
        (Op::Put, "p"),
        (Op::Put, "q"),
        (Op::Put, "x"),
        (Op::Get, ""),
        (Op::List, ""),
    ];
    for (op, prefix) in rules {
        s.faulty
            .add_rule(Rule::new(op, prefix, 2, Fault::Transient));
    }
    s.snapshot(tmp, 1);
    let doomed = s.snapshot(tmp, 2);
    // every rule fired once: three on puts, one on gets, one on listings
    assert_eq!(s.faulty.fired(Op::Put), 3);
    assert_eq!(s.faulty.fired(Op::Get), 1);
    assert_eq!(s.faulty.fired(Op::List), 1);
    // the second snapshot deleted; a day later full maintenance deletes its packs, the first
    // deletion failing once
    let r = s.open();
    r.manifests().delete(doomed.manifest_id()).unwrap();
    r.flush().unwrap();
    let packs_before = s.mem.list_all("p").unwrap().len();
    s.faulty
        .add_rule(Rule::new(Op::Delete, "", 1, Fault::Transient));
    s.advance_hours(25);
    s.cycle(Mode::Full, SafetyParameters::none());
    assert_eq!(s.faulty.fired(Op::Delete), 1);
    assert!(
        s.faulty.calls(Op::Delete) >= 2,
        "the failed deletion was retried"
    );
    assert!(
        s.mem.list_all("p").unwrap().len() < packs_before,
        "the deleted snapshot's packs are gone"
    );
    let r = s.open();
    restores(&r, tmp, 1);
    assert_eq!(list_snapshots(&r, None).unwrap().len(), 1);
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
}

#[test]
fn a_permanent_pack_write_failure_fails_the_snapshot_and_keeps_earlier_ones() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let s = setup();
    s.snapshot(tmp, 1);
    let before = s.mem.list_all("x").unwrap().len();
    s.faulty
        .add_rule(Rule::new(Op::Put, "p", 0, Fault::Permanent));
    let r = s.open();
    let src2 = tree(&tmp.join("src2"), 2);
    let err = create_snapshot(
        &r,
        &tmp.join("src2"),
        &src2,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(s.faulty.fired(Op::Put) >= 1, "the pack write failed");
    assert!(err.to_string().contains("injected permanent"), "{err}");
    drop(r);
    s.faulty.clear();
    // nothing half-written is referenced: no new index blob points at missing packs
    let r = s.open();
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
    assert_eq!(list_snapshots(&r, None).unwrap().len(), 1);
    restores(&r, tmp, 1);
    assert!(s.mem.list_all("x").unwrap().len() >= before);
    // maintenance long after the failure keeps everything the first snapshot needs
    for h in [25, 25, 25] {
        s.advance_hours(h);
        s.cycle(Mode::Full, SafetyParameters::full());
    }
    restores(&s.open(), tmp, 1);
    // and the same snapshot succeeds once storage is healthy
    s.snapshot(tmp, 2);
    restores(&s.open(), tmp, 2);
}

/// Listings that miss a snapshot's recent writes: its index blobs (its packs are listed and
/// look unreferenced), or every blob but its data pack. The stale listing lasts less than the
/// safety windows (23 hours here), and quick and full maintenance during it must not delete
/// the packs. The same listings with `--safety=none` do delete them, which shows the race is
/// real.
#[test]
fn listings_that_miss_recent_writes_never_make_maintenance_delete_them() {
    for hide_all_but_data in [false, true] {
        for safety in [SafetyParameters::full(), SafetyParameters::none()] {
            let tmpdir = tempfile::tempdir().unwrap();
            let tmp = tmpdir.path();
            let s = setup();
            let none = safety.name() == "none";
            let old: Vec<String> = s
                .mem
                .list_all("")
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect();
            s.snapshot(tmp, 3);
            let new: Vec<String> = s
                .mem
                .list_all("")
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .filter(|id| !old.contains(id))
                .collect();
            let hidden: Vec<String> = new
                .iter()
                .filter(|id| id.starts_with('x') || (hide_all_but_data && !id.starts_with('p')))
                .cloned()
                .collect();
            assert!(hidden.iter().any(|id| id.starts_with('x')), "{new:?}");
            s.faulty.hide_from_listings(&hidden);
            let packs = s.mem.list_all("p").unwrap();
            assert!(!packs.is_empty());
            assert_eq!(s.faulty.list_all("p").unwrap(), packs, "packs listed");
            let hidden_before = s.faulty.hidden_by_lag();
            for (h, mode) in [(1, Mode::Quick), (11, Mode::Full), (11, Mode::Full)] {
                s.advance_hours(h);
                s.cycle(mode, safety);
            }
            assert!(
                s.faulty.hidden_by_lag() > hidden_before,
                "maintenance's listings missed the blobs"
            );
            let kept = packs.iter().all(|p| s.mem.get_metadata(&p.id).is_ok());
            if none {
                assert!(!kept, "with no safety margins the packs should go");
                continue;
            }
            assert!(kept, "a referenced pack was deleted ({hidden:?} hidden)");
            // the listing catches up; days of maintenance later everything still restores
            s.faulty.set_list_lag(0);
            for h in [25, 25, 25] {
                s.advance_hours(h);
                s.cycle(Mode::Full, SafetyParameters::full());
            }
            let r = s.open();
            restores(&r, tmp, 3);
            assert!(verify_contents(&r, 100.0, false)
                .unwrap()
                .problems
                .is_empty());
        }
    }
}

/// A repository of 1 MiB packs over faulty memory storage (on a manual clock), the storage
/// beneath, and a way to open the repository again.
fn small_pack_repository() -> (
    Arc<MemoryStorage>,
    Arc<FaultyStorage>,
    impl Fn() -> Repository,
) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mem = Arc::new(MemoryStorage::with_clock(clock.clone()));
    let faulty = Arc::new(FaultyStorage::new(mem.clone()));
    let st: Arc<dyn BlobStorage> = faulty.clone();
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        max_pack_size: 1 << 20,
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").unwrap();
    let open = move || {
        let clock = clock.clone();
        Repository::open(
            st.clone(),
            "pw",
            OpenOptions {
                clock,
                ..Default::default()
            },
        )
        .unwrap()
    };
    (mem, faulty, open)
}

/// Full packs are written by background writers while the snapshot goes on: a failure of one
/// of them (not the first, not the last) still fails the snapshot, no index points at a pack
/// that is missing, and the next snapshot succeeds.
#[test]
fn a_failed_background_pack_write_fails_the_snapshot_and_indexes_nothing_missing() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let (mem, faulty, open) = small_pack_repository();
    // 12 MiB of random data: a dozen packs of 1 MiB, most of them filled mid-snapshot.
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..12u64 {
        std::fs::write(src.join(format!("f{i:02}")), random_bytes(i, 1 << 20)).unwrap();
    }
    let info = SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: src.to_string_lossy().into_owned(),
    };
    faulty.add_rule(Rule::new(Op::Put, "p", 4, Fault::Permanent));
    let r = open();
    let err = create_snapshot(&r, &src, &info, &UploadOptions::default(), &mut |_| {}).unwrap_err();
    assert_eq!(faulty.fired(Op::Put), 1, "the fourth pack write failed");
    assert!(err.to_string().contains("injected permanent"), "{err}");
    drop(r);
    faulty.clear();
    let r = open();
    assert!(list_snapshots(&r, None).unwrap().is_empty());
    let report = verify_contents(&r, 100.0, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let m = create_snapshot(&r, &src, &info, &UploadOptions::default(), &mut |_| {}).unwrap();
    let dest = tmp.join("dest");
    restore(
        &r,
        m.root_entry.as_ref().unwrap(),
        &dest,
        RestoreOptions::default(),
    )
    .unwrap();
    kopr_testkit::assert_same_tree(&src, &dest);
    assert!(mem.list_all("p").unwrap().len() >= 12);
}

/// A content deleted while its pack is being written stays deleted once the pack lands.
#[test]
fn a_deletion_made_while_the_contents_pack_is_written_is_indexed() {
    let (_, faulty, open) = small_pack_repository();
    // The first pack's write (in the background, once the second content fills it) takes a
    // while: the first content is deleted meanwhile.
    faulty.add_rule(Rule::new(
        Op::Put,
        "p",
        1,
        Fault::Delay(Duration::from_millis(400)),
    ));
    let r = open();
    let cm = r.contents();
    let (a, b) = (random_bytes(1, 600_000), random_bytes(2, 600_000));
    let ida = cm.write_content(&a, None, None).unwrap();
    let idb = cm.write_content(&b, None, None).unwrap();
    cm.delete_content(&ida).unwrap();
    assert!(cm.content_info(&ida).unwrap().unwrap().deleted);
    cm.flush().unwrap();
    assert_eq!(faulty.fired(Op::Put), 1, "the pack write was slowed");
    drop(r);
    let r = open();
    let info = r.contents().content_info(&ida).unwrap().unwrap();
    assert!(info.deleted, "the deletion outlived the pack's landing");
    assert_eq!(
        r.contents().get_content(&ida).unwrap(),
        a,
        "its bytes stay readable"
    );
    assert!(!r.contents().content_info(&idb).unwrap().unwrap().deleted);
}

/// A pack whose write fails takes its entries out and puts back those they replaced.
#[test]
fn a_failed_pack_write_puts_back_the_entries_its_contents_replaced() {
    let (_, faulty, open) = small_pack_repository();
    let r = open();
    let cm = r.contents();
    let data = random_bytes(3, 100_000);
    let id = cm.write_content(&data, None, None).unwrap();
    cm.flush().unwrap();
    // Deleted (an entry waiting for the index), then undeleted into a new pack whose write
    // fails: the deletion is what the next index records, not nothing.
    cm.delete_content(&id).unwrap();
    assert!(cm.undelete_content(&id).unwrap());
    assert!(!cm.content_info(&id).unwrap().unwrap().deleted);
    faulty.add_rule(Rule::new(Op::Put, "p", 1, Fault::Permanent));
    let err = cm.flush().unwrap_err();
    assert!(err.to_string().contains("injected permanent"), "{err}");
    assert_eq!(faulty.fired(Op::Put), 1);
    faulty.clear();
    assert!(cm.content_info(&id).unwrap().unwrap().deleted);
    cm.flush().unwrap();
    drop(r);
    let r = open();
    let info = r.contents().content_info(&id).unwrap().unwrap();
    assert!(info.deleted, "the deletion was indexed");
    assert_eq!(r.contents().get_content(&id).unwrap(), data);
}
