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
    ro.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--readonly",
    ]);
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
