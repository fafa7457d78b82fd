//! Snapshots and maintenance over storage that fails, lies and lags: transient errors are
//! retried away, permanent ones fail the snapshot without damaging what was stored before,
//! and listings that miss recent writes never make maintenance delete them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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

fn setup() -> (Arc<MemoryStorage>, Arc<FaultyStorage>, Arc<dyn BlobStorage>) {
    let mem = Arc::new(MemoryStorage::new());
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
    let r = open(&st);
    let mut p = params::get_params(&r).unwrap();
    p.owner = params::this_user(&r);
    params::set_params(&r, &p).unwrap();
    r.flush().unwrap();
    (mem, faulty, st)
}

fn open(st: &Arc<dyn BlobStorage>) -> Repository {
    Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap()
}

fn restores(r: &Repository, tmp: &Path, seed: u64) {
    let src = tmp.join(format!("src{seed}"));
    let m = list_snapshots(r, None)
        .unwrap()
        .into_iter()
        .find(|m| m.source.path == src.to_string_lossy())
        .expect("snapshot listed");
    let dest = tmp.join(format!("restore{seed}-{}", m.id));
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
    let (_, faulty, st) = setup();
    for (op, prefix) in [
        (Op::Put, "p"),
        (Op::Put, "q"),
        (Op::Put, "x"),
        (Op::Get, ""),
        (Op::List, ""),
    ] {
        faulty.add_rule(Rule::new(op, prefix, 2, Fault::Transient));
    }
    let r = open(&st);
    let src = tree(&tmp.join("src1"), 1);
    create_snapshot(
        &r,
        &tmp.join("src1"),
        &src,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    faulty.add_rule(Rule::new(Op::Delete, "", 1, Fault::Transient));
    maintenance::run(
        &r,
        &RunOptions {
            mode: Mode::Full,
            safety: SafetyParameters::none(),
            force: false,
        },
        &Silent,
    )
    .unwrap();
    let r = open(&st);
    restores(&r, tmp, 1);
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
}

#[test]
fn a_permanent_pack_write_failure_fails_the_snapshot_and_keeps_earlier_ones() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let (mem, faulty, st) = setup();
    let r = open(&st);
    let src = tree(&tmp.join("src1"), 1);
    create_snapshot(
        &r,
        &tmp.join("src1"),
        &src,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    drop(r);
    let before = mem.list_all("x").unwrap().len();
    faulty.add_rule(Rule::new(Op::Put, "p", 0, Fault::Permanent));
    let r = open(&st);
    let src2 = tree(&tmp.join("src2"), 2);
    let err = create_snapshot(
        &r,
        &tmp.join("src2"),
        &src2,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(!err.to_string().is_empty());
    drop(r);
    faulty.clear();
    // nothing half-written is referenced: no new index blob points at missing packs
    let r = open(&st);
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
    assert_eq!(list_snapshots(&r, None).unwrap().len(), 1);
    restores(&r, tmp, 1);
    assert!(mem.list_all("x").unwrap().len() >= before);
    // and the same snapshot succeeds once storage is healthy
    create_snapshot(
        &r,
        &tmp.join("src2"),
        &src2,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    restores(&open(&st), tmp, 2);
}

#[test]
fn listings_that_miss_recent_writes_never_make_maintenance_delete_them() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let (_, faulty, st) = setup();
    faulty.set_list_lag(1000);
    let r = open(&st);
    let src = tree(&tmp.join("src3"), 3);
    create_snapshot(
        &r,
        &tmp.join("src3"),
        &src,
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    drop(r);
    let r = open(&st);
    for mode in [Mode::Full, Mode::Quick, Mode::Full] {
        maintenance::run(
            &r,
            &RunOptions {
                mode,
                safety: SafetyParameters::full(),
                force: false,
            },
            &Silent,
        )
        .unwrap();
    }
    faulty.set_list_lag(0);
    let r = open(&st);
    restores(&r, tmp, 3);
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
}
