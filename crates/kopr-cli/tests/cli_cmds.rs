//! Drives the real `kopr` binary through the second half of Kopia's command tree that issue 18
//! asks for (`snapshot estimate | copy-history | move-history`, `policy edit | delete | export |
//! import`, `content delete`, `index inspect`, `cache set`, `man`) and checks what each one did
//! to the repository or printed, not only its exit status.

use std::path::PathBuf;

use kopr_testkit::cli::{one_error_line, Kopr};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// A temporary directory with a repository, a config and a small source tree.
struct Env {
    dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
    k: Kopr,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), b"hello kopr\n").unwrap();
        std::fs::write(
            src.join("sub/b.bin"),
            kopr_testkit::random_bytes(7, 300_000),
        )
        .unwrap();
        let k = Kopr::new(BIN, &dir.path().join("cfg/repository.config"));
        k.create_filesystem(&repo);
        Env { dir, repo, src, k }
    }

    fn src(&self) -> &str {
        self.src.to_str().unwrap()
    }

    fn snapshot(&self) -> String {
        let out = self.k.ok(&["snapshot", "create", self.src(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    fn snapshots_json(&self) -> Vec<serde_json::Value> {
        let out = self.k.ok(&["snapshot", "ls", "--all", "--json"]);
        serde_json::from_str(&out).unwrap()
    }
}

#[test]
fn snapshot_estimate_counts_by_size_and_applies_ignore_rules() {
    let e = Env::new();
    std::fs::create_dir_all(e.src.join("logs")).unwrap();
    std::fs::write(e.src.join("logs/x.log"), vec![1u8; 5000]).unwrap();
    std::fs::write(e.src.join("big.dat"), vec![2u8; 2_000_000]).unwrap();
    std::fs::write(e.src.join("skip.tmp"), vec![3u8; 20]).unwrap();
    std::fs::write(e.src.join(".kopiaignore"), "*.tmp\n").unwrap();
    e.k.ok(&["policy", "set", e.src(), "--add-ignore", "logs/"]);
    let out = e.k.ok(&["snapshot", "estimate", e.src(), "--show-files"]);
    // a.txt (11 B), .kopiaignore (6 B), sub/b.bin (300 kB), big.dat (2 MB).
    assert!(
        out.starts_with("Snapshot includes 4 file(s), total size 2.3 MB\n"),
        "{out}"
    );
    assert!(
        out.contains("   1 MB  ... 10 MB:       1 files, total size 2 MB\n - big.dat - 2 MB\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "   100 KB...  1 MB:       1 files, total size 300 KB\n - sub/b.bin - 300 KB\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("   0 B   ...  1 KB:       2 files, total size 17 B\n"),
        "{out}"
    );
    assert!(
        out.contains("Snapshot excludes 1 file(s), total size 20 B\n"),
        "{out}"
    );
    assert!(out.contains(" - skip.tmp - 20 B\n"), "{out}");
    assert!(
        out.contains("Snapshot excludes 1 directories. Examples:\n - logs\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\nEstimated upload time: 1s at 10 Mbit/s\n"),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&e.k.ok(&["snapshot", "estimate", e.src(), "--json"])).unwrap();
    assert_eq!(json["totalFileCount"], 4);
    assert_eq!(json["totalFileSize"], 2_300_017);
    assert_eq!(json["totalDirectoryCount"], 2);
    assert_eq!(json["excludedFileCount"], 1);
    assert_eq!(json["excludedDirCount"], 1);

    // The estimate agrees with the snapshot it estimates.
    let out = e.k.ok(&["snapshot", "create", e.src(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["stats"]["fileCount"], 4, "{v}");
    assert_eq!(v["stats"]["totalSize"], 2_300_017, "{v}");

    let missing = e.dir.path().join("nope");
    let o =
        e.k.run(&["snapshot", "estimate", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        one_error_line(&o).contains("nope"),
        "{}",
        one_error_line(&o)
    );
}

#[test]
fn snapshot_copy_and_move_history_rewrite_sources() {
    let e = Env::new();
    let id = e.snapshot();
    let snaps = e.snapshots_json();
    assert_eq!(snaps.len(), 1);
    let source = &snaps[0]["source"];
    let user = source["userName"].as_str().unwrap().to_string();
    let host = source["host"].as_str().unwrap().to_string();
    let path = source["path"].as_str().unwrap().to_string();
    let root = snaps[0]["rootEntry"]["obj"].clone();
    let from = format!("{user}@{host}:{path}");

    // Dry run changes nothing.
    e.k.ok(&["snapshot", "copy-history", &from, "bob@other", "--dry-run"]);
    assert_eq!(e.snapshots_json().len(), 1);

    let log =
        e.k.ok_stderr(&["snapshot", "copy-history", &from, "bob@other"]);
    assert!(
        log.contains(&format!("copying {from} (")) && log.contains(&format!("=> bob@other:{path}")),
        "{log}"
    );
    let snaps = e.snapshots_json();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let copy = snaps
        .iter()
        .find(|s| s["source"]["host"] == "other")
        .expect("copied snapshot");
    assert_eq!(copy["source"]["userName"], "bob");
    assert_eq!(copy["source"]["path"], path.as_str());
    assert_eq!(copy["rootEntry"]["obj"], root);
    assert_ne!(copy["id"], id.as_str());

    // Copying again finds it there and adds nothing.
    let log =
        e.k.ok_stderr(&["snapshot", "copy-history", &from, "bob@other"]);
    assert!(log.contains("already exists"), "{log}");
    assert_eq!(e.snapshots_json().len(), 2);

    // Move the copy to a third host: the source manifest goes away.
    e.k.ok(&["snapshot", "move-history", "@other", "@third"]);
    let snaps = e.snapshots_json();
    let hosts: Vec<&str> = snaps
        .iter()
        .map(|s| s["source"]["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(
        hosts.contains(&"third") && !hosts.contains(&"other"),
        "{hosts:?}"
    );
    // The moved snapshot restores.
    let moved = snaps
        .iter()
        .find(|s| s["source"]["host"] == "third")
        .unwrap();
    let into = e.dir.path().join("restored");
    e.k.ok(&[
        "snapshot",
        "restore",
        moved["id"].as_str().unwrap(),
        into.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(into.join("sub/b.bin")).unwrap(),
        std::fs::read(e.src.join("sub/b.bin")).unwrap()
    );

    // Kopia's refusals.
    let o = e.k.run(&["snapshot", "copy-history", "@third", "bob@x"]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: username specified on destination but not source"
    );
    let o =
        e.k.run(&["snapshot", "copy-history", "bob@third", "bob@x:/p"]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: path specified on destination but not source"
    );
    let _ = &e.repo;
}
