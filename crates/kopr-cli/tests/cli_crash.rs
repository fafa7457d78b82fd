//! A snapshot killed with SIGKILL part-way leaves a repository that opens; running the snapshot
//! again completes it, and the result restores byte for byte.

#![cfg(unix)]

use kopr_testkit::random_bytes;
use std::path::Path;
use std::process::{Command, Stdio};

use kopr_testkit::cli::Kopr;
use std::time::{Duration, Instant};

fn kopr(cfg: &Path) -> Command {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).cmd(&[])
}

#[test]
fn killed_snapshot_then_rerun_restores_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let src = tmp.path().join("data");
    for d in 0..8 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..6 {
            std::fs::write(
                dir.join(format!("f{f}")),
                random_bytes(d * 100 + f, 1 << 20),
            )
            .unwrap();
        }
    }
    let repo = tmp.path().join("repo");
    let st = kopr(&cfg)
        .args([
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "pbkdf2-sha256-600000",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());

    // Kill at a few points in time; each time the repository must still open and list.
    for delay_ms in [30u64, 120, 400] {
        let mut child = kopr(&cfg)
            .args(["snapshot", "create", src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let ls = kopr(&cfg).args(["snapshot", "ls"]).output().unwrap();
        assert!(
            ls.status.success(),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
        let stats = kopr(&cfg).args(["content", "stats"]).output().unwrap();
        assert!(
            stats.status.success(),
            "{}",
            String::from_utf8_lossy(&stats.stderr)
        );
    }

    let t0 = Instant::now();
    let out = kopr(&cfg)
        .args(["snapshot", "create", src.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["stats"]["fileCount"], 48);
    assert!(t0.elapsed() < Duration::from_secs(120));

    let dst = tmp.path().join("restored");
    let r = kopr(&cfg)
        .args(["snapshot", "restore", &id, dst.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for d in 0..8 {
        for f in 0..6 {
            let rel = format!("d{d}/f{f}");
            assert_eq!(
                std::fs::read(dst.join(&rel)).unwrap(),
                random_bytes(d * 100 + f, 1 << 20),
                "{rel}"
            );
        }
    }
}

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
    let st = kopr(&cfg)
        .args([
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "pbkdf2-sha256-600000",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let child = kopr(&cfg)
        .args(["snapshot", "create", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return; // finished before the signal arrived: nothing to prove on this machine
    }
    assert!(err.contains("incomplete (canceled)"), "{err}");
    let ls = kopr(&cfg)
        .args(["snapshot", "ls", "--incomplete"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains("incomplete:canceled"));
    let out = kopr(&cfg)
        .args(["snapshot", "create", src.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["stats"]["fileCount"], 64);
    assert!(m.get("incomplete").is_none());
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
    let repo = tmp.path().join("repo");
    let st = kopr(&cfg)
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
        let r = next();
        let args: Vec<String> = match n % 3 {
            0 | 1 => {
                let dir = tmp.path().join(format!("src/r{n}"));
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
        let mut child = kopr(&cfg)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(r % 150));
        match child.try_wait().unwrap() {
            Some(s) => {
                assert!(s.success(), "{args:?} failed on its own");
                completed += 1;
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                killed += 1;
            }
        }
        if n % 20 == 19 {
            // drop a third of the completed snapshots so maintenance has garbage to collect
            let ls = kopr(&cfg)
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
                    let d = kopr(&cfg)
                        .args(["snapshot", "delete", id, "--delete"])
                        .output()
                        .unwrap();
                    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
                }
            }
        }
    }
    assert!(
        killed > 20 && completed > 10,
        "killed {killed}, completed {completed}"
    );
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
    let ls = kopr(&cfg)
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
        let dst = tmp.path().join(format!("restored-{id}"));
        let r = kopr(&cfg)
            .args(["snapshot", "restore", id, dst.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let expect = tmp.path().join(format!("expect-{id}"));
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
