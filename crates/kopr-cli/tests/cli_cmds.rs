//! Drives the real `kopr` binary through issue 18's snapshot commands (`snapshot estimate |
//! copy-history | move-history | fix | migrate`, `create --all`, max parallel file reads) and
//! checks what each one did to the repository or printed, not only its exit status. The policy,
//! content, index, cache and man commands are in `cli_cmds_policy.rs`.

use kopr_testkit::cli::{one_error_line, Kopr};

mod cmds_common;
use cmds_common::*;

#[test]
fn snapshot_estimate_counts_by_size_and_applies_ignore_rules() {
    let e = Env::small_tree(BIN);
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
    let e = Env::small_tree(BIN);
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

    move_to_a_third_host_and_restore(&e);

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

/// Move the copy to a third host: the source manifest goes away, and the moved snapshot
/// restores.
fn move_to_a_third_host_and_restore(e: &Env) {
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
}

/// The object id `ls -l` shows for `name` in `dir` (SNAPSHOT/path).
fn object_of(k: &Kopr, dir: &str, name: &str) -> String {
    let out = k.ok(&["ls", "-l", dir]);
    out.lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .to_string()
}

#[test]
fn snapshot_fix_remove_files_rewrites_directories_and_manifests() {
    let e = Env::small_tree(BIN);
    std::fs::write(e.src.join("sub/keep.txt"), b"keep me").unwrap();
    let id = e.snapshot();
    // Nothing matches: nothing changes (the rewritten tree is the same tree).
    let log = e.k.ok_stderr(&[
        "snapshot",
        "fix",
        "remove-files",
        "--filename",
        "*.nomatch",
        "--commit",
    ]);
    assert!(log.contains("No changes."), "{log}");
    assert_eq!(e.snapshots_json()[0]["id"], id.as_str());
    let o = e.k.run(&["snapshot", "fix", "remove-files"]);
    assert_eq!(one_error_line(&o), "ERROR: must specify files to remove");

    // Without --commit: reported, manifests unchanged.
    let log =
        e.k.ok_stderr(&["snapshot", "fix", "remove-files", "--filename", "*.bin"]);
    assert!(log.contains("will remove file sub/b.bin"), "{log}");
    assert!(log.contains("Fixed 1 snapshots, but snapshot manifests were not updated. Pass --commit to update snapshots."), "{log}");
    assert!(log.contains("    delta:-300 KB"), "{log}");
    assert_eq!(e.snapshots_json()[0]["id"], id.as_str());

    // With --commit: a new manifest replaces the old one; b.bin is gone, the rest restores.
    let log = e.k.ok_stderr(&[
        "snapshot",
        "fix",
        "remove-files",
        "--filename",
        "*.bin",
        "--commit",
    ]);
    assert!(log.contains("Fixed and committed 1 snapshots."), "{log}");
    let snaps = e.snapshots_json();
    assert_eq!(snaps.len(), 1);
    let new_id = snaps[0]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(
        snaps[0]["rootEntry"]["summ"]["size"],
        11 + 7,
        "{}",
        snaps[0]
    );
    assert_eq!(snaps[0]["rootEntry"]["summ"]["files"], 2, "{}", snaps[0]);
    let into = e.dir.path().join("r");
    e.k.ok(&["snapshot", "restore", &new_id, into.to_str().unwrap()]);
    assert!(!into.join("sub/b.bin").exists());
    assert_eq!(
        std::fs::read(into.join("sub/keep.txt")).unwrap(),
        b"keep me"
    );
    assert_eq!(std::fs::read(into.join("a.txt")).unwrap(), b"hello kopr\n");
    e.k.ok(&["snapshot", "verify"]);

    // By object id.
    let oid = object_of(&e.k, &format!("{new_id}/sub"), "keep.txt");
    e.k.ok(&[
        "snapshot",
        "fix",
        "remove-files",
        "--object-id",
        &oid,
        "--commit",
    ]);
    let newest = e.snapshots_json()[0]["id"].as_str().unwrap().to_string();
    let listing = e.k.ok(&["ls", &format!("{newest}/sub")]);
    assert!(!listing.contains("keep.txt"), "{listing}");
}

#[test]
fn snapshot_fix_invalid_files_replaces_unreadable_files_by_stubs() {
    let e = Env::small_tree(BIN);
    let id = e.snapshot();
    let oid = object_of(&e.k, &format!("{id}/sub"), "b.bin");
    // A clean snapshot has nothing to fix, even reading every file.
    let log = e.k.ok_stderr(&[
        "snapshot",
        "fix",
        "invalid-files",
        "--verify-files-percent=100",
        "--commit",
    ]);
    assert!(log.contains("No changes."), "{log}");
    // Make b.bin unreadable: its content is deleted from the index.
    e.k.ok(&["--dangerous-commands=enabled", "content", "delete", &oid]);
    let log =
        e.k.ok_stderr(&["snapshot", "fix", "invalid-files", "--commit"]);
    assert!(
        log.contains("removing invalid file sub/b.bin due to: content"),
        "{log}"
    );
    assert!(log.contains("Fixed and committed 1 snapshots."), "{log}");
    let new_id = e.snapshots_json()[0]["id"].as_str().unwrap().to_string();
    let into = e.dir.path().join("r");
    e.k.ok(&["snapshot", "restore", &new_id, into.to_str().unwrap()]);
    assert!(!into.join("sub/b.bin").exists());
    let stub = std::fs::read_to_string(into.join("sub/.INVALID.b.bin")).unwrap();
    assert!(stub.starts_with("{\n      \"info\": \"Kopia replaced the original entry with this stub because of an error.\",\n"), "{stub}");
    let v: serde_json::Value = serde_json::from_str(&stub).unwrap();
    assert_eq!(v["entry"]["name"], "b.bin");
    assert_eq!(v["entry"]["obj"], oid.as_str());
    assert_eq!(std::fs::read(into.join("a.txt")).unwrap(), b"hello kopr\n");
    // --invalid-file-handling=fail refuses instead (on the original snapshot's tree, via its
    // source, nothing is committed).
    let id2 = e.snapshot();
    e.k.ok(&[
        "--dangerous-commands=enabled",
        "content",
        "delete",
        &object_of(&e.k, &format!("{id2}/sub"), "b.bin"),
    ]);
    let o = e.k.run(&[
        "snapshot",
        "fix",
        "invalid-files",
        "--invalid-file-handling=fail",
        "--manifest-id",
        &id2,
        "--commit",
    ]);
    assert!(!o.status.success());
    assert!(e.snapshots_json().iter().any(|s| s["id"] == id2.as_str()));
}

#[test]
fn snapshot_migrate_copies_snapshots_and_policies_from_another_repository() {
    let e = Env::small_tree(BIN);
    e.k.ok(&["policy", "set", e.src(), "--keep-latest", "5"]);
    let first = e.snapshot();
    std::fs::write(e.src.join("a.txt"), b"changed\n").unwrap();
    e.snapshot();
    let src_snaps = e.snapshots_json();

    let dst = Kopr::new(BIN, &e.dir.path().join("dst/repository.config"));
    dst.create_filesystem(&e.dir.path().join("dst-repo"));
    let o = dst.run(&[
        "snapshot",
        "migrate",
        "--source-config",
        e.k.cfg().to_str().unwrap(),
    ]);
    assert!(one_error_line(&o).contains("must specify either --all or --sources"));
    let migrate_all = [
        "snapshot",
        "migrate",
        "--source-config",
        e.k.cfg().to_str().unwrap(),
        "--all",
    ];
    let log = dst.ok_stderr(&migrate_all);
    assert_eq!(log.matches("migrating snapshot of").count(), 2, "{log}");
    assert!(log.contains("migrating policy for"), "{log}");
    assert!(log.ends_with("Migration finished.\n"), "{log}");

    let out = dst.ok(&["snapshot", "ls", "--all", "--json"]);
    let dst_snaps: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(dst_snaps.len(), 2);
    for (s, d) in src_snaps.iter().zip(&dst_snaps) {
        assert_eq!(s["source"], d["source"]);
        assert_eq!(s["startTime"], d["startTime"]);
        assert_eq!(s["endTime"], d["endTime"]);
        assert_eq!(s["rootEntry"]["summ"], d["rootEntry"]["summ"]);
    }
    // Both restore as they did in the source repository.
    for (i, (s, d)) in src_snaps.iter().zip(&dst_snaps).enumerate() {
        assert_restore_the_same(
            (&e.k, s),
            (&dst, d),
            &e.dir.path().join(format!("ra{i}")),
            &e.dir.path().join(format!("rb{i}")),
        );
    }
    let p: serde_json::Value =
        serde_json::from_str(&dst.ok(&["policy", "export", e.src()])).unwrap();
    assert_eq!(
        p.as_object().unwrap().values().next().unwrap()["retention"]["keepLatest"],
        5
    );

    // Running it again migrates nothing.
    let log = dst.ok_stderr(&migrate_all);
    assert_eq!(log.matches("already migrated").count(), 2, "{log}");
    assert!(log.contains("policy already set for"), "{log}");
    assert_eq!(dst.ok(&["snapshot", "ls", "--all", "--json"]), out);
    let _ = first;
}

#[test]
fn snapshot_migrate_from_a_kopia_repository() {
    let Some(fx) = kopr_testkit::fixtures::Fixture::load("default") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, src) = fx.connect_copy(BIN, &tmp.path().join("src"));
    let dst = Kopr::new(BIN, &tmp.path().join("dst/repository.config"));
    dst.create_filesystem(&tmp.path().join("dst-repo"));
    dst.ok_stderr(&[
        "snapshot",
        "migrate",
        "--source-config",
        src.cfg().to_str().unwrap(),
        "--all",
    ]);
    let s: Vec<serde_json::Value> =
        serde_json::from_str(&src.ok(&["snapshot", "ls", "--all", "--json"])).unwrap();
    let d: Vec<serde_json::Value> =
        serde_json::from_str(&dst.ok(&["snapshot", "ls", "--all", "--json"])).unwrap();
    assert_eq!(s.len(), d.len());
    assert!(!s.is_empty());
    for (i, (s, d)) in s.iter().zip(&d).enumerate() {
        assert_eq!(s["startTime"], d["startTime"]);
        assert_restore_the_same(
            (&src, s),
            (&dst, d),
            &tmp.path().join(format!("ra{i}")),
            &tmp.path().join(format!("rb{i}")),
        );
    }
    dst.ok(&["snapshot", "verify"]);
}

#[test]
fn snapshot_fix_on_a_kopia_repository() {
    let Some(fx) = kopr_testkit::fixtures::Fixture::load("default") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, k) = fx.connect_copy(BIN, tmp.path());
    let log = k.ok_stderr(&[
        "snapshot",
        "fix",
        "remove-files",
        "--filename",
        "*.nomatch",
        "--commit",
    ]);
    assert!(log.contains("No changes."), "{log}");
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&k.ok(&["snapshot", "ls", "--all", "--json"])).unwrap();
    let last = snaps.last().unwrap();
    let id = last["id"].as_str().unwrap().to_string();
    // The first regular file at the root of the newest snapshot.
    let listing = k.ok(&["ls", "-l", &id]);
    let name = listing
        .lines()
        .find(|l| l.starts_with('-'))
        .and_then(|l| l.split_whitespace().last())
        .expect("a file at the root")
        .to_string();
    let before = tmp.path().join("before");
    k.ok(&["snapshot", "restore", &id, before.to_str().unwrap()]);
    let log = k.ok_stderr(&[
        "snapshot",
        "fix",
        "remove-files",
        "--filename",
        &name,
        "--manifest-id",
        &id,
        "--commit",
    ]);
    assert!(log.contains("Fixed and committed 1 snapshots."), "{log}");
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&k.ok(&["snapshot", "ls", "--all", "--json"])).unwrap();
    let fixed = snaps
        .iter()
        .find(|s| s["startTime"] == last["startTime"])
        .unwrap();
    assert_ne!(fixed["id"], id.as_str());
    let after = tmp.path().join("after");
    k.ok(&[
        "snapshot",
        "restore",
        fixed["id"].as_str().unwrap(),
        after.to_str().unwrap(),
    ]);
    // Every file named so is gone, everything else is as it was.
    fn remove_named(dir: &std::path::Path, name: &str) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                remove_named(&p, name);
            } else if e.file_name().to_string_lossy() == name {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    remove_named(&before, &name);
    kopr_testkit::assert_same_tree(&before, &after);
    k.ok(&["snapshot", "verify"]);
}

#[test]
fn snapshot_create_all_skips_sources_whose_policy_is_manual() {
    let e = Env::small_tree(BIN);
    let other = e.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("x"), b"x").unwrap();
    e.snapshot();
    e.k.ok(&["snapshot", "create", other.to_str().unwrap()]);
    e.k.ok(&["policy", "set", other.to_str().unwrap(), "--manual"]);
    let o = e.k.run(&["snapshot", "create", "--all", e.src()]);
    assert!(!o.status.success());
    e.k.ok(&["snapshot", "create", "--all"]);
    let counts = |path: &std::path::Path| {
        let p = std::fs::canonicalize(path).unwrap();
        e.snapshots_json()
            .iter()
            .filter(|s| s["source"]["path"] == p.to_str().unwrap())
            .count()
    };
    assert_eq!(counts(&e.src), 2);
    assert_eq!(counts(&other), 1);
}

#[test]
fn snapshot_create_reads_with_the_policys_max_parallel_file_reads() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        kopr_testkit::env::skip(
            "snapshot_create_reads_with_the_policys_max_parallel_file_reads",
            "strace not found",
        );
        return;
    }
    let e = Env::small_tree(BIN);
    // File readers the snapshot starts (threads that name themselves "upload worker"; other
    // threads, such as the epoch listings', come and go with the repository's state), with
    // the policy's limit at `n`.
    let threads = |n: &str| {
        e.k.ok(&["policy", "set", e.src(), "--max-parallel-file-reads", n]);
        let log = e.dir.path().join(format!("strace-{n}"));
        let c = e.k.cmd(&["snapshot", "create", e.src()]);
        let prog = c.get_program().to_owned();
        let args: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_owned()).collect();
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=prctl", "-o"])
            .arg(&log)
            .arg(prog)
            .args(args)
            .envs(
                c.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("PR_SET_NAME, \"upload worker\""))
            .count()
    };
    assert_eq!(threads("1"), 1);
    assert_eq!(threads("5"), 5);
}

/// Snapshot `s` of one repository restored into `a` and snapshot `d` of another into `b` are
/// the same tree.
fn assert_restore_the_same(
    (src, s): (&Kopr, &serde_json::Value),
    (dst, d): (&Kopr, &serde_json::Value),
    a: &std::path::Path,
    b: &std::path::Path,
) {
    src.ok(&[
        "snapshot",
        "restore",
        s["id"].as_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    dst.ok(&[
        "snapshot",
        "restore",
        d["id"].as_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    kopr_testkit::assert_same_tree(a, b);
}
