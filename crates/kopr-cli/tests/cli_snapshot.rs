//! Drives `kopr snapshot create | ls | restore | delete`, `ls` and `show` end to end.

use std::path::Path;
use std::process::{Command, Output};

use kopr_testkit::cli::{policy_row, Kopr};

fn kopr(cfg: &Path, args: &[&str]) -> Output {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).run(args)
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).ok(args)
}

#[test]
fn snapshot_lifecycle_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let src = tmp.path().join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    let repo = tmp.path().join("repo");
    create_repository(&cfg, &repo);

    let created = ok(&cfg, &["snapshot", "create", src.to_str().unwrap()]);
    assert!(
        created.starts_with("Created snapshot with root k"),
        "{created}"
    );
    let again = ok(
        &cfg,
        &["snapshot", "create", src.to_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["stats"]["cachedFiles"], 2);
    assert_eq!(v["stats"]["nonCachedFiles"], 0);

    let id = listed_snapshot_id(&cfg, &src);

    let stats = ok(&cfg, &["snapshot", "ls", "--all", "--storage-stats"]);
    let rows: Vec<&str> = stats.lines().skip(1).collect();
    assert!(rows[0].contains(" new-files:2 new-dirs:2 "), "{stats}");
    assert!(
        rows[1].contains(" new-data:0 B new-files:0 new-dirs:0 "),
        "{stats}"
    );

    list_restore_and_verify(&cfg, tmp.path(), &id);
    // delete needs --delete, then the snapshot is gone
    let dry = ok(&cfg, &["snapshot", "delete", &id]);
    assert!(dry.contains("--delete"), "{dry}");
    assert_eq!(ok(&cfg, &["snapshot", "ls"]).lines().count(), 3);
    ok(&cfg, &["snapshot", "delete", &id, "--delete"]);
    assert_eq!(ok(&cfg, &["snapshot", "ls"]).lines().count(), 2);

    let missing = kopr(
        &cfg,
        &[
            "snapshot",
            "create",
            tmp.path().join("nope").to_str().unwrap(),
        ],
    );
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr)
            .trim()
            .lines()
            .count(),
        1
    );
}

/// A filesystem repository at `repo` with Kopia's default key derivation, connected.
fn create_repository(cfg: &Path, repo: &Path) {
    ok(
        cfg,
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "pbkdf2-sha256-600000",
        ],
    );
}

/// `snapshot ls -m` of `src`: its source line, then one snapshot of two files and its
/// manifest id, returned.
fn listed_snapshot_id(cfg: &Path, src: &Path) -> String {
    let listed = ok(cfg, &["snapshot", "ls", "-m"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].ends_with(&format!(
            ":{}",
            std::fs::canonicalize(src).unwrap().display()
        )),
        "{listed}"
    );
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[1].contains(" drwx") && lines[1].contains("files:2"),
        "{listed}"
    );
    lines[1]
        .split("manifest:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

/// `ls`, `show`, `snapshot restore` (refused over existing files without `--overwrite`) and `snapshot verify` of snapshot `id`.
fn list_restore_and_verify(cfg: &Path, tmp: &Path, id: &str) {
    let ls = ok(cfg, &["ls", "-l", id]);
    assert!(ls.lines().any(|l| l.ends_with(" a.txt")), "{ls}");
    assert!(ls.lines().any(|l| l.ends_with(" sub/")), "{ls}");
    assert_eq!(ok(cfg, &["show", &format!("{id}/a.txt")]), "alpha");

    let dst = tmp.join("restored");
    ok(cfg, &["snapshot", "restore", id, dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(
        std::fs::read(dst.join("sub/b.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    let refused = kopr(cfg, &["snapshot", "restore", id, dst.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--overwrite"));

    let verified = ok(cfg, &["snapshot", "verify"]);
    assert!(
        verified.starts_with("Verified 2 snapshots, ")
            && verified.trim_end().ends_with(": 0 errors."),
        "{verified}"
    );
    let sampled = ok(cfg, &["snapshot", "verify", "--verify-files-percent=0"]);
    assert!(sampled.trim_end().ends_with(": 0 errors."), "{sampled}");
    let bad = kopr(cfg, &["snapshot", "verify", "--verify-files-percent=150"]);
    assert!(!bad.status.success());
    let err = kopr_testkit::cli::one_error_line(&bad);
    assert!(err.contains("between 0 and 100"), "{err}");
}

#[test]
fn policies_and_expire_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let src = tmp.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    let repo = tmp.path().join("repo");
    create_repository(&cfg, &repo);
    let global = ok(&cfg, &["policy", "show", "--global"]);
    assert_eq!(
        policy_row(&global, "  Latest snapshots:"),
        "10 (defined for this target)",
        "{global}"
    );
    assert_eq!(
        policy_row(&global, "  Daily snapshots:"),
        "7 (defined for this target)",
        "{global}"
    );
    let s = src.to_str().unwrap();
    set_retention_ignore_and_compression(&cfg, s);
    let shown = ok(&cfg, &["policy", "show", s]);
    assert_eq!(
        policy_row(&shown, "  Latest snapshots:"),
        "2 (defined for this target)",
        "{shown}"
    );
    assert!(shown.contains("\n    *.tmp\n"), "{shown}");
    assert_eq!(
        policy_row(&shown, "  Compressor:"),
        "zstd (defined for this target)",
        "{shown}"
    );
    let list = ok(&cfg, &["policy", "list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    let bad = kopr(&cfg, &["policy", "set", s, "--keep-latest", "many"]);
    assert!(!bad.status.success());

    snapshots_apply_retention_and_expire_deletes(&cfg, &src);
}

/// The source's policy: keep the latest 2 only, ignore `*.tmp`, compress with zstd.
fn set_retention_ignore_and_compression(cfg: &Path, s: &str) {
    ok(
        cfg,
        &[
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
            "--add-ignore",
            "*.tmp",
            "--compression",
            "zstd",
        ],
    );
}

/// Four snapshots (the ignored file excluded from each) leave the latest two; with a
/// keep-latest of 1, `expire` shows then deletes one more.
fn snapshots_apply_retention_and_expire_deletes(cfg: &Path, src: &Path) {
    let s = src.to_str().unwrap();
    std::fs::write(src.join("x.tmp"), b"ignored").unwrap();
    for i in 0..4 {
        std::fs::write(src.join("f"), format!("{i}")).unwrap();
        let out = ok(cfg, &["snapshot", "create", s, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stats"]["excludedFileCount"], 1);
    }
    // Each snapshot applied the retention policy: the latest two are left.
    let listed = ok(cfg, &["snapshot", "ls"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.contains("(latest-")).count(),
        2,
        "{listed}"
    );
    ok(cfg, &["policy", "set", s, "--keep-latest", "1"]);
    let dry = ok(cfg, &["snapshot", "expire", s]);
    assert!(dry.contains("Would delete 1 snapshots"), "{dry}");
    ok(cfg, &["snapshot", "expire", s, "--delete"]);
    assert_eq!(ok(cfg, &["snapshot", "ls"]).lines().count(), 2);
}

fn repo_with_data(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cfg = tmp.join("repository.config");
    let src = tmp.join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("sub/f{i}")),
            kopr_testkit::random_bytes(i, 200_000),
        )
        .unwrap();
    }
    ok(
        &cfg,
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            tmp.join("repo").to_str().unwrap(),
            "--format-block-key-derivation-algorithm",
            "pbkdf2-sha256-600000",
        ],
    );
    (cfg, src)
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, src) = repo_with_data(tmp.path());
    for _ in 0..2 {
        let out = kopr(&cfg, &["snapshot", "create", src.to_str().unwrap()]);
        assert!(out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            !err.contains('\x1b') && !err.contains('\r'),
            "no bar escape codes: {err:?}"
        );
        // Only the heading, then the one-line summary on stdout.
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.starts_with("Snapshotting "), "{err:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.starts_with("Created snapshot with root k"));
        assert!(stdout.contains(": 20 files (4 MB), "), "{stdout}");
    }
    let json = kopr(
        &cfg,
        &["snapshot", "create", src.to_str().unwrap(), "--json"],
    );
    assert!(json.status.success());
    assert!(
        json.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&json.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["stats"]["cachedFiles"], 20);
}

/// On a terminal (a pseudo-terminal from `script`, where installed) the bar is drawn and then
/// erased before the summary.
#[cfg(unix)]
#[test]
fn progress_bar_on_a_terminal() {
    let has_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        kopr_testkit::env::skip(
            "progress_bar_on_a_terminal",
            "no `script` to make a pseudo-terminal",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, src) = repo_with_data(tmp.path());
    let cmd = format!(
        "{} snapshot create {}",
        env!("CARGO_BIN_EXE_kopr"),
        src.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KOPR_CONFIG_PATH", &cfg)
        .env("KOPR_PASSWORD", "pw123")
        // Logs beside the config, not in the user's cache (as `Kopr::cmd` does).
        .env("KOPR_LOG_DIR", cfg.with_extension("logs"))
        .env("TERM", "xterm")
        .env_remove("KOPIA_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" files ("), "the bar was drawn: {text:?}");
    assert!(text.contains('\x1b'), "and erased: {text:?}");
    assert!(text.contains("Created snapshot with root k"), "{text:?}");
}

#[test]
fn snapshot_create_compression_none_overrides_a_compressing_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    create_repository(&cfg, &repo);
    ok(
        &cfg,
        &["policy", "set", "--global", "--compression", "zstd"],
    );
    let s = src.to_str().unwrap();
    let text = |i: u32| format!("line {i} of a text that compresses well\n").repeat(50_000);

    std::fs::write(src.join("t"), text(1)).unwrap();
    let before = kopr_testkit::tree::bytes_under(&repo.join("p"));
    ok(&cfg, &["snapshot", "create", s, "--compression", "none"]);
    let stored = kopr_testkit::tree::bytes_under(&repo.join("p")) - before;
    assert!(stored >= text(1).len() as u64, "{stored} bytes stored");

    // Without the flag the policy's zstd applies again.
    std::fs::write(src.join("t"), text(2)).unwrap();
    let before = kopr_testkit::tree::bytes_under(&repo.join("p"));
    ok(&cfg, &["snapshot", "create", s]);
    let stored = kopr_testkit::tree::bytes_under(&repo.join("p")) - before;
    assert!(stored < text(2).len() as u64 / 10, "{stored} bytes stored");

    let out = kopr(
        &cfg,
        &["snapshot", "create", s, "--compression", "nonesuch"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown compression algorithm"), "{err}");
}

/// `policy set --ignore-identical-snapshots=true`: an unchanged tree's snapshot is not saved,
/// and `snapshot create` says so on stderr (nothing on stdout), as Kopia does.
#[test]
fn an_identical_snapshot_is_not_saved_under_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("repository.config");
    let src = tmp.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    create_repository(&cfg, &tmp.path().join("repo"));
    ok(
        &cfg,
        &[
            "policy",
            "set",
            "--global",
            "--ignore-identical-snapshots=true",
        ],
    );
    let s = src.to_str().unwrap();
    ok(&cfg, &["snapshot", "create", s]);
    let again = kopr(&cfg, &["snapshot", "create", s]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(
            "Not saving snapshot because no files have been changed since previous snapshot"
        ),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&cfg, &["snapshot", "ls", "--json"])).unwrap();
    assert_eq!(listed.len(), 1);
}
