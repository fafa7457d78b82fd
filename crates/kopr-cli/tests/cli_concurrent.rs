//! Two kopr processes snapshot into one repository at once while a third runs maintenance:
//! every snapshot that completed restores byte for byte. The processes run on the real clock
//! with the default safety, so nothing here is old enough to be deleted: this checks that
//! processes share a repository (sessions, index blobs, schedule), not deletion races. Those
//! run in `crates/kopr-repo/tests/concurrency.rs` (threads, a manual clock moved past the
//! safety windows, deletions asserted) and `maintenance.rs` (a snapshot between every two
//! tasks of a cycle).

use kopr_testkit::cli::Kopr;
use kopr_testkit::random_bytes;
use std::path::{Path, PathBuf};

fn ok(cfg: &Path, args: &[&str]) -> String {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).ok(args)
}

fn tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..4 {
        std::fs::write(
            root.join(format!("f{i}")),
            random_bytes(seed * 10 + i, 400_000),
        )
        .unwrap();
    }
}

#[test]
fn two_writers_and_maintenance_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let cfgs: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("c{i}.config")))
        .collect();
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &cfgs[0]).create_filesystem(&repo);
    for (i, cfg) in cfgs.iter().enumerate().skip(1) {
        ok(
            cfg,
            &[
                "repository",
                "connect",
                "filesystem",
                "--path",
                repo.to_str().unwrap(),
                "--override-username",
                &format!("writer{i}"),
            ],
        );
    }
    let rounds = 4;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let cfg = cfgs[w].clone();
            let base = tmp.path().join(format!("src{w}"));
            spawn_writer(cfg, base, w, rounds)
        })
        .collect();
    let maint = {
        let cfg = cfgs[2].clone();
        std::thread::spawn(move || {
            for _ in 0..rounds {
                ok(&cfg, &["maintenance", "run", "--full", "--force"]);
                ok(&cfg, &["maintenance", "run", "--force"]);
            }
        })
    };
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.join().unwrap());
    }
    maint.join().unwrap();
    ok(&cfgs[0], &["snapshot", "verify"]);
    for (n, (id, dir)) in all.iter().enumerate() {
        let dest = tmp.path().join(format!("restore{n}"));
        ok(
            &cfgs[0],
            &["snapshot", "restore", id, dest.to_str().unwrap()],
        );
        for i in 0..4 {
            let name = format!("f{i}");
            assert_eq!(
                std::fs::read(dest.join(&name)).unwrap(),
                std::fs::read(dir.join(&name)).unwrap(),
                "snapshot {id} file {name}"
            );
        }
    }
    assert_eq!(all.len(), 2 * rounds as usize);
}

/// Writer `w` snapshots `rounds` new trees under `base` with connection `cfg`; returns each
/// snapshot's id and tree.
fn spawn_writer(
    cfg: PathBuf,
    base: PathBuf,
    w: usize,
    rounds: u64,
) -> std::thread::JoinHandle<Vec<(String, PathBuf)>> {
    std::thread::spawn(move || {
        let mut made = Vec::new();
        for r in 0..rounds {
            let dir = base.join(format!("r{r}"));
            // half the rounds share bytes with the other writer: cross-writer dedup
            tree(
                &dir,
                if r % 2 == 0 {
                    1000 + r
                } else {
                    w as u64 * 100 + r
                },
            );
            let out = ok(
                &cfg,
                &["snapshot", "create", dir.to_str().unwrap(), "--json"],
            );
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            made.push((v["id"].as_str().unwrap().to_string(), dir));
        }
        made
    })
}
