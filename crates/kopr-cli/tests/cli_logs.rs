//! Logs: what kopr records in the repository (`_log` blobs, read back by `logs show`), in its
//! log files (`--log-file`, `--log-dir`, levels, rotation), and the global flags around them
//! (`--log-level`, `--[no-]persist-credentials`, `--use-keyring`), driven through the binary.

use std::path::PathBuf;

use kopr_testkit::cli::{blob_files, one_error_line, CliEnv, Kopr, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// The shared CLI test setup with one file.
fn env() -> CliEnv {
    CliEnv::new(BIN, &[("a.txt", b"hello logs\n")])
}

/// The `_log` blobs in the repository's directory.
fn log_blobs(e: &CliEnv) -> Vec<String> {
    blob_files(&e.repo)
        .into_keys()
        .filter(|b| b.starts_with("_log_"))
        .collect()
}

fn lines_json(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn writing_commands_record_their_log_in_the_repository_read_ones_do_not() {
    let e = env();
    assert!(log_blobs(&e).is_empty(), "create logs nothing");
    let src = e.src.to_str().unwrap();
    // The password given on the command line must not reach the log.
    e.k.ok(&["snapshot", "create", src, "--password", PASSWORD]);
    let after_create = log_blobs(&e);
    assert_eq!(after_create.len(), 1, "{after_create:?}");
    // _log_<YYYYmmddHHMMSS>_<4 hex>_<start>_<end>_<segment>_<hash>, as Kopia names them.
    let parts: Vec<&str> = after_create[0].split('_').collect();
    assert_eq!(parts.len(), 8, "{parts:?}");
    assert_eq!(parts[2].len(), 14);
    assert_eq!(parts[3].len(), 4);
    assert_eq!(parts[6], "1");

    // Read-only commands record nothing.
    for args in [
        &["snapshot", "ls"][..],
        &["content", "stats"],
        &["logs", "list"],
        &["maintenance", "info"],
        &["repository", "status"],
    ] {
        e.k.ok(args);
    }
    assert_eq!(log_blobs(&e), after_create);

    // What the create recorded: the command line (secret redacted) and the upload's event.
    let shown = e.k.ok(&["logs", "show"]);
    assert!(!shown.contains(PASSWORD), "{shown}");
    let entries = lines_json(&shown);
    assert_eq!(entries[0]["n"], "cli");
    assert_eq!(entries[0]["m"], "command line");
    let args = entries[0]["args"].as_str().unwrap();
    assert!(
        args.contains("snapshot create") && args.contains("--password ****"),
        "{args}"
    );
    let done = entries
        .iter()
        .find(|v| v["m"] == "uploading finished")
        .expect("upload event");
    assert_eq!(done["n"], "uploader");
    assert_eq!(done["files"], 1);
    for v in &entries {
        // Kopia's keys, in Kopia's order.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert!(v["t"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["span:client"].as_str().unwrap().len(), 16);
        assert_eq!(v["span:repo"].as_str().unwrap().len(), 8);
        assert!(keys.len() >= 5);
    }
    let raw_first = shown.lines().next().unwrap();
    assert!(raw_first.starts_with("{\"t\":\"") && raw_first.contains(",\"span:client\":"));

    // A read-only connection writes no log, even for a command that would.
    let ro = Kopr::new(BIN, &e.path("ro/repository.config"));
    ro.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        e.repo.to_str().unwrap(),
        "--readonly",
    ]);
    let refused = ro.run(&["snapshot", "create", src]);
    assert!(!refused.status.success());
    assert_eq!(log_blobs(&e), after_create);
    // --disable-repository-log (Kopia's hidden flag) and its variable turn it off.
    e.k.ok(&["snapshot", "create", src, "--disable-repository-log"]);
    let out =
        e.k.cmd(&["snapshot", "create", src])
            .env("KOPIA_DISABLE_REPOSITORY_LOG", "true")
            .output()
            .unwrap();
    assert!(out.status.success());
    assert_eq!(log_blobs(&e), after_create);
}

#[test]
fn logs_show_answers_what_last_nights_maintenance_did() {
    let e = env();
    let src = e.src.to_str().unwrap();
    let snap: serde_json::Value =
        serde_json::from_str(&e.k.ok(&["snapshot", "create", src, "--json"])).unwrap();
    e.k.ok(&[
        "snapshot",
        "delete",
        snap["id"].as_str().unwrap(),
        "--delete",
    ]);
    let console =
        e.k.ok_stderr(&["maintenance", "run", "--full", "--safety=none"]);
    let blobs_before_show = log_blobs(&e);
    // The latest session is the maintenance run: its task messages, as the console showed them.
    let shown = e.k.ok(&["logs", "show"]);
    let entries = lines_json(&shown);
    assert!(entries[0]["args"]
        .as_str()
        .unwrap()
        .contains("maintenance run --full --safety=none"));
    let messages: Vec<&str> = entries
        .iter()
        .filter(|v| v["n"] == "maintenance")
        .map(|v| v["m"].as_str().unwrap())
        .collect();
    for want in [
        "Running full maintenance...",
        "GC found 2 unused contents",
        "Deleted total",
        "Finished full maintenance.",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(want)),
            "{want:?} not in {messages:?}"
        );
        assert!(console.contains(want), "{console}");
    }
    // Each message names its task.
    let gc = entries
        .iter()
        .find(|v| {
            v["m"]
                .as_str()
                .unwrap()
                .starts_with("GC found 2 unused contents")
        })
        .unwrap();
    assert_eq!(gc["task"], "snapshot-gc");
    // Three writing commands, three sessions; `logs show` itself added none.
    assert_eq!(e.k.ok(&["logs", "list"]).lines().count(), 3);
    assert_eq!(log_blobs(&e), blobs_before_show);

    // logs cleanup keeps the newest by Kopia's rule and is not itself logged.
    let done = e.k.ok_stderr(&["logs", "cleanup", "--max-count=1"]);
    assert!(done.contains("Deleted 2 logs."), "{done}");
    assert_eq!(log_blobs(&e).len(), 1);
    assert_eq!(e.k.ok(&["logs", "show"]), shown);
}

#[test]
fn the_log_file_is_written_where_asked_at_the_level_asked_without_secrets() {
    let e = env();
    let src = e.src.to_str().unwrap();
    e.k.ok(&["snapshot", "create", src]);
    let info = e.path("out/info.log");
    let debug = e.path("out/debug.log");
    e.k.ok(&[
        "maintenance",
        "run",
        "--full",
        "--log-file",
        info.to_str().unwrap(),
        "--file-log-level=info",
        "--password",
        PASSWORD,
    ]);
    e.k.ok(&[
        "maintenance",
        "run",
        "--full",
        "--log-file",
        debug.to_str().unwrap(),
        "--password",
        PASSWORD,
    ]);
    let info = std::fs::read_to_string(&info).unwrap();
    let debug = std::fs::read_to_string(&debug).unwrap();
    for text in [&info, &debug] {
        assert!(
            text.contains(" INFO maintenance Running full maintenance..."),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");
        for l in text.lines() {
            // <RFC 3339 time> <LEVEL> <logger> <message>
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            assert!(f[0].ends_with('Z') && f[0].contains('T'), "{l}");
            assert!(["DEBUG", "INFO", "WARN", "ERROR"].contains(&f[1]), "{l}");
        }
    }
    assert!(!info.contains(" DEBUG "), "{info}");
    assert!(debug.contains(" DEBUG cli command line "), "{debug}");
    assert!(debug.contains("--password ****"), "{debug}");

    log_files_go_to_the_log_dir_or_the_cache(&e);
}

/// Without --log-file: <log-dir>/cli-logs/kopr-<time>-<pid>-<command>.0.log and latest.log;
/// the default is the per-user cache (XDG_CACHE_HOME), as Kopia's; KOPIA_LOG_DIR is read too;
/// --disable-file-logging writes none.
fn log_files_go_to_the_log_dir_or_the_cache(e: &CliEnv) {
    let dir = e.path("logdir");
    e.k.ok(&["snapshot", "ls", "--log-dir", dir.to_str().unwrap()]);
    let names: Vec<String> = std::fs::read_dir(dir.join("cli-logs"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let file = names
        .iter()
        .find(|n| n.starts_with("kopr-"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(file.ends_with("-snapshot-ls.0.log"), "{file}");
    assert!(names.contains(&"latest.log".to_string()));
    // The default is the per-user cache (XDG_CACHE_HOME), as Kopia's.
    let cache = e.path("xdg");
    let out =
        e.k.cmd(&["snapshot", "ls"])
            .env_remove("KOPR_LOG_DIR")
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap();
    assert!(out.status.success());
    assert!(cache.join("kopr/cli-logs/latest.log").exists());
    // KOPIA_LOG_DIR is read too; --disable-file-logging writes none.
    let kdir = e.path("kopia-dir");
    let out =
        e.k.cmd(&["snapshot", "ls"])
            .env_remove("KOPR_LOG_DIR")
            .env("KOPIA_LOG_DIR", &kdir)
            .output()
            .unwrap();
    assert!(out.status.success());
    assert!(kdir.join("cli-logs/latest.log").exists());
    let none = e.path("none");
    e.k.ok(&[
        "snapshot",
        "ls",
        "--log-dir",
        none.to_str().unwrap(),
        "--disable-file-logging",
    ]);
    assert!(!none.exists());
}

#[test]
fn log_files_rotate_by_segment_size_and_old_ones_are_swept() {
    let e = env();
    let src = e.src.to_str().unwrap();
    e.k.ok(&["snapshot", "create", src]);
    let dir = e.path("rot");
    let d = dir.to_str().unwrap();
    e.k.ok(&[
        "maintenance",
        "run",
        "--full",
        "--log-dir",
        d,
        "--max-log-file-segment-size=200",
    ]);
    let logs = dir.join("cli-logs");
    let mut segments: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kopr-"))
        .collect();
    segments.sort();
    assert!(segments.len() > 3, "{segments:?}");
    for s in &segments {
        assert!(s.contains("-maintenance-run."), "{s}");
        // A segment is closed before a line would take it past the size (a longer line
        // still gets a segment of its own).
        let text = std::fs::read_to_string(logs.join(s)).unwrap();
        assert!(
            text.len() <= 200 || text.lines().count() == 1,
            "{s}: {text}"
        );
    }
    assert!(segments.iter().any(|s| s.ends_with(".0.log")));
    assert!(segments.iter().any(|s| s.ends_with(".1.log")));
    // The next run sweeps down to Kopia's --log-dir-max-files before adding its own file.
    e.k.ok(&["snapshot", "ls", "--log-dir", d, "--log-dir-max-files=2"]);
    let left = std::fs::read_dir(&logs)
        .unwrap()
        .filter(|d| {
            d.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("kopr-")
        })
        .count();
    assert_eq!(left, 3, "two kept, one new");
}

#[test]
fn console_level_and_kopias_environment_variables() {
    let e = env();
    let src = e.src.to_str().unwrap();
    e.k.ok(&["snapshot", "create", src]);
    let quiet =
        e.k.ok_stderr(&["maintenance", "run", "--full", "--log-level=warning"]);
    assert!(!quiet.contains("Running full maintenance"), "{quiet}");
    let out =
        e.k.cmd(&["maintenance", "run", "--full"])
            .env("KOPIA_LOG_LEVEL", "error")
            .output()
            .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Running full maintenance"));
    let loud =
        e.k.ok_stderr(&["maintenance", "run", "--full", "--log-level=debug"]);
    assert!(loud.contains("Running full maintenance"), "{loud}");
    assert!(loud.contains("DEBUG "), "{loud}");
    let bad = e.k.run(&["snapshot", "ls", "--log-level=loud"]);
    assert!(!bad.status.success());
}

#[test]
fn credentials_are_persisted_unless_asked_not_to_and_no_keyring_is_claimed() {
    let e = env();
    let cfg = e.k.cfg().to_path_buf();
    let pw_file = PathBuf::from(format!("{}.kopia-password", cfg.display()));
    assert!(pw_file.exists(), "persisted by default");
    let repo = e.repo.to_str().unwrap();
    let other = Kopr::new(BIN, &e.path("np/repository.config"));
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo,
        "--no-persist-credentials",
    ]);
    let np_pw = e.path("np/repository.config.kopia-password");
    assert!(!np_pw.exists());
    assert!(!e.path("np/repository.config.kopr-key").exists());
    // Without a password from flags or environment, the command cannot open the repository.
    let out = other
        .cmd(&["snapshot", "ls"])
        .env_remove("KOPR_PASSWORD")
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("password required"));
    // KOPIA_PERSIST_CREDENTIALS_ON_CONNECT=false does the same.
    let third = Kopr::new(BIN, &e.path("env/repository.config"));
    let out = third
        .cmd(&["repository", "connect", "filesystem", "--path", repo])
        .env("KOPIA_PERSIST_CREDENTIALS_ON_CONNECT", "false")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!e.path("env/repository.config.kopia-password").exists());
    // --use-keyring: refused with a clear line, nothing changes.
    let out = e.k.run(&["snapshot", "ls", "--use-keyring"]);
    assert!(one_error_line(&out).contains("--use-keyring is not supported"));
    assert!(pw_file.exists());
}

#[test]
fn no_progress_turns_the_bar_off_on_a_terminal() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        kopr_testkit::env::skip(
            "no_progress_turns_the_bar_off_on_a_terminal",
            "no `script` to make a pseudo-terminal",
        );
        return;
    }
    let e = env();
    std::fs::write(e.src.join("big"), kopr_testkit::random_bytes(4, 3_000_000)).unwrap();
    let run = |extra: &str| {
        let cmd = format!("{BIN} snapshot create {} {extra}", e.src.to_str().unwrap());
        let out =
            e.k.cmd(&[])
                .get_envs()
                .fold(std::process::Command::new("script"), |mut c, (k, v)| {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                    c
                })
                .args(["-qec", &cmd, "/dev/null"])
                .env("TERM", "xterm")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with_bar = run("");
    // The bar is drawn and erased with terminal escapes; the summary line has none.
    assert!(
        with_bar.contains('\x1b'),
        "the bar is drawn by default: {with_bar:?}"
    );
    let without = run("--no-progress");
    assert!(
        without.contains("Created snapshot with root k"),
        "{without:?}"
    );
    assert!(
        !without.contains('\x1b'),
        "--no-progress draws no bar: {without:?}"
    );
}

#[test]
fn a_failed_command_records_its_error_in_the_repository_log() {
    let e = env();
    let other = Kopr::new(BIN, &e.path("other/repository.config"));
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        e.repo.to_str().unwrap(),
        "--override-hostname=elsewhere",
    ]);
    let out = other.run(&["maintenance", "run", "--full"]);
    let line = one_error_line(&out);
    assert!(
        line.contains("maintenance must be run by designated user"),
        "{line}"
    );
    let shown = e.k.ok(&["logs", "show"]);
    let entries = lines_json(&shown);
    assert!(entries[0]["args"]
        .as_str()
        .unwrap()
        .contains("maintenance run --full"));
    let last = entries.last().unwrap();
    assert_eq!(last["n"], "cli");
    assert!(
        last["m"]
            .as_str()
            .unwrap()
            .contains("maintenance must be run by designated user"),
        "{shown}"
    );
}
