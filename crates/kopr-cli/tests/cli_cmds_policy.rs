//! Drives the real `kopr` binary through issue 18's `policy edit | delete | export | import | set`,
//! `content delete | rewrite`, `index inspect | optimize`, `cache set` and `man`, and checks what
//! each one did to the repository or printed, not only its exit status.

use kopr_testkit::cli::{one_error_line, Kopr};

mod cmds_common;
use cmds_common::*;

fn policy_json(k: &Kopr, target: &str) -> serde_json::Value {
    let out = k.ok(&["policy", "export", target]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_object().unwrap().values().next().unwrap().clone()
}

#[test]
fn policy_export_import_delete_round_trip() {
    let e = Env::small_tree(BIN);
    e.k.ok(&["policy", "set", "alice@h1", "--keep-latest", "4"]);
    e.k.ok(&["policy", "set", "@h2", "--add-ignore", "*.tmp"]);
    let file = e.dir.path().join("policies.json");
    e.k.ok(&["policy", "export", "--to-file", file.to_str().unwrap()]);
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let keys: Vec<&String> = exported.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["(global)", "@h2", "alice@h1"], "{exported}");
    assert_eq!(exported["alice@h1"]["retention"]["keepLatest"], 4);
    assert_eq!(exported["@h2"]["files"]["ignore"][0], "*.tmp");
    // An existing file is not overwritten without --overwrite.
    let o =
        e.k.run(&["policy", "export", "--to-file", file.to_str().unwrap()]);
    assert!(one_error_line(&o).contains("file already exists and overwrite flag is not set"));

    // Delete one: it is gone from the export; --dry-run leaves it.
    e.k.ok(&["policy", "delete", "@h2", "--dry-run"]);
    assert!(e.k.ok(&["policy", "export"]).contains("\"@h2\""));
    e.k.ok(&["policy", "delete", "@h2"]);
    let now: serde_json::Value = serde_json::from_str(&e.k.ok(&["policy", "export"])).unwrap();
    assert!(now.get("@h2").is_none(), "{now}");
    assert!(now.get("alice@h1").is_some());
    let o = e.k.run(&["policy", "delete"]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: must pass either '--global' or a list of path targets"
    );

    // Import into a second repository: the same policies come out, with the fields kopr keeps
    // as JSON (scheduling, upload) intact.
    let mut doc = exported.clone();
    doc["@h2"]["scheduling"] =
        serde_json::json!({"intervalSeconds": 3600, "timeOfDay": [{"hour": 2, "min": 30}]});
    doc["@h2"]["upload"] = serde_json::json!({"maxParallelFileReads": 3});
    std::fs::write(&file, doc.to_string()).unwrap();
    let other = Kopr::new(BIN, &e.dir.path().join("cfg2/repository.config"));
    other.create_filesystem(&e.dir.path().join("repo2"));
    other.ok(&["policy", "import", "--from-file", file.to_str().unwrap()]);
    let back: serde_json::Value = serde_json::from_str(&other.ok(&["policy", "export"])).unwrap();
    assert_eq!(back, doc);

    // Unknown fields are refused unless allowed; nothing is imported then.
    let bad = serde_json::json!({"@h3": {"retention": {"keepLatests": 1}}});
    std::fs::write(&file, bad.to_string()).unwrap();
    let o = other.run(&["policy", "import", "--from-file", file.to_str().unwrap()]);
    let line = one_error_line(&o);
    assert!(
        line.contains("unknown field \"retention.keepLatests\""),
        "{line}"
    );
    assert!(!other.ok(&["policy", "export"]).contains("@h3"));
    other.ok(&[
        "policy",
        "import",
        "--from-file",
        file.to_str().unwrap(),
        "--allow-unknown-fields",
    ]);
    // As with Kopia, an allowed unknown field is dropped, the policy imported.
    assert!(other.ok(&["policy", "export"]).contains("\"@h3\""));

    // --delete-other-policies keeps only what was imported.
    std::fs::write(&file, r#"{"@h4":{"retention":{"keepDaily":2}}}"#).unwrap();
    other.ok(&[
        "policy",
        "import",
        "--from-file",
        file.to_str().unwrap(),
        "--delete-other-policies",
    ]);
    let left: serde_json::Value = serde_json::from_str(&other.ok(&["policy", "export"])).unwrap();
    let keys: Vec<&String> = left.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["@h4"], "{left}");
}

#[test]
fn policy_edit_runs_the_editor_and_stores_what_it_saved() {
    use std::io::Write as _;
    let e = Env::small_tree(BIN);
    e.k.ok(&["policy", "set", "@h1", "--keep-latest", "4"]);
    // An "editor" that replaces keepLatest 4 by 9 and adds an upload field.
    let script = e.dir.path().join("ed.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ngrep -q 'Editing policy for' \"$1\" || exit 3\nsed -i -e 's/\"keepLatest\": 4/\"keepLatest\": 9/' -e 's/^{$/{\"upload\":{\"maxParallelFileReads\":2},/' \"$1\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |answer: &str| {
        let mut c = e.k.cmd(&["policy", "edit", "@h1"]);
        c.env("EDITOR", &script)
            .env_remove("VISUAL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // Declining keeps the policy.
    let o = run("n\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Save updated policy? (y/N)"));
    assert_eq!(policy_json(&e.k, "@h1")["retention"]["keepLatest"], 4);
    // Accepting stores it.
    let o = run("y\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = policy_json(&e.k, "@h1");
    assert_eq!(p["retention"]["keepLatest"], 9);
    assert_eq!(p["upload"]["maxParallelFileReads"], 2);

    // An editor leaving invalid JSON: kopr asks to reopen; "n" aborts and nothing changes.
    std::fs::write(&script, "#!/bin/sh\necho '{\"bogus\": 1}' > \"$1\"\n").unwrap();
    let o = run("n\n");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field \"bogus\""));
    assert_eq!(policy_json(&e.k, "@h1")["retention"]["keepLatest"], 9);
}

#[test]
fn man_pages_are_generated_for_kopr_and_its_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let k = Kopr::new(BIN, &dir.path().join("none.config"));
    k.ok(&["man", "--dir", out.to_str().unwrap()]);
    let top = std::fs::read_to_string(out.join("kopr.1")).unwrap();
    assert!(top.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{}", &top[..80]);
    assert!(top.contains(".TH kopr 1"), "{top}");
    assert!(top.contains("kopr\\-snapshot(1)"), "{top}");
    let create = std::fs::read_to_string(out.join("kopr-snapshot-create.1")).unwrap();
    assert!(create.contains(".TH kopr-snapshot-create 1"), "{create}");
    assert!(create.contains("\\-\\-description"), "{create}");
    assert!(out.join("kopr-policy-export.1").exists());
    assert!(out.join("kopr-repository-connect-s3.1").exists());
}

/// `content ls -l` as (id → pack, deleted).
fn contents(k: &Kopr) -> std::collections::BTreeMap<String, (String, bool)> {
    k.ok(&["content", "ls", "-l", "--deleted"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // id, length, date, time, zone, pack, offset+length, compression…
            (
                f[0].to_string(),
                (
                    f[5].to_string(),
                    l.contains("(deleted)") || f.last() == Some(&"deleted"),
                ),
            )
        })
        .collect()
}

#[test]
fn content_delete_and_rewrite_and_index_inspect() {
    let e = Env::small_tree(BIN);
    e.snapshot();
    let before = contents(&e.k);
    // The content of a.txt: the one data content below 1 kB in a `p` pack.
    let id =
        e.k.ok(&["content", "ls", "-l"])
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(5)
                    .is_some_and(|p| p.starts_with('p'))
                    && l.split_whitespace().nth(1) == Some("11")
            })
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .expect("a.txt's content");

    // Dangerous: refused without the flag, and nothing changes.
    let o = e.k.run(&["content", "delete", &id]);
    assert_eq!(one_error_line(&o), "ERROR: dangerous commands are disabled");
    let o = e.k.run(&["content", "rewrite", &id]);
    assert_eq!(one_error_line(&o), "ERROR: dangerous commands are disabled");
    let o =
        e.k.run(&["--dangerous-commands=enabled", "content", "delete", "zz"]);
    assert!(
        one_error_line(&o).contains("error parsing content ID"),
        "{}",
        one_error_line(&o)
    );

    index_inspect_shows_it_created(&e.k, &id, &before[&id].0);

    // rewrite --dry-run changes nothing; a rewrite with --safety=none moves it to a new pack.
    e.k.ok(&[
        "--dangerous-commands=enabled",
        "content",
        "rewrite",
        &id,
        "--safety=none",
        "--dry-run",
    ]);
    assert_eq!(contents(&e.k)[&id].0, before[&id].0);
    let log = e.k.ok_stderr(&[
        "--dangerous-commands=enabled",
        "content",
        "rewrite",
        &id,
        "--safety=none",
    ]);
    assert!(log.contains(&format!("Rewriting content {id} (")), "{log}");
    let after = contents(&e.k);
    assert_ne!(after[&id].0, before[&id].0, "{after:?}");
    assert!(after[&id].0.starts_with('p'));
    // With full safety a content this young stays where it is.
    let log =
        e.k.ok_stderr(&["--dangerous-commands=enabled", "content", "rewrite", &id]);
    assert!(log.contains("too recent"), "{log}");
    assert_eq!(contents(&e.k)[&id].0, after[&id].0);

    delete_marks_it_deleted_in_the_index(&e.k, &id);
}

/// delete: the content is now deleted in the index (and inspect --all shows both states);
/// as in Kopia, it stays readable until maintenance drops it.
fn delete_marks_it_deleted_in_the_index(k: &Kopr, id: &str) {
    k.ok(&["--dangerous-commands=enabled", "content", "delete", id]);
    let listed = k.ok(&["content", "ls"]);
    assert!(!listed.lines().any(|l| l.starts_with(id)), "{listed}");
    let all = k.ok(&["index", "inspect", "--all", "--content-id", id]);
    let states: Vec<&str> = all
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert!(
        states.contains(&"created") && states.contains(&"deleted"),
        "{all}"
    );
    // As in Kopia, the deleted content stays readable until maintenance drops it.
    assert!(contents(k).contains_key(id));
}

/// index inspect: Kopia's line for content `id`, as created in `pack`; a named index blob
/// gives the same entries; no selection is one line.
fn index_inspect_shows_it_created(k: &Kopr, id: &str, pack: &str) {
    let lines = k.ok(&["index", "inspect", "--active", "--content-id", id]);
    let f: Vec<&str> = lines.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(f[3].starts_with("xn0_"), "{lines}");
    assert_eq!(f[4], id);
    assert_eq!(f[5], "created");
    assert_eq!(f[9], pack);
    let o = k.run(&["index", "inspect"]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: must pass either --all, --active or provide a list of blob IDs to inspect"
    );
    // A named blob gives the same entries.
    let named = k.ok(&["index", "inspect", f[3], "--content-id", id]);
    assert_eq!(named, lines);
}

#[test]
fn index_optimize_moves_the_deletion_watermark() {
    let e = Env::small_tree(BIN);
    e.snapshot();
    let watermarks = |k: &Kopr| k.ok(&["blob", "ls", "--prefix", "xw"]).lines().count();
    let o = e.k.run(&["index", "optimize"]);
    assert_eq!(one_error_line(&o), "ERROR: dangerous commands are disabled");
    e.k.ok(&["--dangerous-commands=enabled", "index", "optimize"]);
    assert_eq!(watermarks(&e.k), 0);
    e.k.ok(&[
        "--dangerous-commands=enabled",
        "index",
        "optimize",
        "--drop-deleted-older-than=1h",
    ]);
    let ids = e.k.ok(&["blob", "ls", "--prefix", "xw"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    let ts: i64 = ids.split_whitespace().next().unwrap()[2..].parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - 3600 - ts).abs() < 600, "{ids}");
    let o = e.k.run(&[
        "--dangerous-commands=enabled",
        "index",
        "optimize",
        "--drop-deleted-older-than=x",
    ]);
    assert!(one_error_line(&o).contains("invalid --drop-deleted-older-than"));
}

/// Files and bytes under `dir`.
fn du(dir: &std::path::Path) -> (u64, u64) {
    let mut out = (0, 0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                let (c, s) = du(&e.path());
                out.0 += c;
                out.1 += s;
            } else {
                out.0 += 1;
                out.1 += md.len();
            }
        }
    }
    out
}

#[test]
fn cache_set_limits_are_stored_and_honoured_by_prefetch() {
    let e = Env::small_tree(BIN);
    std::fs::write(
        e.src.join("big.bin"),
        kopr_testkit::random_bytes(9, 3_000_000),
    )
    .unwrap();
    let id = e.snapshot();
    let cache_dir = std::path::PathBuf::from(e.k.ok(&["cache", "info", "--path"]).trim());
    let contents = cache_dir.join("contents");

    // A filesystem repository has no content cache until a size is set.
    let o = e.k.run(&["cache", "prefetch", &format!("{id}/sub/b.bin")]);
    assert!(one_error_line(&o).contains("content cache of this connection is off"));
    let o = e.k.run(&["cache", "set"]);
    assert_eq!(one_error_line(&o), "ERROR: no changes");

    let log = e.k.ok_stderr(&[
        "cache",
        "set",
        "--content-cache-size-mb=1",
        "--metadata-cache-size-mb=7",
        "--max-list-cache-duration=30s",
    ]);
    assert!(log.contains("changing content cache size to 1 MB"), "{log}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e.k.cfg()).unwrap()).unwrap();
    assert_eq!(cfg["caching"]["maxCacheSize"], 1_000_000, "{cfg}");
    assert_eq!(cfg["caching"]["maxMetadataCacheSize"], 7_000_000, "{cfg}");
    assert_eq!(cfg["caching"]["maxListCacheDuration"], 30, "{cfg}");

    // Prefetching a 300 kB file fills the cache with its contents.
    let log =
        e.k.ok_stderr(&["cache", "prefetch", &format!("{id}/sub/b.bin")]);
    assert!(log.contains("prefetched 1 contents"), "{log}");
    let (files, bytes) = du(&contents);
    assert!(files >= 1 && bytes >= 300_000, "{files} {bytes}");
    // A 3 MB file does not fit: the cache stays within its 1 MB.
    let log =
        e.k.ok_stderr(&["cache", "prefetch", &format!("{id}/big.bin")]);
    assert!(log.contains("prefetched"), "{log}");
    let (_, bytes) = du(&contents);
    assert!(bytes <= 1_000_000, "{bytes}");
    // A restore still reads everything right through the cache.
    let into = e.dir.path().join("r");
    e.k.ok(&["snapshot", "restore", &id, into.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(into.join("big.bin")).unwrap(),
        std::fs::read(e.src.join("big.bin")).unwrap()
    );

    // Size 0 turns it off again.
    e.k.ok(&["cache", "set", "--content-cache-size-mb=0"]);
    let o = e.k.run(&["cache", "prefetch", &id]);
    assert!(one_error_line(&o).contains("content cache of this connection is off"));

    // cache sync fetches index blobs missing from the index cache.
    std::fs::remove_dir_all(cache_dir.join("indexes")).unwrap();
    let log = e.k.ok_stderr(&["cache", "sync"]);
    assert!(log.contains("Index cache synchronized"), "{log}");
    assert!(du(&cache_dir.join("indexes")).0 >= 1);
}

#[test]
fn policy_set_every_section_and_show_it_as_kopia_does() {
    let e = Env::small_tree(BIN);
    e.k.ok(&[
        "policy",
        "set",
        "--global",
        "--max-parallel-file-reads",
        "6",
    ]);
    let log = e.k.ok_stderr(&[
        "policy",
        "set",
        e.src(),
        "--snapshot-interval",
        "90m",
        "--snapshot-time",
        "14:05,2:30,2:30",
        "--max-parallel-file-reads",
        "2",
        "--parallel-upload-above-size-mib",
        "64",
        "--before-snapshot-root-action",
        "/bin/echo \"hi there\"",
        "--action-command-timeout",
        "30s",
        "--log-entry-cache-hit",
        "7",
        "--splitter",
        "FIXED-4M",
        "--metadata-compression",
        "zstd",
        "--max-file-size",
        "1000",
        "--one-file-system",
        "true",
        "--ignore-unknown-types",
        "false",
        "--enable-volume-shadow-copy",
        "when-available",
        "--ignore-identical-snapshots",
        "true",
    ]);
    assert!(
        log.contains(" - setting before-snapshot-root (essential) action command to \"/bin/echo\""),
        "{log}"
    );
    // Stored under Kopia's JSON names.
    let p = policy_json(&e.k, e.src());
    assert_eq!(p["scheduling"]["intervalSeconds"], 5400);
    assert_eq!(
        p["scheduling"]["timeOfDay"],
        serde_json::json!([{"hour": 2, "min": 30}, {"hour": 14, "min": 5}])
    );
    assert_eq!(p["upload"]["maxParallelFileReads"], 2);
    assert_eq!(p["upload"]["parallelUploadAboveSize"], 64 << 20);
    assert_eq!(
        p["actions"]["beforeSnapshotRoot"],
        serde_json::json!({"path": "/bin/echo", "args": ["hi there"], "timeout": 30, "mode": "essential"})
    );
    assert_eq!(p["logging"]["entries"]["cacheHit"], 7);
    assert_eq!(p["splitter"]["algorithm"], "FIXED-4M");
    assert_eq!(p["metadataCompression"]["compressorName"], "zstd");
    assert_eq!(p["files"]["maxFileSize"], 1000);
    assert_eq!(p["files"]["oneFileSystem"], true);
    assert_eq!(p["errorHandling"]["ignoreUnknownTypes"], false);
    assert_eq!(p["osSnapshots"]["volumeShadowCopy"]["enable"], 2);
    assert_eq!(p["retention"]["ignoreIdenticalSnapshots"], true);
    // Nothing Kopia would refuse.
    assert!(
        kopr_format::policy_fields::unknown_fields(&p).is_empty(),
        "{p}"
    );
    policy_show_prints_kopias_table(&e);
    manual_clears_the_schedule_and_inherit_removes(&e);
}

/// `policy show`: Kopia's table with where each value comes from, and `--json` with Kopia's defaults.
fn policy_show_prints_kopias_table(e: &Env) {
    // Kopia's table, values aligned, each with where it comes from.
    let shown = e.k.ok(&["policy", "show", e.src()]);
    for want in [
        "Scheduling policy:\n  Scheduled snapshots:\n    Snapshot interval:            1h30m0s   (defined for this target)\n  Run missed snapshots:              true   inherited from (global)\n  Snapshot times:                           (defined for this target)\n    2:30\n    14:05\n  Manual snapshot:                  false   inherited from (global)\n",
        "Uploads:\n  Max parallel snapshots (server/UI):   1   inherited from (global)\n  Max parallel file reads:              2   (defined for this target)\n  Parallel upload above size:     67.1 MB   (defined for this target)\n",
        "Run command before snapshot root:           (defined for this target)\n  Command:\n    /bin/echo hi there\n  Mode:                         essential\n  Timeout:                            30s\n",
        "  Entry cache hit:                      7   (defined for this target)\n",
        "  Algorithm override:            FIXED-4M   (defined for this target)\n",
        "  Ignore files above:                1 KB   (defined for this target)\n  Scan one filesystem only:          true   (defined for this target)\n",
        "  Volume Shadow Copy:      when-available   (defined for this target)\n",
        "  Ignore unknown types:             false   (defined for this target)\n",
    ] {
        assert!(shown.contains(want), "missing:\n{want}\nin:\n{shown}");
    }
    // The global policy's value shows as inherited from it on another path.
    let other = e.dir.path();
    let shown = e.k.ok(&["policy", "show", other.to_str().unwrap()]);
    let row = shown
        .lines()
        .find(|l| l.starts_with("  Max parallel file reads:"))
        .unwrap();
    // Values end in one column: here the repository-default splitter's row sets it.
    assert_eq!(
        row, "  Max parallel file reads:                 6   inherited from (global)",
        "{shown}"
    );
    assert!(
        shown.contains("  Algorithm override:   (repository default)   inherited from (global)\n"),
        "{shown}"
    );
    // --json: the effective policy with Kopia's defaults.
    let j: serde_json::Value =
        serde_json::from_str(&e.k.ok(&["policy", "show", other.to_str().unwrap(), "--json"]))
            .unwrap();
    assert_eq!(j["upload"]["maxParallelFileReads"], 6);
    assert_eq!(j["logging"]["directories"]["snapshotted"], 5);
    assert_eq!(j["metadataCompression"]["compressorName"], "zstd-fastest");
}

/// `--manual` clears the schedule, `inherit` removes a setting, bad schedules are refused; the estimate honours maxFileSize.
fn manual_clears_the_schedule_and_inherit_removes(e: &Env) {
    // Manual clears the schedule; 'inherit' removes a setting.
    e.k.ok(&[
        "policy",
        "set",
        e.src(),
        "--manual",
        "--max-parallel-file-reads",
        "inherit",
    ]);
    let p = policy_json(&e.k, e.src());
    assert_eq!(p["scheduling"], serde_json::json!({"manual": true}), "{p}");
    assert!(
        p.get("upload")
            .unwrap()
            .get("maxParallelFileReads")
            .is_none(),
        "{p}"
    );
    let o = e.k.run(&[
        "policy",
        "set",
        e.src(),
        "--manual",
        "--snapshot-interval",
        "1h",
    ]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: cannot set manual field when scheduling snapshots"
    );
    let o =
        e.k.run(&["policy", "set", e.src(), "--snapshot-time", "25:00"]);
    assert!(one_error_line(&o).contains("invalid hour"));

    // The estimate leaves out files above maxFileSize (1000 bytes): b.bin (300 kB).
    let est: serde_json::Value =
        serde_json::from_str(&e.k.ok(&["snapshot", "estimate", e.src(), "--json"])).unwrap();
    assert_eq!(est["totalFileCount"], 1, "{est}");
    assert_eq!(est["excludedFileCount"], 1, "{est}");
}
