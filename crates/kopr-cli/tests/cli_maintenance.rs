//! `kopr maintenance info | status | set | run | explain` end to end: ownership, the field
//! guide's log lines, JSON output, and a process that dies before each task of a cycle.

use std::path::Path;
use std::process::Output;

use kopr_testkit::cli::Kopr;
use kopr_testkit::random_bytes;

fn kopr_env(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).cmd(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn kopr(cfg: &Path, args: &[&str]) -> Output {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).run(args)
}

fn ok(cfg: &Path, args: &[&str]) -> (String, String) {
    let out = kopr(cfg, args);
    assert!(
        out.status.success(),
        "kopr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn setup(tmp: &Path) -> (std::path::PathBuf, String, String) {
    let cfg = tmp.join("repository.config");
    let repo = tmp.join("repo");
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &cfg).create_filesystem(&repo);
    let mut ids = Vec::new();
    for name in ["keep", "gone"] {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3u64 {
            let seed = if name == "keep" { i } else { 100 + i };
            std::fs::write(dir.join(format!("f{i}")), random_bytes(seed, 300_000)).unwrap();
        }
        ok(&cfg, &["snapshot", "create", dir.to_str().unwrap()]);
        let (ls, _) = ok(&cfg, &["snapshot", "ls", dir.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
        ids.push(v[0]["id"].as_str().unwrap().to_string());
    }
    (cfg, ids[0].clone(), ids[1].clone())
}

/// SIGABRT, what `std::process::abort` dies of.
fn libc_sigabrt() -> i32 {
    6
}

/// The pack blobs (`p` prefix) as `blob ls` lists them: id and length.
fn packs(cfg: &Path) -> std::collections::BTreeMap<String, u64> {
    kopr_testkit::cli::blob_lengths(&ok(cfg, &["blob", "ls", "--prefix=p", "--json"]).0)
}

fn restore_matches(cfg: &Path, tmp: &Path, id: &str, n: usize) {
    let dest = tmp.join(format!("restore-{id}-{n}"));
    ok(cfg, &["snapshot", "restore", id, dest.to_str().unwrap()]);
    for i in 0..3u64 {
        assert_eq!(
            std::fs::read(dest.join(format!("f{i}"))).unwrap(),
            random_bytes(i, 300_000)
        );
    }
}

#[test]
fn ownership_info_and_the_field_guide_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, _, gone) = setup(tmp.path());
    let (info, _) = ok(&cfg, &["maintenance", "info"]);
    assert!(info.starts_with("Owner: "), "{info}");
    assert!(info.contains("Quick Cycle:\n  scheduled: true\n  interval: 1h0m0s\n  next run: now"));
    assert!(info.contains("Full Cycle:\n  scheduled: true\n  interval: 24h0m0s\n"));

    ok(&cfg, &["snapshot", "delete", &gone, "--delete"]);
    a_full_run_logs_kopias_lines(&cfg);

    another_owner_is_refused_unless_forced(&cfg);

    let (json, _) = ok(&cfg, &["maintenance", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["full"]["interval"], 12u64 * 3600 * 1_000_000_000);
    assert_eq!(v["quick"]["enabled"], false);
    assert!(v["schedule"]["runs"]["snapshot-gc"][0]["success"] == true);

    let (_, auto) = ok(&cfg, &["maintenance", "run", "--auto"]);
    assert!(
        auto.contains("not due for full maintenance cycle until "),
        "{auto}"
    );

    let (x, _) = ok(&cfg, &["maintenance", "explain", "--json"]);
    let x: serde_json::Value = serde_json::from_str(&x).unwrap();
    assert_eq!(x["deletedSnapshots"].as_array().unwrap().len(), 1);
    assert!(
        x["fullCycleNowSafetyNone"]["blobs"].as_u64().unwrap() >= 1,
        "{x:#}"
    );
    let (human, _) = ok(&cfg, &["maintenance", "explain"]);
    assert!(
        human.contains("A full cycle now would delete 0 blobs"),
        "{human}"
    );

    for bad in [
        vec!["maintenance", "run", "--safety=some"],
        vec!["maintenance", "set", "--full-interval=soon"],
        vec!["maintenance", "set"],
    ] {
        let out = kopr(&cfg, &bad);
        assert!(!out.status.success(), "{bad:?}");
    }
}

/// `maintenance run --full` logs Kopia's lines (the field guide quotes them).
fn a_full_run_logs_kopias_lines(cfg: &Path) {
    let (_, log) = ok(cfg, &["maintenance", "run", "--full"]);
    for line in [
        "Running full maintenance...",
        "GC found 0 unused contents (0 B)",
        "found 0 pack blobs not in use",
        "Found 0 blobs to delete (0 B)",
        "Deleted total 0 unreferenced blobs (0 B)",
        "Extending object lock retention-period is disabled.",
        "Finished full maintenance.",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "missing {line:?} in:\n{log}"
        );
    }
    assert!(
        log.contains("GC found 4 unused contents that are too recent to delete"),
        "{log}"
    );
}

/// Someone else owns it now: refused with the owner's name, unless forced; then it is ours
/// again, with a 12-hour full interval and no quick cycles.
fn another_owner_is_refused_unless_forced(cfg: &Path) {
    let (_, set) = ok(cfg, &["maintenance", "set", "--owner=velero@cluster"]);
    assert!(set.contains("Setting maintenance owner to velero@cluster"));
    let out = kopr(cfg, &["maintenance", "run", "--full"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("maintenance must be run by designated user: velero@cluster"),
        "{err}"
    );
    ok(cfg, &["maintenance", "run", "--force"]);
    ok(
        cfg,
        &[
            "maintenance",
            "set",
            "--owner=me",
            "--full-interval=12h",
            "--no-enable-quick",
        ],
    );
}

#[test]
fn a_process_dying_before_any_task_leaves_a_repository_that_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, keep, gone) = setup(tmp.path());
    ok(&cfg, &["snapshot", "delete", &gone, "--delete"]);
    let before = packs(&cfg);
    let size_before: u64 = before.values().sum();
    let tasks = [
        "snapshot-gc",
        "full-rewrite-contents",
        "full-drop-deleted-content",
        "full-delete-blobs",
        "compact-single-epoch",
        "advance-epoch",
        "generate-epoch-range-index",
        "cleanup-epoch-markers",
        "delete-superseded-epoch-indexes",
        "cleanup-logs",
    ];
    for (n, task) in tasks.iter().enumerate() {
        let out = kopr_env(
            &cfg,
            &["maintenance", "run", "--full", "--safety=none"],
            &[("KOPR_TEST_CRASH_BEFORE_TASK", task)],
        );
        // died at the hook (SIGABRT), not of an error or after the cycle
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc_sigabrt()),
            "the run before {task} should have died: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ok(&cfg, &["snapshot", "verify"]);
        restore_matches(&cfg, tmp.path(), &keep, n);
        // The interrupted state: until full-delete-blobs has run once, every pack is still
        // there; from then on the deleted snapshot's 3 files (incompressible) are gone and
        // the kept ones stay.
        let now = packs(&cfg);
        let size: u64 = now.values().sum();
        if n <= 3 {
            for id in before.keys() {
                assert!(now.contains_key(id), "{id} deleted before {task}");
            }
        } else {
            assert!(
                size + 3 * 300_000 <= size_before,
                "before {task}: packs {size_before} -> {size} bytes"
            );
            assert!(size >= 3 * 300_000, "kept data lost before {task}: {size}");
        }
    }
    let (_, log) = ok(&cfg, &["maintenance", "run", "--full", "--safety=none"]);
    let size_after: u64 = packs(&cfg).values().sum();
    assert!(
        (3 * 300_000..size_before - 3 * 300_000).contains(&size_after),
        "packs {size_before} -> {size_after} bytes:\n{log}"
    );
    ok(&cfg, &["snapshot", "verify"]);
    restore_matches(&cfg, tmp.path(), &keep, 99);
    let (x, _) = ok(&cfg, &["maintenance", "explain", "--json", "--safety=none"]);
    let x: serde_json::Value = serde_json::from_str(&x).unwrap();
    assert_eq!(
        x["fullCycleNowSafetyNone"]["blobs"], 0,
        "all garbage is gone: {x:#}"
    );
}

#[test]
fn an_unusable_cache_directory_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, keep, _) = setup(tmp.path());
    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, b"a file where the cache directory would go").unwrap();
    let cache = blocker.join("cache");
    let repo = tmp.path().join("repo");
    ok(&cfg, &["repository", "disconnect"]);
    ok(
        &cfg,
        &[
            "repository",
            "connect",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
            "--cache-directory",
            cache.to_str().unwrap(),
        ],
    );
    ok(&cfg, &["maintenance", "run", "--full"]);
    ok(&cfg, &["maintenance", "run"]);
    restore_matches(&cfg, tmp.path(), &keep, 0);
}

#[test]
fn content_verify_and_index_recover_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, keep, _) = setup(tmp.path());
    let (_, v) = ok(&cfg, &["content", "verify", "--full"]);
    assert!(v.contains("found 0 errors"), "{v}");
    // lose every index blob of epoch 0 (and the cache of them)
    let xn = tmp.path().join("repo").join("x").join("n0_");
    std::fs::remove_dir_all(&xn).unwrap();
    let cache = dirs_cache(&cfg);
    if let Some(c) = cache {
        let _ = std::fs::remove_dir_all(c);
    }
    let out = kopr(
        &cfg,
        &[
            "snapshot",
            "restore",
            &keep,
            tmp.path().join("r0").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "restore needs the index");
    let (_, dry) = ok(&cfg, &["index", "recover"]);
    assert!(
        dry.contains("but not committed. Re-run with --commit"),
        "{dry}"
    );
    let (_, done) = ok(&cfg, &["index", "recover", "--commit"]);
    assert!(done.starts_with("Recovered "), "{done}");
    restore_matches(&cfg, tmp.path(), &keep, 0);
    let (_, v) = ok(&cfg, &["content", "verify", "--download-percent=50"]);
    assert!(v.contains("found 0 errors"), "{v}");
    // a damaged pack: verify fails, naming the content and the file that needs it
    let p_dir = tmp.path().join("repo").join("p");
    let shard = std::fs::read_dir(&p_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0x80;
    std::fs::write(&file, bytes).unwrap();
    let out = kopr(&cfg, &["content", "verify", "--full"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("used by snapshot "), "{err}");
    assert!(err.contains("found 1 errors"), "{err}");
}

fn dirs_cache(cfg: &Path) -> Option<std::path::PathBuf> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(cfg).ok()?).ok()?;
    Some(v["caching"]["cacheDirectory"].as_str()?.into())
}

#[test]
fn max_unused_percent_is_set_shown_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, _, _) = setup(tmp.path());
    let (info, _) = ok(&cfg, &["maintenance", "info"]);
    assert!(info.contains("Packs more unused than: 5% "), "{info}");
    let (_, set) = ok(&cfg, &["maintenance", "set", "--max-unused-percent=20"]);
    assert!(
        set.contains("Setting max unused percent of packs to 20."),
        "{set}"
    );
    let (info, _) = ok(&cfg, &["maintenance", "info"]);
    assert!(info.contains("Packs more unused than: 20% "), "{info}");
    let (json, _) = ok(&cfg, &["maintenance", "info", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["koprMaxUnusedPercent"], 20, "{v:#}");
    let (x, _) = ok(&cfg, &["maintenance", "explain"]);
    assert!(
        x.contains("Packs with live contents are emptied once more than 20% unused."),
        "{x}"
    );
    for bad in ["--max-unused-percent=101", "--max-unused-percent=lots"] {
        let out = kopr(&cfg, &["maintenance", "set", bad]);
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("max-unused-percent"), "{err}");
    }
    let (info, _) = ok(&cfg, &["maintenance", "info"]);
    assert!(info.contains("Packs more unused than: 20% "), "{info}");
}
