//! Processes that die part-way leave a repository that opens, verifies and restores what was
//! completed; running again completes the work. Deterministic crash points first (right after
//! the Nth blob write of a snapshot or a maintenance cycle, through the CLI's test hook
//! `KOPR_TEST_CRASH_AFTER_BLOB_WRITES`; SIGINT after the first write), then pseudo-random
//! SIGKILLs as an extra.

#![cfg(unix)]

use kopr_testkit::random_bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use kopr_testkit::assert_same_tree;
use kopr_testkit::cli::Kopr;
use std::time::Duration;

fn kopr(cfg: &Path) -> Command {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).cmd(&[])
}

/// What `std::process::abort` dies of.
const SIGABRT: i32 = 6;

/// Runs `kopr args`, requires success, returns stdout.
fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = kopr(cfg).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kopr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every blob the repository lists: id and length.
fn blobs(cfg: &Path) -> BTreeMap<String, u64> {
    kopr_testkit::cli::blob_lengths(&ok(cfg, &["blob", "ls", "--json"]))
}

/// `files` files of `size` pseudo-random bytes under `root`, in two directories.
fn write_tree(root: &Path, seed: u64, files: u64, size: usize) {
    for f in 0..files {
        let dir = root.join(format!("d{}", f % 2));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{f}")),
            random_bytes(seed * 100 + f, size),
        )
        .unwrap();
    }
}

/// Restores snapshot `id` and compares it with `src` byte for byte.
fn restores_as(cfg: &Path, tmp: &Path, id: &str, src: &Path, tag: &str) {
    let dst = tmp.join(format!("restored-{tag}"));
    ok(cfg, &["snapshot", "restore", id, dst.to_str().unwrap()]);
    assert_same_tree(src, &dst);
    std::fs::remove_dir_all(&dst).unwrap();
}

/// A fast repository at `tmp/repo`.
fn create_repo(tmp: &Path) -> std::path::PathBuf {
    let cfg = tmp.join("repository.config");
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &cfg).create_filesystem(&tmp.join("repo"));
    cfg
}

/// The snapshot id of a `snapshot create --json` output.
fn snapshot_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Runs `args` with `KOPR_TEST_CRASH_AFTER_BLOB_WRITES=n`: `None` when it completed (it writes
/// fewer than `n` blobs), else the id of the blob whose write it died right after (SIGABRT).
fn run_crashing_after(cfg: &Path, args: &[&str], n: u64) -> Option<String> {
    let out = kopr(cfg)
        .args(args)
        .env("KOPR_TEST_CRASH_AFTER_BLOB_WRITES", n.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return None;
    }
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(SIGABRT),
        "{args:?} failed instead of dying at write {n}: {err}"
    );
    let prefix = format!("test hook: abort after blob write {n}: ");
    let id = err
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no hook line for write {n}: {err}"));
    Some(id.to_string())
}

/// After a crash: the repository opens and verifies, and `earlier` (snapshot id, source) still
/// restores byte for byte.
fn interrupted_state_is_sound(cfg: &Path, tmp: &Path, earlier: &[(&str, &Path)], n: u64) {
    ok(cfg, &["snapshot", "ls", "--all"]);
    ok(cfg, &["snapshot", "verify"]);
    ok(cfg, &["content", "verify"]);
    for (i, (id, src)) in earlier.iter().enumerate() {
        restores_as(cfg, tmp, id, src, &format!("{n}-{i}"));
    }
}

/// A snapshot that dies right after its 1st, 2nd, ... blob write (each run resuming from what
/// the previous one left) leaves exactly what it wrote: the blob it died after is stored,
/// nothing stored before is gone, the repository verifies, the earlier snapshot restores; the
/// run that finally completes restores byte for byte.
#[test]
fn a_snapshot_dying_after_each_blob_write_loses_nothing() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let cfg = create_repo(tmp);
    let (src_a, src_b) = (tmp.join("a"), tmp.join("b"));
    write_tree(&src_a, 1, 4, 300_000);
    let id_a = snapshot_id(&ok(
        &cfg,
        &["snapshot", "create", src_a.to_str().unwrap(), "--json"],
    ));
    // 24 MiB of new data: more than one pack
    write_tree(&src_b, 2, 12, 2 << 20);
    let args = ["snapshot", "create", src_b.to_str().unwrap(), "--json"];
    let (mut crashes, mut completed) = (0, false);
    for n in 1..=100u64 {
        let before = blobs(&cfg);
        let Some(last) = run_crashing_after(&cfg, &args, n) else {
            completed = true;
            break;
        };
        crashes += 1;
        let after = blobs(&cfg);
        assert!(after.contains_key(&last), "write {n}: {last} not stored");
        for id in before.keys().filter(|id| !id.starts_with('s')) {
            assert!(after.contains_key(id), "write {n}: {id} vanished");
        }
        interrupted_state_is_sound(&cfg, tmp, &[(&id_a, &src_a)], n);
        // A snapshot of b is listed as complete only when the run died after its very last
        // write (the manifest's index): then it restores, and the next run completes. A run
        // that died after finishing its work would leave one complete snapshot per crash.
        let ls: serde_json::Value =
            serde_json::from_str(&ok(&cfg, &["snapshot", "ls", "--all", "--json"])).unwrap();
        let complete: Vec<&str> = ls
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["source"]["path"] == src_b.to_str().unwrap() && m["incomplete"].is_null())
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert!(
            complete.len() <= 1,
            "write {n}: complete snapshots {complete:?}"
        );
        for id in complete {
            restores_as(&cfg, tmp, id, &src_b, "b-early");
        }
    }
    // the hook fired mid-run: a run that writes fewer blobs than the crash point completes
    assert!(completed, "every run died: the crash came after the work");
    assert!(
        crashes >= 3,
        "only {crashes} crash points before completion"
    );
    eprintln!("{crashes} crash points before completion");
    // the completing run
    let out = ok(&cfg, &args);
    let id_b = snapshot_id(&out);
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["stats"]["fileCount"], 12);
    restores_as(&cfg, tmp, &id_b, &src_b, "b");
    restores_as(&cfg, tmp, &id_a, &src_a, "a");
}

/// Full maintenance with `--safety=none` dying right after each of its blob writes (rewritten
/// packs, indexes, schedule, logs) never damages the kept snapshot; the run that completes
/// frees the deleted snapshot's data.
#[test]
fn maintenance_dying_after_each_blob_write_loses_nothing() {
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path();
    let cfg = create_repo(tmp);
    let (keep, gone) = (tmp.join("keep"), tmp.join("gone"));
    write_tree(&keep, 3, 4, 300_000);
    write_tree(&gone, 4, 4, 300_000);
    let id_keep = snapshot_id(&ok(
        &cfg,
        &["snapshot", "create", keep.to_str().unwrap(), "--json"],
    ));
    let id_gone = snapshot_id(&ok(
        &cfg,
        &["snapshot", "create", gone.to_str().unwrap(), "--json"],
    ));
    ok(&cfg, &["snapshot", "delete", &id_gone, "--delete"]);
    let packs = |cfg: &Path| -> u64 {
        blobs(cfg)
            .iter()
            .filter(|(id, _)| id.starts_with('p'))
            .map(|(_, len)| len)
            .sum()
    };
    let size_before = packs(&cfg);
    let args = ["maintenance", "run", "--full", "--safety=none"];
    let (mut crashes, mut completed) = (0, false);
    for n in 1..=100u64 {
        let Some(last) = run_crashing_after(&cfg, &args, n) else {
            completed = true;
            break;
        };
        crashes += 1;
        assert!(
            blobs(&cfg).contains_key(&last),
            "write {n}: {last} not stored"
        );
        if n == 1 {
            // died after its first write: far from the deletion of any pack
            assert!(
                packs(&cfg) >= size_before,
                "the first write came after a deletion"
            );
        }
        interrupted_state_is_sound(&cfg, tmp, &[(&id_keep, &keep)], n);
    }
    // the hook fired mid-run: a run that writes fewer blobs than the crash point completes
    assert!(completed, "every run died: the crash came after the work");
    assert!(
        crashes >= 3,
        "only {crashes} crash points before completion"
    );
    eprintln!("{crashes} crash points before completion");
    ok(&cfg, &args);
    let size_after = packs(&cfg);
    assert!(
        size_after + 4 * 300_000 <= size_before,
        "packs {size_before} -> {size_after}: the deleted snapshot's data is still there"
    );
    interrupted_state_is_sound(&cfg, tmp, &[(&id_keep, &keep)], 999);
}

/// Ctrl-C (SIGINT, sent by the process to itself right after its first blob write, so it
/// always lands in the middle) saves a checkpoint that the next run resumes.
#[test]
fn ctrl_c_saves_a_checkpoint_that_the_next_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let src = tmp.path().join("data");
    for d in 0..16 {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..4 {
            std::fs::write(
                dir.join(format!("f{f}")),
                random_bytes(d * 100 + f + 7, 1 << 20),
            )
            .unwrap();
        }
    }
    let repo = tmp.path().join("repo");
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &cfg).create_filesystem(&repo);
    let out = kopr(&cfg)
        .args(["snapshot", "create", src.to_str().unwrap()])
        .env("KOPR_TEST_SIGINT_AFTER_BLOB_WRITES", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("test hook: SIGINT after blob write 1"),
        "{err}"
    );
    assert!(
        !out.status.success(),
        "the interrupted run succeeded: {err}"
    );
    assert!(err.contains("incomplete (canceled)"), "{err}");
    let ls = ok(&cfg, &["snapshot", "ls", "--incomplete"]);
    assert!(ls.contains("incomplete:canceled"), "{ls}");
    let out = ok(
        &cfg,
        &["snapshot", "create", src.to_str().unwrap(), "--json"],
    );
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["stats"]["fileCount"], 64);
    assert!(m.get("incomplete").is_none());
    restores_as(&cfg, tmp.path(), m["id"].as_str().unwrap(), &src, "resumed");
}

/// A small deterministic tree for round `n`.
fn round_tree(root: &Path, n: u64) {
    std::fs::create_dir_all(root).unwrap();
    for f in 0..4 {
        // every other round shares most bytes with the previous one (dedup across kills)
        let seed = if f < 3 { (n / 2) * 10 + f } else { n * 10 + f };
        std::fs::write(root.join(format!("f{f}")), random_bytes(seed, 300_000)).unwrap();
    }
}

#[test]
fn hundreds_of_kills_during_snapshots_and_maintenance_lose_nothing_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    create_repository(&cfg, &tmp.path().join("repo"));
    // deterministic pseudo-random kill delays
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let kills = 120;
    let (mut killed, mut completed) = (0, 0);
    for n in 0..kills {
        if run_and_maybe_kill(&cfg, tmp.path(), n, next()) {
            completed += 1;
        } else {
            killed += 1;
        }
        if n % 20 == 19 {
            delete_a_third_of_the_snapshots(&cfg);
        }
    }
    // How many runs the kills interrupted depends on the machine's speed: reported, not
    // asserted (the deterministic crash points above cover every write).
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "random kills: {killed} runs killed, {completed} completed"
        );
    }
    // a final uninterrupted cycle, then everything that is listed verifies and restores
    let m = kopr(&cfg)
        .args(["maintenance", "run", "--full", "--safety=none"])
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let v = kopr(&cfg).args(["snapshot", "verify"]).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let cv = kopr(&cfg).args(["content", "verify"]).output().unwrap();
    assert!(
        cv.status.success(),
        "{}",
        String::from_utf8_lossy(&cv.stderr)
    );
    every_complete_snapshot_restores(&cfg, tmp.path());
}

/// A filesystem repository at `repo`, connected with config `cfg`.
fn create_repository(cfg: &Path, repo: &Path) {
    let st = kopr(cfg)
        .args([
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "testing-only-insecure", // fast opens: the test is about crashes
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
}

/// Round `n`: a snapshot of a new tree (two rounds in three) or a full maintenance cycle,
/// killed after `delay % 150` ms unless it finished; true when it completed (successfully).
fn run_and_maybe_kill(cfg: &Path, tmp: &Path, n: u64, delay: u64) -> bool {
    let args: Vec<String> = match n % 3 {
        0 | 1 => {
            let dir = tmp.join(format!("src/r{n}"));
            round_tree(&dir, n);
            vec![
                "snapshot".into(),
                "create".into(),
                dir.to_string_lossy().into(),
            ]
        }
        _ => {
            // delete an older snapshot now and then, then collect with no safety margins
            vec![
                "maintenance".into(),
                "run".into(),
                "--full".into(),
                "--safety=none".into(),
            ]
        }
    };
    let mut child = kopr(cfg)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(delay % 150));
    match child.try_wait().unwrap() {
        Some(s) => {
            assert!(s.success(), "{args:?} failed on its own");
            true
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

/// Deletes a third of the listed snapshots so maintenance has garbage to collect.
fn delete_a_third_of_the_snapshots(cfg: &Path) {
    let ls = kopr(cfg)
        .args(["snapshot", "ls", "--all", "--json"])
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    for (i, m) in v.as_array().unwrap().iter().enumerate() {
        if i % 3 == 0 {
            let id = m["id"].as_str().unwrap();
            let d = kopr(cfg)
                .args(["snapshot", "delete", id, "--delete"])
                .output()
                .unwrap();
            assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
        }
    }
}

/// Every complete snapshot listed restores to the tree of its round.
fn every_complete_snapshot_restores(cfg: &Path, tmp: &Path) {
    let ls = kopr(cfg)
        .args(["snapshot", "ls", "--all", "--json"])
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert!(!snaps.is_empty());
    for m in snaps {
        if m["incomplete"].is_string() {
            continue; // a checkpoint of a killed run
        }
        let id = m["id"].as_str().unwrap();
        let path = m["source"]["path"].as_str().unwrap();
        let n: u64 = path.rsplit('r').next().unwrap().parse().unwrap();
        let dst = tmp.join(format!("restored-{id}"));
        let r = kopr(cfg)
            .args(["snapshot", "restore", id, dst.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let expect = tmp.join(format!("expect-{id}"));
        round_tree(&expect, n);
        for f in 0..4 {
            let name = format!("f{f}");
            assert_eq!(
                std::fs::read(dst.join(&name)).unwrap(),
                std::fs::read(expect.join(&name)).unwrap(),
                "snapshot {id} of round {n}, file {name}"
            );
        }
    }
}
