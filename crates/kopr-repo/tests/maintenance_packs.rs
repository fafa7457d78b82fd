//! Maintenance at the level of packs: object locks extended and written when retention is
//! configured, and partly unused packs rewritten (on the timeline explain predicts, in one
//! cycle with `--safety=none`, in small batches, left alone under the max unused share) while
//! snapshots reusing their contents survive.

use chrono::{TimeZone, Utc};
use kopr_blob::clock::{Clock, ManualClock};
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::LOCKING_PREFIXES;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, RunOptions, SafetyParameters};
use kopr_repo::snapshot::{create_snapshot, UploadOptions};
use kopr_repo::Repository;
use kopr_testkit::random_bytes;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

mod maintenance_harness;
use maintenance_harness::*;

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
    r.manifests().delete(doomed.manifest_id()).unwrap();
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
