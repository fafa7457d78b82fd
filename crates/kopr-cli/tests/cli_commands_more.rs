//! Drives the real `kopr` binary through `logs`, `snapshot pin`, `cache`, the top-level aliases,
//! `completion`, the writing commands over a read-only connection and an interrupted change of
//! an object-locked repository, and checks what each one did, not only its exit status.

use kopr_testkit::cli::{one_error_line, Kopr};
use kopr_testkit::fixtures::Fixture;
use std::path::{Path, PathBuf};

mod commands_common;
use commands_common::*;

#[test]
fn logs_list_show_and_cleanup_read_kopias_own_logs() {
    let Some(fx) = Fixture::load("default") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    let logs: Vec<String> = blob_files(&repo)
        .into_keys()
        .filter(|id| id.starts_with("_log_"))
        .collect();
    assert_eq!(logs.len(), 8);

    // One line per session: ID START DURATION SIZE SEGMENTS, the session id from the blob name.
    let list = k.ok(&["logs", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 8, "{list}");
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            logs.iter()
                .any(|b| b.starts_with(&format!("_log_{}_", f[0]))),
            "{l}"
        );
        assert_eq!(f[3], "UTC");
        assert_eq!(f[f.len() - 1], "1", "one segment each: {l}");
    }
    assert!(list.contains(" 1s 9.7 KB 1\n"), "{list}");
    let two = k.run(&["logs", "list", "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&two.stdout).lines().count(), 2);
    assert!(stderr(&two).contains("NOTE: Listed 2/8 log sessions, pass --all to show all."));

    // show ID: the decrypted, gunzipped JSON lines of that session.
    let id = "20261130035211_3ac1";
    let out = k.run(&["logs", "show", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() > 10, "{text}");
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(
            v["t"].as_str().unwrap().starts_with("2026-11-30T03:52:1"),
            "{l}"
        );
    }
    // No arguments: only the latest session; --all: every one.
    let latest = k.run(&["logs", "show"]);
    assert!(stderr(&latest).contains("Showing the latest log ("));
    let all = k.ok(&["logs", "show", "--all"]);
    assert!(all.len() > text.len() && all.contains(&text));
    assert!(all.len() > latest.stdout.len());
    let none = k.run(&["logs", "show", "nosuchsession"]);
    assert!(one_error_line(&none).contains("no logs found"));

    // cleanup: --dry-run deletes nothing, then the 3 newest are kept.
    let dry = k.ok_stderr(&["logs", "cleanup", "--max-count=3", "--dry-run"]);
    assert!(dry.contains("Would delete 5 logs."), "{dry}");
    assert_eq!(k.ok(&["logs", "list"]).lines().count(), 8);
    let done = k.ok_stderr(&["logs", "cleanup", "--max-count=3"]);
    assert!(done.contains("Deleted 5 logs."), "{done}");
    assert_eq!(k.ok(&["logs", "list"]).lines().count(), 3);
    assert_eq!(
        blob_files(&repo)
            .keys()
            .filter(|b| b.starts_with("_log"))
            .count(),
        3
    );
}

#[test]
fn snapshot_pin_keeps_a_snapshot_from_expiring_until_unpinned() {
    let e = Env::small_tree(BIN);
    let src = e.src.to_str().unwrap();
    let ids: Vec<String> = (0..3).map(|_| e.snapshot()).collect();
    // Pinning by manifest id gives the snapshot a new manifest id, as Kopia.
    let log = e.k.ok_stderr(&[
        "snapshot", "pin", &ids[0], "--add", "keep-me", "--add", "legal",
    ]);
    assert!(log.contains("Updating snapshot at "), "{log}");
    let after = e.k.ok(&["snapshot", "ls", "-m", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&after).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    let pinned: Vec<&serde_json::Value> = arr.iter().filter(|m| m["pins"].is_array()).collect();
    assert_eq!(pinned.len(), 1);
    assert_eq!(pinned[0]["pins"], serde_json::json!(["keep-me", "legal"]));
    let pinned_id = pinned[0]["id"].as_str().unwrap().to_string();
    assert!(!ids.contains(&pinned_id));
    // Again: no change.
    let again =
        e.k.ok_stderr(&["snapshot", "pin", &pinned_id, "--add", "legal"]);
    assert!(again.contains("No change for snapshot at "), "{again}");
    let none = e.k.run(&["snapshot", "pin", &pinned_id]);
    assert!(one_error_line(&none).contains("must specify --add and/or --remove"));

    // Retention keeping only the latest deletes the middle snapshot, not the pinned one.
    e.k.ok(&[
        "policy",
        "set",
        src,
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
    e.k.ok(&["snapshot", "expire", src, "--delete"]);
    let left = e.k.ok(&["snapshot", "ls", "-m"]);
    assert!(
        left.contains(&pinned_id) && left.contains(&ids[2]),
        "{left}"
    );
    assert!(!left.contains(&ids[1]), "{left}");

    // Unpin by root object id (the same tree: every snapshot of it), then it expires.
    let root = pinned[0]["rootEntry"]["obj"].as_str().unwrap().to_string();
    e.k.ok(&[
        "snapshot", "pin", &root, "--remove", "keep-me", "--remove", "legal",
    ]);
    e.k.ok(&["snapshot", "expire", src, "--delete"]);
    let left = e.k.ok(&["snapshot", "ls", "-m"]);
    assert_eq!(
        left.lines().filter(|l| l.contains(" k")).count(),
        1,
        "{left}"
    );
    assert!(left.contains(&ids[2]), "{left}");
    let bad = e.k.run(&["snapshot", "pin", "k0123", "--add", "x"]);
    assert!(one_error_line(&bad).contains("no snapshots matched k0123"));
}

#[test]
fn cache_info_and_clear_work_on_the_connections_cache_directory() {
    let e = Env::small_tree(BIN);
    let id = e.snapshot();
    let path = e.k.ok(&["cache", "info", "--path"]);
    let dir = PathBuf::from(path.trim());
    let n_index = std::fs::read_dir(dir.join("indexes")).unwrap().count();
    assert!(n_index > 0);
    let info = e.k.run(&["cache", "info"]);
    let text = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "{}: {n_index} files ",
            dir.join("indexes").display()
        )),
        "{text}"
    );
    assert!(stderr(&info).contains("kopr cache clear"));

    let log = e.k.ok_stderr(&["cache", "clear", "--partial", "indexes"]);
    assert!(log.contains(&format!(
        "Clearing cache directory: {}.",
        dir.join("indexes").display()
    )));
    assert_eq!(std::fs::read_dir(dir.join("indexes")).unwrap().count(), 0);
    // The repository still opens (from storage) and refills the cache.
    assert_restores(&e.k, &id, &e.src, &e.dir.path().join("r"));
    assert!(std::fs::read_dir(dir.join("indexes")).unwrap().count() > 0);
    e.k.ok(&["cache", "clear"]);
    assert!(dir.is_dir());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    // A cache directory holding anything that is not a cache is left alone.
    std::fs::write(dir.join("precious.txt"), b"mine").unwrap();
    let out = e.k.run(&["cache", "clear"]);
    assert!(one_error_line(&out).contains("refusing to clear"));
    assert_eq!(std::fs::read(dir.join("precious.txt")).unwrap(), b"mine");
}

#[test]
fn top_level_restore_diff_and_list_are_the_snapshot_commands() {
    let e = Env::small_tree(BIN);
    let a = e.snapshot();
    std::fs::write(e.src.join("new.txt"), b"added").unwrap();
    let b = e.snapshot();
    let into = e.dir.path().join("r");
    e.k.ok(&["restore", &a, into.to_str().unwrap()]);
    assert_eq!(std::fs::read(into.join("a.txt")).unwrap(), b"hello kopr\n");
    assert!(!into.join("new.txt").exists());
    let diff = e.k.ok(&["diff", &a, &b]);
    assert_eq!(diff, e.k.ok(&["snapshot", "diff", &a, &b]));
    assert!(diff.contains("new.txt"), "{diff}");
    assert_eq!(e.k.ok(&["compare", &a, &b]), diff);
    let list = e.k.ok(&["list", &b]);
    assert_eq!(list, e.k.ok(&["ls", &b]));
    assert!(list.contains("new.txt"), "{list}");
}

#[test]
fn completion_scripts_complete_kopias_commands_in_a_real_bash() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kopr::new(BIN, &dir.path().join("c"));
    let script = dir.path().join("kopr.bash");
    std::fs::write(&script, k.ok(&["completion", "bash"])).unwrap();
    // What bash offers after `kopr repository ch<TAB>` and `kopr manifest <TAB>`.
    // bash calls the function with the command, the word being completed and the one before.
    let complete = |words: &str, cword: usize| {
        let prog = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _kopr kopr \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &prog])
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let ch = complete("kopr repository ch", 2);
    assert_eq!(ch.trim(), "change-password", "{ch}");
    let manifest = complete("kopr manifest ''", 2);
    for sub in ["list", "show", "delete"] {
        assert!(manifest.lines().any(|l| l == sub), "{manifest}");
    }
    let zsh = k.ok(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef kopr"), "{}", &zsh[..40]);
    assert!(zsh.contains("change-password"));
    assert!(k.ok(&["completion", "fish"]).contains("complete -c kopr"));
    let bad = k.run(&["completion", "tcsh"]);
    assert!(!bad.status.success());
}

/// Name, size and modification time of every file under `dir`.
fn tree_state(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = blob_files(dir)
        .into_values()
        .map(|p| {
            let md = std::fs::metadata(&p).unwrap();
            (p, md.len(), md.modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_new_writing_commands_change_nothing_over_a_read_only_connection() {
    let e = Env::small_tree(BIN);
    let id = e.snapshot();
    // An orphan old enough for `blob gc`, and a log-like blob for `logs cleanup`.
    let st = kopr_blob::filesystem::FilesystemStorage::open(&e.repo).unwrap();
    use kopr_blob::BlobStorage as _;
    let orphan = "p0123456789abcdef0123456789abcdef-s0123456789abcdef";
    st.put_blob(orphan, b"x", &kopr_blob::PutOptions::default())
        .unwrap();
    set_age_days(&blob_files(&e.repo)[orphan], 3);
    e.k.ok(&["repository", "disconnect"]);
    let path = e.repo.to_str().unwrap();
    e.k.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        path,
        "--readonly",
    ]);
    let before = tree_state(&e.repo);
    let key_file = PathBuf::from(format!("{}.kopr-key", e.k.cfg().display()));
    let key_before = std::fs::read(&key_file).ok();
    let d = "--dangerous-commands=enabled";
    for args in [
        &["repository", "change-password", "--new-password", "n3w-pw"][..],
        &[d, "manifest", "delete", &id],
        &[d, "blob", "delete", orphan],
        &[d, "blob", "gc", "--delete=yes"],
        &["snapshot", "pin", &id, "--add", "x"],
        &["logs", "cleanup", "--max-count=0"],
    ] {
        let out = e.k.run(args);
        let line = one_error_line(&out);
        assert!(line.contains("read-only"), "{args:?}: {line}");
    }
    assert_eq!(
        before,
        tree_state(&e.repo),
        "nothing in the repository changed"
    );
    assert_eq!(key_before, std::fs::read(&key_file).ok());
    assert_restores(&e.k, &id, &e.src, &e.dir.path().join("r"));
}

/// With object lock, `kopia.blobcfg` is never absent, so a crash between the two writes leaves
/// it under the new key and the format blob under the old one; running the same command again
/// finishes the change (and a wrong new password changes nothing).
#[test]
fn an_interrupted_change_of_an_object_locked_repository_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let k = Kopr::new(BIN, &dir.path().join("cfg/repository.config"));
    k.ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
        "--retention-mode",
        "COMPLIANCE",
        "--retention-period",
        "48h",
    ]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello kopr\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), kopr_testkit::random_bytes(3, 1000)).unwrap();
    let out = k.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = k
        .cmd(&["repository", "change-password", "--new-password", "n3w-pw"])
        .env("KOPR_TEST_CRASH_AFTER_BLOB_WRITES", "1")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("abort after blob write 1: kopia.blobcfg"),
        "{}",
        stderr(&out)
    );
    let newk = k.clone().with_password("n3w-pw");
    // Neither password opens it: the old one opens the format blob but not kopia.blobcfg.
    let out = k.run(&["snapshot", "ls"]);
    assert!(one_error_line(&out).contains("unable to decrypt kopia.blobcfg"));
    let out = newk.run(&["snapshot", "ls"]);
    assert!(one_error_line(&out).contains("invalid repository password"));
    let format_before = std::fs::read(repo.join("kopia.repository.f")).unwrap();
    let wrong = k.run(&["repository", "change-password", "--new-password", "other"]);
    assert!(one_error_line(&wrong).contains("no interrupted password change to finish"));
    assert_eq!(
        format_before,
        std::fs::read(repo.join("kopia.repository.f")).unwrap()
    );

    let log = k.ok_stderr(&["repository", "change-password", "--new-password", "n3w-pw"]);
    assert!(
        log.contains("NOTE: Finished the interrupted password change."),
        "{log}"
    );
    let old = k.run(&["snapshot", "ls"]);
    assert!(one_error_line(&old).contains("invalid repository password"));
    assert_restores(&newk, &id, &src, &dir.path().join("r"));
    let status = newk.ok(&["repository", "status", "--json"]);
    assert!(status.contains("COMPLIANCE"), "retention kept: {status}");
}
