//! Restores behave as a Kopia user expects: owners set by default, missing parents created,
//! `--ignore-errors` restores the rest, temporaries of a killed or interrupted restore never
//! stay, and each error says once what happened to which path.

use kopr_testkit::cli::one_error_line;
use std::path::{Path, PathBuf};
use std::process::Stdio;

mod behave_common;
use behave_common::*;

/// uid and gid of a path (not following a symlink).
fn owner_of(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(p).unwrap();
    (md.uid(), md.gid())
}

#[test]
fn restore_sets_owners_by_default_and_creates_missing_parents() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(&tmp.path().join("repository.config"));
    k.create_filesystem(&tmp.path().join("repo"));
    let src = tmp.path().join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/owned.txt"), b"owned").unwrap();
    std::os::unix::fs::symlink("owned.txt", src.join("sub/link")).unwrap();
    if root {
        std::os::unix::fs::chown(src.join("sub/owned.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("sub/link"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::chown(src.join("sub"), Some(1111), Some(2222)).unwrap();
    } else {
        kopr_testkit::env::skip(
            "restore_sets_owners_by_default_and_creates_missing_parents (owner part)",
            "owners other than ours can only be restored as root",
        );
    }
    let s = src.to_str().unwrap();
    k.ok(&["snapshot", "create", s]);
    let v: serde_json::Value =
        serde_json::from_str(&k.ok(&["snapshot", "ls", s, "--json"])).unwrap();
    let id = v[0]["id"].as_str().unwrap().to_string();

    // Into a target whose parents do not exist yet.
    let out = tmp.path().join("a/b/c");
    k.ok(&["snapshot", "restore", &id, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("sub/owned.txt")).unwrap(), b"owned");
    let file_only = tmp.path().join("x/y/z.txt");
    k.ok(&[
        "snapshot",
        "restore",
        &format!("{id}/sub/owned.txt"),
        file_only.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&file_only).unwrap(), b"owned");
    if root {
        assert_eq!(owner_of(&out.join("sub/owned.txt")), (1234, 5678));
        assert_eq!(owner_of(&out.join("sub/link")), (4321, 8765));
        assert_eq!(owner_of(&out.join("sub")), (1111, 2222));
        assert_eq!(owner_of(&file_only), (1234, 5678));
        let skipped = tmp.path().join("skip");
        k.ok(&[
            "snapshot",
            "restore",
            &id,
            skipped.to_str().unwrap(),
            "--skip-owners",
        ]);
        assert_eq!(owner_of(&skipped.join("sub/owned.txt")), (0, 0));
        assert_eq!(owner_of(&skipped.join("sub/link")), (0, 0));
    }
}

#[test]
fn restore_ignore_errors_restores_the_rest_and_lists_what_it_could_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, repo, _src, ids) = repo_with_snapshots(tmp.path());
    // The second snapshot's new file c.txt is the only data in the newest pack.
    let before: Vec<PathBuf> = data_packs(&repo);
    let newest = before
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap()
        .clone();
    std::fs::remove_file(&newest).unwrap();

    let plain = tmp.path().join("plain");
    let out = k.run(&["snapshot", "restore", &ids[1], plain.to_str().unwrap()]);
    one_error_line(&out);

    let target = tmp.path().join("out");
    let out = k.run(&[
        "snapshot",
        "restore",
        &ids[1],
        target.to_str().unwrap(),
        "--ignore-errors",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(
        std::fs::read(target.join("sub/b.bin")).unwrap(),
        vec![7u8; 100_000]
    );
    assert!(!target.join("c.txt").exists());
    let listed: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("not restored: "))
        .collect();
    assert_eq!(listed.len(), 1, "{err}");
    assert!(listed[0].contains("c.txt"), "{err}");
    assert!(err.contains("Ignored 1 error(s)"), "{err}");
    // No temporary file is left behind by the failed file.
    let names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".kopr-restore-")),
        "{names:?}"
    );
}

#[test]
fn a_rerun_removes_temporary_files_a_killed_restore_left() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, _repo, _src, ids) = repo_with_snapshots(tmp.path());
    let target = tmp.path().join("out");
    std::fs::create_dir_all(target.join("sub")).unwrap();
    // What a restore killed while writing two files leaves.
    std::fs::write(target.join(".kopr-restore-00000000000000aa"), b"partial").unwrap();
    std::fs::write(
        target.join("sub/.kopr-restore-00000000000000bb"),
        b"partial",
    )
    .unwrap();
    k.ok(&[
        "snapshot",
        "restore",
        &ids[1],
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    // A target holding only a leftover needs no --overwrite.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join(".kopr-restore-00000000000000cc"), b"partial").unwrap();
    k.ok(&["snapshot", "restore", &ids[1], fresh.to_str().unwrap()]);
    assert!(!fresh.join(".kopr-restore-00000000000000cc").exists());
    let left: Vec<_> = tree_state(&target)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".kopr-restore-")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(std::fs::read(target.join("c.txt")).unwrap(), b"gamma");
}

#[test]
fn errors_say_once_what_happened_to_which_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, _repo, src, ids) = repo_with_snapshots(tmp.path());
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();

    // A repository path below a file: the cause once.
    let other = kopr(&tmp.path().join("other.config"));
    let out = other.run(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        file.join("repo").to_str().unwrap(),
    ]);
    let line = one_error_line(&out);
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");

    // A restore target below a file.
    let out = k.run(&[
        "snapshot",
        "restore",
        &ids[1],
        file.join("out").to_str().unwrap(),
    ]);
    let line = one_error_line(&out);
    assert!(line.contains("is a file, not a directory"), "{line}");

    // A file where the snapshot has a directory, and the other way round.
    let target = tmp.path().join("rov");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("sub"), b"in the way").unwrap();
    let out = k.run(&[
        "snapshot",
        "restore",
        &ids[1],
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    let line = one_error_line(&out);
    assert!(
        line.contains("rov/sub: the snapshot has a directory here, but a file is in the way"),
        "{line}"
    );
    let target = tmp.path().join("rov2");
    std::fs::create_dir_all(target.join("a.txt")).unwrap();
    let out = k.run(&[
        "snapshot",
        "restore",
        &ids[1],
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    let line = one_error_line(&out);
    assert!(
        line.contains("rov2/a.txt: the snapshot has a file here, but a directory is in the way"),
        "{line}"
    );
    let _ = src;
}

#[test]
fn ctrl_c_during_a_restore_leaves_no_temporary_file() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let (k, _repo, _src, ids) = repo_with_snapshots(tmp.path());
    let target = tmp.path().join("out");
    // The restore stops right after creating its first temporary file and says which.
    let mut child = k
        .cmd(&["snapshot", "restore", &ids[1], target.to_str().unwrap()])
        .env("KOPR_TEST_STALL_RESTORE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let tmp_file = PathBuf::from(first.strip_prefix("writing ").expect(&first));
    assert!(tmp_file.exists(), "{first}");
    // SAFETY: kill with a valid pid and signal.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    let left: Vec<_> = tree_state(&target)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".kopr-restore-")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn restore_parallel_one_restores_the_same_and_zero_is_refused_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, _repo, src, ids) = repo_with_snapshots(tmp.path());
    let serial = tmp.path().join("serial");
    k.ok(&[
        "snapshot",
        "restore",
        &ids[1],
        serial.to_str().unwrap(),
        "--parallel=1",
    ]);
    for name in ["a.txt", "c.txt", "sub/b.bin"] {
        assert_eq!(
            std::fs::read(serial.join(name)).unwrap(),
            std::fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    for bad in ["--parallel=0", "--parallel=many", "--parallel=-2"] {
        let dst = tmp.path().join("refused");
        let out = k.run(&["snapshot", "restore", &ids[1], dst.to_str().unwrap(), bad]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{bad} accepted");
        assert_eq!(err.trim().lines().count(), 1, "{bad}: {err}");
        assert!(err.contains("--parallel"), "{bad}: {err}");
        assert!(!dst.exists(), "{bad} restored something");
    }
}
