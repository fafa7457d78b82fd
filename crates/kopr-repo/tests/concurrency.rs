//! Writers and maintenance at the same time, on a manual clock that moves past the safety
//! windows between rounds, so that maintenance really marks, drops and deletes while writers
//! run: each round, two writer threads snapshot data that reuses the contents of a snapshot
//! deleted in an earlier round (being collected right then) while a third thread runs full
//! and quick maintenance with the default safety. Every snapshot restores at the end, and the
//! test asserts that packs were deleted during the rounds (the races were real).
//!
//! The clock moves only between rounds, when no writer is in the middle of a snapshot: a
//! writer whose upload spans more than the safety windows is outside what the safety
//! protects (Kopia's as well as kopr's).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kopr_blob::clock::ManualClock;
use kopr_blob::fault::{FaultyStorage, Op};
use kopr_blob::memory::MemoryStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::content::WriterIdentity;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, RunOptions, SafetyParameters, Silent};
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

#[derive(Clone)]
struct Shared {
    st: Arc<dyn BlobStorage>,
    clock: Arc<ManualClock>,
}

impl Shared {
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
}

/// A directory of files with the given seeds; returns its source.
fn tree(dir: &Path, seeds: &[u64]) -> SourceInfo {
    std::fs::create_dir_all(dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("f{i}")), random_bytes(*seed, 250_000)).unwrap();
    }
    SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: dir.to_string_lossy().into_owned(),
    }
}

fn snapshot(r: &Repository, dir: &Path, seeds: &[u64]) -> kopr_format::snapshot::SnapshotId {
    let src = tree(dir, seeds);
    create_snapshot(r, dir, &src, &UploadOptions::default(), &mut |_| {})
        .unwrap()
        .id
}

#[test]
fn writers_reusing_collected_data_during_maintenance_lose_nothing() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path().to_path_buf();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mem = Arc::new(MemoryStorage::with_clock(clock.clone()));
    let faulty = Arc::new(FaultyStorage::new(mem.clone()));
    let shared = Shared {
        st: faulty.clone(),
        clock: clock.clone(),
    };
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&*shared.st, &opts, "pw").unwrap();
    {
        let r = shared.open("u");
        let mut p = params::get_params(&r).unwrap();
        p.owner = "u@h".into();
        params::set_params(&r, &p).unwrap();
        r.flush().unwrap();
    }
    let rounds = 8u64;
    let mut packs_deleted_in_rounds = 0;
    for round in 0..rounds {
        // a snapshot deleted at once; its contents come back in later rounds' writers
        {
            let r = shared.open("u");
            let id = snapshot(&r, &tmp.join(format!("doomed{round}")), &[round * 100 + 50]);
            r.manifests().delete(id.manifest_id()).unwrap();
            r.flush().unwrap();
        }
        let deletes_before = faulty.calls(Op::Delete);
        let packs_before = mem.list_all("p").unwrap();
        let writers = spawn_writers(&shared, &tmp, round);
        let maint = spawn_maintenance(&shared);
        for w in writers {
            w.join().unwrap();
        }
        maint.join().unwrap();
        if faulty.calls(Op::Delete) > deletes_before {
            let now = mem.list_all("p").unwrap();
            packs_deleted_in_rounds += packs_before.iter().filter(|p| !now.contains(p)).count();
        }
        // past the GC and deletion windows before the next round
        clock.advance(Duration::from_secs(13 * 3600));
    }
    assert!(
        packs_deleted_in_rounds > 0,
        "no pack was deleted while writers ran: nothing raced"
    );
    // days of maintenance later, every snapshot still restores byte for byte
    for _ in 0..3 {
        clock.advance(Duration::from_secs(25 * 3600));
        maintenance::run(
            &shared.open("u"),
            &RunOptions {
                mode: Mode::Full,
                safety: SafetyParameters::full(),
                force: false,
            },
            &Silent,
        )
        .unwrap();
    }
    every_snapshot_restores(&shared, &tmp, rounds);
}

/// Two writers of a round: new data, the data of the snapshots deleted 1 and 3 rounds ago,
/// shared data.
fn spawn_writers(shared: &Shared, tmp: &Path, round: u64) -> Vec<std::thread::JoinHandle<()>> {
    (0..2u64)
        .map(|w| {
            let shared = shared.clone();
            let dir = tmp.join(format!("w{w}r{round}"));
            std::thread::spawn(move || {
                let r = shared.open(&format!("writer{w}"));
                // new data, the data of a snapshot deleted 1 and 3 rounds ago, shared data
                let mut seeds = vec![round * 100 + w, 7];
                for back in [1, 3] {
                    if round >= back {
                        seeds.push((round - back) * 100 + 50);
                    }
                }
                snapshot(&r, &dir, &seeds);
            })
        })
        .collect()
}

/// A full and a quick maintenance cycle on their own thread.
fn spawn_maintenance(shared: &Shared) -> std::thread::JoinHandle<()> {
    let shared = shared.clone();
    std::thread::spawn(move || {
        let r = shared.open("u");
        for mode in [Mode::Full, Mode::Quick] {
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
    })
}

/// Every snapshot the writers made restores byte for byte.
fn every_snapshot_restores(shared: &Shared, tmp: &Path, rounds: u64) {
    let r = shared.open("u");
    let snaps = list_snapshots(&r, None).unwrap();
    assert_eq!(snaps.len(), 2 * rounds as usize);
    for (i, m) in snaps.iter().enumerate() {
        let dest = tmp.join(format!("restore{i}"));
        restore(
            &r,
            m.root_entry.as_ref().unwrap(),
            &dest,
            RestoreOptions::default(),
        )
        .unwrap();
        let src = Path::new(&m.source.path);
        for e in std::fs::read_dir(src).unwrap().flatten() {
            assert_eq!(
                std::fs::read(dest.join(e.file_name())).unwrap(),
                std::fs::read(e.path()).unwrap(),
                "{:?}",
                e.path()
            );
        }
    }
}
