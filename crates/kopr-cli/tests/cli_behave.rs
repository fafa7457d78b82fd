//! kopr behaves as a Kopia user expects: a read-only connection changes nothing, broken pipes
//! and full disks end commands quietly, snapshot errors set the exit code, retention follows
//! each snapshot, restores create missing parents, and `snapshot ls` hides checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use kopr_testkit::cli::{one_error_line, Kopr};

fn kopr(cfg: &Path) -> Kopr {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file below `dir` with its size, mtime and bytes' length (the repository's blobs).
fn tree_state(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    (md.len(), md.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// A repository with two snapshots of `data`, and the snapshot ids.
fn repo_with_snapshots(tmp: &Path) -> (Kopr, PathBuf, PathBuf, Vec<String>) {
    let cfg = tmp.join("repository.config");
    let k = kopr(&cfg);
    let repo = tmp.join("repo");
    let src = tmp.join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
    k.create_filesystem(&repo);
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    std::fs::write(src.join("c.txt"), b"gamma").unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let ids = snapshot_ids(&k, &["snapshot", "ls", "--all", "--json"]);
    assert_eq!(ids.len(), 2);
    (k, repo, src, ids)
}

fn snapshot_ids(k: &Kopr, args: &[&str]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&k.ok(args)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_read_only_connection_changes_nothing_in_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (rw, repo, src, ids) = repo_with_snapshots(tmp.path());
    // Something for maintenance to delete: a deleted snapshot and an orphaned pack.
    rw.ok(&["snapshot", "delete", &ids[0], "--delete"]);
    std::fs::write(src.join("d.txt"), b"delta").unwrap();
    rw.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let kept = snapshot_ids(&rw, &["snapshot", "ls", "--all", "--json"]);
    assert_eq!(kept.len(), 2);

    let ro = kopr(&tmp.path().join("ro.config"));
    let before_connect = tree_state(&repo);
    ro.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--readonly",
    ]);
    assert_eq!(before_connect, tree_state(&repo), "connecting wrote");
    let src_s = src.to_str().unwrap();
    let writing: Vec<Vec<&str>> = vec![
        vec!["snapshot", "create", src_s],
        vec!["snapshot", "delete", &ids[1], "--delete"],
        vec!["snapshot", "expire", "--all", "--delete"],
        vec!["policy", "set", "--global", "--keep-latest", "1"],
        vec!["policy", "set", src_s, "--keep-latest", "1"],
        vec!["maintenance", "set", "--owner", "me"],
        vec!["maintenance", "set", "--full-interval", "48h"],
        vec!["maintenance", "run"],
        vec!["maintenance", "run", "--full", "--force"],
        vec!["maintenance", "run", "--full", "--force", "--safety=none"],
        vec!["index", "recover", "--commit"],
    ];
    // Expiring needs a policy that expires something: set it through the writable connection.
    rw.ok(&[
        "policy",
        "set",
        "--global",
        "--keep-latest",
        "1",
        "--keep-hourly",
        "0",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--keep-annual",
        "0",
    ]);
    for args in &writing {
        let before = tree_state(&repo);
        let out = ro.run(args);
        let after = tree_state(&repo);
        assert_eq!(
            before,
            after,
            "kopr {args:?} changed the repository: {}",
            stderr(&out)
        );
        assert!(
            !out.status.success(),
            "kopr {args:?} succeeded: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let line = one_error_line(&out);
        assert!(
            line.starts_with(
                "ERROR: the repository connection is read-only (connected with --readonly); reconnect without --readonly"
            ),
            "kopr {args:?}: {line}"
        );
    }
    // Reading still works.
    let listed = snapshot_ids(&ro, &["snapshot", "ls", "--all", "--json"]);
    assert_eq!(listed, kept);
    let before = tree_state(&repo);
    ro.ok(&["snapshot", "verify"]);
    ro.ok(&["content", "verify"]);
    ro.ok(&["maintenance", "info"]);
    ro.ok(&["snapshot", "expire", "--all"]);
    assert_eq!(before, tree_state(&repo), "reading commands wrote");
}

/// Every command that prints, with the repository of [`repo_with_snapshots`].
fn printing_commands<'a>(src: &'a str, ids: &'a [String]) -> Vec<Vec<&'a str>> {
    vec![
        vec!["snapshot", "ls"],
        vec!["snapshot", "ls", "--json"],
        vec!["snapshot", "ls", "-m", "--storage-stats", src],
        vec!["snapshot", "verify"],
        vec!["snapshot", "diff", &ids[0], &ids[1]],
        vec!["snapshot", "expire", "--all"],
        vec!["snapshot", "delete", &ids[0]],
        vec!["ls", "-l", "-r", &ids[1]],
        vec!["show", &ids[0]],
        vec!["content", "ls", "-l"],
        vec!["content", "stats"],
        vec!["blob", "ls"],
        vec!["blob", "stats"],
        vec!["index", "ls"],
        vec!["policy", "list"],
        vec!["policy", "show", "--global"],
        vec!["maintenance", "info"],
        vec!["maintenance", "explain"],
        vec!["repository", "status"],
        vec!["benchmark", "hashing", "--repeat=1", "--block-size=1KB"],
    ]
}

#[test]
fn output_to_a_closed_pipe_or_a_full_device_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let (k, _repo, src, ids) = repo_with_snapshots(tmp.path());
    let sub = format!("{}/sub/b.bin", ids[1]);
    let mut cmds = printing_commands(src.to_str().unwrap(), &ids);
    cmds.push(vec!["show", &sub]);
    for args in &cmds {
        // A pipe whose reading end is closed before the command starts.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = k
            .cmd(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(
            out.status.signal(),
            Some(libc_sigpipe()),
            "kopr {args:?} into a closed pipe: {:?} {err}",
            out.status
        );
        assert!(!err.contains("panicked"), "kopr {args:?}: {err}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = k
            .cmd(args)
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("panicked"),
            "kopr {args:?} > /dev/full: {err}"
        );
        let line = one_error_line(&out);
        assert!(
            line.contains("No space left on device"),
            "kopr {args:?} > /dev/full: {line}"
        );
    }
}

fn libc_sigpipe() -> i32 {
    13
}

/// Runs kopr as an unprivileged user when the tests run as root (root reads every file, so
/// unreadable files need someone else), with everything it touches under `home`.
fn unprivileged(k: &Kopr, home: &Path, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = k.cmd(args);
    c.env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.uid(65534).gid(65534);
    }
    c.output().unwrap()
}

fn open_to_all(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn unreadable_entries_fail_the_snapshot_unless_the_policy_ignores_them() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    open_to_all(tmp.path());
    let cfg = tmp.path().join("repository.config");
    let k = kopr(&cfg);
    let src = tmp.path().join("data");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::write(src.join("locked/inner.txt"), b"no").unwrap();
    for p in [tmp.path().to_path_buf(), src.clone()] {
        open_to_all(&p);
    }
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let repo = tmp.path().join("repo");
    let run = |args: &[&str]| unprivileged(&k, tmp.path(), args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "kopr {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
    ]);
    let s = src.to_str().unwrap();

    let out = run(&["snapshot", "create", s]);
    let line = one_error_line(&out);
    assert!(
        line.starts_with("ERROR: Found 2 fatal error(s) while snapshotting ")
            && line.ends_with(&format!(":{s}.")),
        "{line}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("error: secret.txt: ") && err.contains("error: locked: "),
        "{err}"
    );
    // The snapshot is kept, with its errors.
    let listed = ok(&["snapshot", "ls", s]);
    assert!(listed.contains(" errors:2"), "{listed}");

    ok(&["policy", "set", s, "--ignore-file-errors", "true"]);
    let out = run(&["snapshot", "create", s]);
    let line = one_error_line(&out);
    assert!(
        line.starts_with("ERROR: Found 1 fatal error(s) while snapshotting "),
        "{line}"
    );
    assert!(
        stderr(&out).contains("Ignored 1 error(s) while snapshotting "),
        "{}",
        stderr(&out)
    );

    ok(&["policy", "set", s, "--ignore-dir-errors", "true"]);
    let out = run(&["snapshot", "create", s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Ignored 2 error(s) while snapshotting "),
        "{}",
        stderr(&out)
    );
    let shown = ok(&["policy", "show", s]);
    // Kopia's table: the value aligned, then where it is defined.
    let row = |name: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    assert_eq!(
        row("  Ignore file read errors:"),
        "true (defined for this target)",
        "{shown}"
    );
    assert_eq!(
        row("  Ignore directory read errors:"),
        "true (defined for this target)",
        "{shown}"
    );
    // Back to Kopia's default: errors count again.
    ok(&[
        "policy",
        "set",
        s,
        "--ignore-dir-errors",
        "inherit",
        "--ignore-file-errors",
        "inherit",
    ]);
    assert!(!run(&["snapshot", "create", s]).status.success());
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn count_snapshots(k: &Kopr, src: &str, extra: &[&str]) -> usize {
    let mut args = vec!["snapshot", "ls", src, "--json"];
    args.extend_from_slice(extra);
    let v: serde_json::Value = serde_json::from_str(&k.ok(&args)).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn snapshot_create_applies_the_retention_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(&tmp.path().join("repository.config"));
    k.create_filesystem(&tmp.path().join("repo"));
    let src = tmp.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    let s = src.to_str().unwrap();
    k.ok(&[
        "policy",
        "set",
        s,
        "--keep-latest",
        "2",
        "--keep-hourly",
        "0",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--keep-annual",
        "0",
    ]);
    for i in 0..4 {
        std::fs::write(src.join(format!("f{i}")), format!("{i}")).unwrap();
        let err = k.ok_stderr(&["snapshot", "create", s]);
        if i >= 2 {
            assert!(err.contains("Deleted 1 snapshot(s) of "), "{err}");
        }
    }
    assert_eq!(count_snapshots(&k, s, &[]), 2);
    // The newest two are kept.
    let v: serde_json::Value =
        serde_json::from_str(&k.ok(&["snapshot", "ls", s, "--json"])).unwrap();
    assert_eq!(v[1]["stats"]["fileCount"], 4, "{v}");
}

#[test]
fn the_user_name_comes_from_the_passwd_entry_of_the_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(&tmp.path().join("repository.config"));
    let name = Command::new("id").arg("-un").output().unwrap();
    let name = String::from_utf8(name.stdout).unwrap().trim().to_string();
    assert!(!name.is_empty());
    let out = k
        .cmd(&[
            "repository",
            "create",
            "filesystem",
            "--path",
            tmp.path().join("repo").to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "testing-only-insecure",
        ])
        .env("USER", "not-the-user")
        .env("LOGNAME", "not-the-user")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value =
        serde_json::from_str(&k.ok(&["repository", "status", "--json"])).unwrap();
    assert_eq!(v["clientOptions"]["username"], name.as_str());
}

#[test]
fn cache_directories_are_skipped_unless_the_policy_includes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(&tmp.path().join("repository.config"));
    k.create_filesystem(&tmp.path().join("repo"));
    let src = tmp.path().join("data");
    std::fs::create_dir_all(src.join("cache")).unwrap();
    std::fs::create_dir_all(src.join("fake")).unwrap();
    std::fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n",
    )
    .unwrap();
    std::fs::write(src.join("cache/blob.bin"), vec![1u8; 5000]).unwrap();
    std::fs::write(
        src.join("fake/CACHEDIR.TAG"),
        b"Signature: not the right one",
    )
    .unwrap();
    std::fs::write(src.join("fake/kept.txt"), b"kept").unwrap();
    let s = src.to_str().unwrap();
    let listing = |k: &Kopr| {
        let v: serde_json::Value =
            serde_json::from_str(&k.ok(&["snapshot", "ls", s, "--json"])).unwrap();
        let id = v.as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        k.ok(&["ls", "-r", &id])
    };
    k.ok(&["snapshot", "create", s]);
    let files = listing(&k);
    assert!(files.lines().any(|l| l == "cache/"), "{files}");
    assert!(
        !files.contains("cache/blob.bin") && !files.contains("cache/CACHEDIR.TAG"),
        "{files}"
    );
    assert!(files.contains("fake/kept.txt"), "{files}");

    k.ok(&["policy", "set", s, "--ignore-cache-dirs", "false"]);
    k.ok(&["snapshot", "create", s]);
    let files = listing(&k);
    assert!(
        files.contains("cache/blob.bin") && files.contains("cache/CACHEDIR.TAG"),
        "{files}"
    );
}

#[test]
fn snapshot_ls_hides_incomplete_snapshots_unless_asked() {
    use kopr_repo::snapshot::{create_snapshot, UploadOptions};
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(&tmp.path().join("repository.config"));
    let repo_dir = tmp.path().join("repo");
    k.create_filesystem(&repo_dir);
    let src = tmp.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    let s = src.to_str().unwrap();
    k.ok(&["snapshot", "create", s]);
    let complete: serde_json::Value =
        serde_json::from_str(&k.ok(&["snapshot", "ls", s, "--json"])).unwrap();
    // A canceled snapshot of the same source, as an interrupted `snapshot create` leaves.
    {
        let st =
            std::sync::Arc::new(kopr_blob::filesystem::FilesystemStorage::open(&repo_dir).unwrap());
        let repo = kopr_repo::Repository::open(
            st,
            kopr_testkit::cli::PASSWORD,
            kopr_repo::OpenOptions::default(),
        )
        .unwrap();
        let source: kopr_format::snapshot::SourceInfo =
            serde_json::from_value(complete[0]["source"].clone()).unwrap();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let opts = UploadOptions {
            cancel: Some(cancel),
            ..Default::default()
        };
        let m = create_snapshot(&repo, &src, &source, &opts, &mut |_| {}).unwrap();
        assert_eq!(m.incomplete_reason, "canceled");
    }
    assert_eq!(count_snapshots(&k, s, &[]), 1);
    assert_eq!(count_snapshots(&k, s, &["--incomplete"]), 2);
    let text = k.ok(&["snapshot", "ls", s]);
    assert!(!text.contains("incomplete"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let text = k.ok(&["snapshot", "ls", s, "--incomplete"]);
    assert!(text.contains("incomplete:canceled"), "{text}");
    // A source with nothing but checkpoints is not listed at all.
    k.ok(&[
        "snapshot",
        "delete",
        complete[0]["id"].as_str().unwrap(),
        "--delete",
    ]);
    assert_eq!(k.ok(&["snapshot", "ls", s]), "");
}

/// The data pack files (`p…`) of a filesystem repository.
fn data_packs(repo: &Path) -> Vec<PathBuf> {
    tree_state(repo)
        .into_keys()
        .filter(|p| p.starts_with("p"))
        .map(|p| repo.join(p))
        .collect()
}

#[test]
fn verify_without_reading_files_still_finds_missing_and_short_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, repo, _src, _ids) = repo_with_snapshots(tmp.path());
    for pct in ["0", "10"] {
        k.ok(&[
            "snapshot",
            "verify",
            &format!("--verify-files-percent={pct}"),
        ]);
    }
    let packs = data_packs(&repo);
    assert_eq!(packs.len(), 2, "{packs:?}");
    // One pack shortened by a byte, the other gone.
    let data = std::fs::read(&packs[0]).unwrap();
    std::fs::write(&packs[0], &data[..16]).unwrap();
    std::fs::remove_file(&packs[1]).unwrap();
    let out = k.run(&["snapshot", "verify", "--verify-files-percent=0"]);
    let err = stderr(&out);
    assert!(err.contains("is backed by missing blob p"), "{err}");
    assert!(err.contains(", which has 16 bytes"), "{err}");
    one_error_line(&out);
    // Files read at random or not, every one is reported damaged.
    let out = k.run(&["snapshot", "verify", "--verify-files-percent=10"]);
    let line = one_error_line(&out);
    assert!(line.contains("3 errors found"), "{line}: {}", stderr(&out));
}

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
