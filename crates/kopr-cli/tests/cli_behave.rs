//! kopr behaves as a Kopia user expects: a read-only connection changes nothing, broken pipes
//! and full disks end commands quietly, snapshot errors set the exit code, retention follows
//! each snapshot, and `snapshot ls` hides checkpoints. Restores are in `cli_behave_restore.rs`.

use kopr_testkit::cli::{one_error_line, policy_row, Kopr};
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod behave_common;
use behave_common::*;

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
    keep_the_latest_only(&rw);
    for args in &writing {
        refused_without_a_change(&ro, &repo, args);
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

/// The global policy keeps the latest snapshot only.
fn keep_the_latest_only(rw: &Kopr) {
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
}

/// `kopr args` on the read-only connection fails with the read-only line and leaves every file
/// of the repository as it was.
fn refused_without_a_change(ro: &Kopr, repo: &Path, args: &[&str]) {
    let before = tree_state(repo);
    let out = ro.run(args);
    let after = tree_state(repo);
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
    let src = unreadable_tree(tmp.path());
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

    both_errors_fail_the_snapshot(&run, s);

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
    let row = |name: &str| policy_row(&shown, name);
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

/// `tmp/data` with a readable file, a file and a directory nobody may read.
fn unreadable_tree(tmp: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let src = tmp.join("data");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::write(src.join("locked/inner.txt"), b"no").unwrap();
    for p in [tmp.to_path_buf(), src.clone()] {
        open_to_all(&p);
    }
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    src
}

/// Without ignore policies both unreadable entries fail the snapshot, which is kept with its
/// errors.
fn both_errors_fail_the_snapshot(run: &dyn Fn(&[&str]) -> Output, s: &str) {
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
    let out = run(&["snapshot", "ls", s]);
    assert!(out.status.success(), "kopr snapshot ls: {}", stderr(&out));
    let listed = stdout(&out);
    assert!(listed.contains(" errors:2"), "{listed}");
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
