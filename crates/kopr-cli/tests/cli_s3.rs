//! `kopr repository create|connect s3` against a real S3 server (s3s-fs) on loopback: the
//! field guide's connect command, snapshot/ls/restore byte for byte, one-line errors, and a
//! server killed in the middle of a snapshot.

#![cfg(unix)]

use kopr_testkit::assert_same_tree;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kopr_testkit::random_bytes;
use kopr_testkit::s3::{S3Server, TlsProxy, ACCESS_KEY, SECRET_KEY, TEST_CA_PEM};

const PASSWORD: &str = "static-passw0rd";

struct Env {
    tmp: tempfile::TempDir,
    srv: S3Server,
}

impl Env {
    fn new(bucket: &str) -> Option<Env> {
        let srv = S3Server::start()?;
        srv.create_bucket(bucket);
        Some(Env {
            tmp: tempfile::tempdir().unwrap(),
            srv,
        })
    }

    fn cfg(&self) -> PathBuf {
        self.tmp.path().join("cfg/repository.config")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kopr"));
        c.args(args)
            .env("KOPR_CONFIG_PATH", self.cfg())
            .env("XDG_CACHE_HOME", self.tmp.path().join("cache"))
            .env_remove("KOPR_PASSWORD")
            .env_remove("KOPIA_PASSWORD")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}\nserver log: {}",
            String::from_utf8_lossy(&out.stderr),
            self.srv.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one-line error.
    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "kopr {args:?} succeeded");
        let e = String::from_utf8(out.stderr).unwrap();
        assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
        assert!(e.starts_with("ERROR: "), "{e}");
        e
    }

    /// `repository <verb> s3` flags, as the field guide writes them, plus `extra`.
    fn s3_args(&self, verb: &str, bucket: &str, prefix: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "repository".into(),
            verb.into(),
            "s3".into(),
            format!("--bucket={bucket}"),
            format!("--prefix={prefix}"),
            format!("--access-key={ACCESS_KEY}"),
            format!("--secret-access-key={SECRET_KEY}"),
            format!("--endpoint={}", self.srv.endpoint()),
            "--disable-tls".into(),
            format!("--password={PASSWORD}"),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

/// The pack blobs (`p...`) stored under `prefix` in the server's bucket directory, read from
/// the server's own files (not through kopr): id and size.
fn stored_packs(
    srv: &S3Server,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_dir(srv.data().join(bucket).join(prefix))
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with('p') && !name.contains('.') && e.path().is_file())
                .then(|| (name, e.metadata().unwrap().len()))
        })
        .collect()
}

/// The `Count:` of `content stats`.
fn content_count(env: &Env) -> u64 {
    let stats = env.ok(&["content", "stats"]);
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("Count:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {stats}"))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn make_tree(root: &Path, seed: u64, files: u64, size: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}")),
            random_bytes(seed + i, size + i as usize),
        )
        .unwrap();
    }
}

fn snapshot_id(json_out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json_out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn field_guide_connect_snapshot_and_restore() {
    let Some(env) = Env::new("velero-bucket") else {
        return;
    };
    let prefix = "velero/kopia/ns1/";
    env.ok(&strs(&env.s3_args("create", "velero-bucket", prefix, &[])));
    // Kopia's layout: `prefix + blob id`.
    assert!(env
        .srv
        .data()
        .join("velero-bucket/velero/kopia/ns1/kopia.repository")
        .is_file());
    let src = env.tmp.path().join("src");
    make_tree(&src, 1, 12, 300_000);
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(99, 6 << 20)).unwrap();
    let id = snapshot_id(&env.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]));
    let ls = env.ok(&["snapshot", "ls"]);
    assert!(ls.contains("files:14"), "{ls}");

    reconnect_as_the_field_guide_and_restore(&env, prefix, &src, &id);
    connect_with_credentials_from_the_environment(&env, prefix);
    // The second snapshot lacks big.bin: its 6 MiB are the first snapshot's only unique data.
    // It adds new.bin, in a pack of its own: with two short packs, maintenance rewrites the
    // live contents of the first one (one short pack alone is left as it is, as Kopia does).
    let big = std::fs::metadata(src.join("big.bin")).unwrap().len();
    std::fs::remove_file(src.join("big.bin")).unwrap();
    std::fs::write(src.join("new.bin"), random_bytes(98, 1 << 20)).unwrap();
    let again = snapshot_id(&env.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]));
    assert_ne!(again, id);

    maintenance_collects_the_first_snapshot(&env, prefix, &src, &id, &again, big);
    a_kopia_shaped_config_works_as_is(&env, prefix);
}

/// Reconnect exactly as the field guide does, run its basic commands, then restore.
fn reconnect_as_the_field_guide_and_restore(env: &Env, prefix: &str, src: &Path, id: &str) {
    env.ok(&["repository", "disconnect"]);
    env.ok(&strs(&env.s3_args("connect", "velero-bucket", prefix, &[])));
    let status = env.ok(&["repository", "status"]);
    assert!(status.contains("Storage type:        s3"), "{status}");
    assert!(!status.contains(SECRET_KEY), "secret shown: {status}");
    let json = env.ok(&["repository", "status", "--json"]);
    assert!(!json.contains(SECRET_KEY), "secret shown: {json}");
    // The field guide's basic commands.
    assert!(content_count(env) >= 14, "one content per file at least");
    let all = env.ok(&["snapshot", "ls", "--all", "--storage-stats"]);
    assert!(all.contains("files:14"), "{all}");
    let blobs = env.ok(&["blob", "ls"]);
    assert!(
        blobs.contains("kopia.repository") && blobs.contains("xn0_"),
        "{blobs}"
    );
    let dst = env.tmp.path().join("restored");
    env.ok(&["snapshot", "restore", id, dst.to_str().unwrap()]);
    assert_same_tree(src, &dst);
    let cfg = std::fs::read_to_string(env.cfg()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(v["storage"]["type"], "s3");
    assert_eq!(v["storage"]["config"]["bucket"], "velero-bucket");
    assert_eq!(v["storage"]["config"]["prefix"], prefix);
    assert_eq!(v["storage"]["config"]["accessKeyID"], ACCESS_KEY);
    assert_eq!(v["storage"]["config"]["doNotUseTLS"], true);
}

/// Credentials from the environment, endpoint with a scheme.
fn connect_with_credentials_from_the_environment(env: &Env, prefix: &str) {
    env.ok(&["repository", "disconnect"]);
    let out = env
        .cmd(&[
            "repository",
            "connect",
            "s3",
            "--bucket",
            "velero-bucket",
            "--prefix",
            prefix,
            "--endpoint",
            &format!("http://{}", env.srv.endpoint()),
            "--password",
            PASSWORD,
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Maintenance through S3: the first snapshot deleted and collected at once with
/// --safety=none. The bucket itself shows it: packs shrink by at least big.bin's `big` bytes
/// and still hold at least the live files' bytes.
fn maintenance_collects_the_first_snapshot(
    env: &Env,
    prefix: &str,
    src: &Path,
    id: &str,
    again: &str,
    big: u64,
) {
    env.ok(&["snapshot", "delete", id, "--delete"]);
    let before = stored_packs(&env.srv, "velero-bucket", prefix);
    let out = env
        .cmd(&["maintenance", "run", "--full", "--safety=none"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let after = stored_packs(&env.srv, "velero-bucket", prefix);
    let (size_before, size_after): (u64, u64) = (before.values().sum(), after.values().sum());
    assert!(
        before.keys().any(|p| !after.contains_key(p)),
        "no pack deleted: {before:?} -> {after:?}\n{log}"
    );
    assert!(
        size_after + big <= size_before,
        "packs {size_before} -> {size_after} bytes, big.bin is {big}\n{log}"
    );
    assert!(size_after >= 12 * 300_000, "live data lost: {size_after}");
    assert!(env.ok(&["maintenance", "info"]).contains("snapshot-gc:"));
    env.ok(&["snapshot", "verify"]);
    let dst2 = env.tmp.path().join("restored-after-maintenance");
    env.ok(&["snapshot", "restore", again, dst2.to_str().unwrap()]);
    assert_same_tree(src, &dst2);
}

/// A connection config shaped like Kopia's, with fields kopr does not use, works as is.
fn a_kopia_shaped_config_works_as_is(env: &Env, prefix: &str) {
    let kopia_cfg = env.tmp.path().join("kopia/repository.config");
    std::fs::create_dir_all(kopia_cfg.parent().unwrap()).unwrap();
    let v = serde_json::json!({
        "storage": {"type": "s3", "config": {
            "bucket": "velero-bucket", "prefix": prefix, "endpoint": env.srv.endpoint(),
            "doNotUseTLS": true, "accessKeyID": ACCESS_KEY, "secretAccessKey": SECRET_KEY,
            "sessionToken": "", "roleARN": "", "roleSessionName": "", "duration": "0s",
            "roleEndpoint": "", "roleRegion": "", "maxDownloadSpeedBytesPerSecond": 0}},
        "caching": {"cacheDirectory": env.tmp.path().join("kopia-cache"),
            "maxCacheSize": 5242880000u64, "maxMetadataCacheSize": 5242880000u64,
            "maxListCacheDuration": 30},
        "hostname": "h", "username": "u", "description": "Repository in S3: x",
        "enableActions": false, "formatBlobCacheDuration": 900000000000u64
    });
    std::fs::write(&kopia_cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let out = env
        .cmd(&[
            "--config-file",
            kopia_cfg.to_str().unwrap(),
            "snapshot",
            "ls",
            "--all",
            "--password",
            PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("files:14"));
}

#[test]
fn s3_errors_are_clear_one_liners() {
    let Some(env) = Env::new("errbucket") else {
        return;
    };
    env.ok(&strs(&env.s3_args("create", "errbucket", "repo/", &[])));
    env.ok(&["repository", "disconnect"]);

    let mut a = env.s3_args("connect", "errbucket", "repo/", &[]);
    a[6] = "--secret-access-key=wrong".into();
    let e = env.err(&strs(&a));
    assert!(e.contains("S3 rejected the credentials"), "{e}");

    let e = env.err(&strs(&env.s3_args("connect", "nobucket", "repo/", &[])));
    assert!(e.contains("bucket \"nobucket\" does not exist"), "{e}");

    let e = env.err(&strs(&env.s3_args("connect", "errbucket", "", &[])));
    assert!(e.contains("no repository found at s3://errbucket/"), "{e}");
    let e = env.err(&strs(&env.s3_args("connect", "errbucket", "repo", &[])));
    assert!(
        e.contains("no repository found at s3://errbucket/repo") && e.contains("--prefix=repo/"),
        "{e}"
    );

    let e = env.err(&strs(&env.s3_args("create", "errbucket", "repo/", &[])));
    assert!(e.contains("already initialized"), "{e}");

    let mut a = env.s3_args("connect", "errbucket", "repo/", &[]);
    a.retain(|s| s != "--disable-tls");
    let e = env.err(&strs(&a));
    assert!(
        e.contains("TLS")
            && e.contains("--disable-tls-verification")
            && e.contains("--root-ca-pem-path"),
        "{e}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut a = env.s3_args("connect", "errbucket", "repo/", &[]);
    a[7] = format!("--endpoint=127.0.0.1:{port}");
    let t = Instant::now();
    let e = env.err(&strs(&a));
    assert!(e.contains("cannot reach S3 endpoint"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(15));

    let e = env.err(&[
        "repository",
        "connect",
        "s3",
        "--bucket=errbucket",
        "--password=x",
    ]);
    assert!(e.contains("--access-key"), "{e}");
    assert!(!env.cfg().exists(), "a failed connect wrote a config");
}

#[test]
fn server_killed_mid_snapshot() {
    let Some(mut env) = Env::new("crash") else {
        return;
    };
    env.ok(&strs(&env.s3_args("create", "crash", "r/", &[])));
    let first = env.tmp.path().join("first");
    make_tree(&first, 500, 8, 100_000);
    let first_id = snapshot_id(&env.ok(&["snapshot", "create", first.to_str().unwrap(), "--json"]));

    let src = env.tmp.path().join("second");
    make_tree(&src, 1000, 64, 1 << 20);
    let second_id = snapshot_while_the_server_dies(&mut env, &src);

    // The repository opens, and what was saved restores.
    env.ok(&["snapshot", "ls"]);
    let dst = env.tmp.path().join("restored-first");
    env.ok(&["snapshot", "restore", &first_id, dst.to_str().unwrap()]);
    assert_same_tree(&first, &dst);
    let second_id = match second_id {
        Some(id) => id,
        None => snapshot_id(&env.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"])),
    };
    let dst = env.tmp.path().join("restored-second");
    env.ok(&["snapshot", "restore", &second_id, dst.to_str().unwrap()]);
    assert_same_tree(&src, &dst);
    env.ok(&["snapshot", "verify"]);

    a_server_down_at_start_fails_promptly(&mut env, &first);
}

/// Pack objects in directory `d` of the S3 server's data.
fn pack_count(d: &Path) -> usize {
    std::fs::read_dir(d)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with('p'))
        })
        .count()
}

/// Snapshots `src` while the server is killed once the first pack is written, and restarted;
/// the snapshot's id if it succeeded, else its failure was a clear S3 error.
fn snapshot_while_the_server_dies(env: &mut Env, src: &Path) -> Option<String> {
    let objects = env.srv.data().join("crash/r");
    let before = pack_count(&objects);
    let child = env
        .cmd(&["snapshot", "create", src.to_str().unwrap(), "--json"])
        .env("KOPR_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server as soon as the snapshot has written its first pack.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pack_count(&objects) == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_mid_snapshot = pack_count(&objects) > before;
    env.srv.stop();
    eprintln!("server killed (mid-snapshot: {killed_mid_snapshot})");
    std::thread::sleep(Duration::from_millis(1500));
    env.srv.restart();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "snapshot during the outage: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if out.status.success() {
        Some(snapshot_id(&String::from_utf8(out.stdout).unwrap()))
    } else {
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(
            e.contains("ERROR: ") && e.contains("S3"),
            "unclear failure: {e}"
        );
        None
    }
}

/// A server that is down when a command starts: a prompt, clear failure.
fn a_server_down_at_start_fails_promptly(env: &mut Env, first: &Path) {
    env.srv.stop();
    let t = Instant::now();
    let mut c = env.cmd(&["snapshot", "create", first.to_str().unwrap()]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.starts_with("ERROR: ")
            && e.contains("cannot reach S3 endpoint")
            && e.trim_end().lines().count() == 1,
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    env.srv.restart();
    assert!(env.ok(&["snapshot", "ls"]).contains("files:"));
}

#[test]
fn tls_flags_through_the_cli() {
    let Some(env) = Env::new("tlsbucket") else {
        return;
    };
    let proxy = TlsProxy::start(env.srv.port());
    let ca = env.tmp.path().join("ca.pem");
    std::fs::write(&ca, TEST_CA_PEM).unwrap();
    let tls_args = |verb: &str, extra: &[&str]| {
        let mut a = env.s3_args(verb, "tlsbucket", "tls/", extra);
        a.retain(|s| s != "--disable-tls");
        a[7] = format!("--endpoint={}", proxy.endpoint());
        a
    };
    let e = env.err(&strs(&tls_args("create", &[])));
    assert!(
        e.contains("UnknownIssuer") && e.contains("--root-ca-pem-path"),
        "{e}"
    );
    env.ok(&strs(&tls_args(
        "create",
        &[&format!("--root-ca-pem-path={}", ca.display())],
    )));
    let src = env.tmp.path().join("src");
    make_tree(&src, 7, 3, 1000);
    env.ok(&["snapshot", "create", src.to_str().unwrap()]);
    env.ok(&["repository", "disconnect"]);
    env.ok(&strs(&tls_args("connect", &["--disable-tls-verification"])));
    let ls = env.ok(&["snapshot", "ls"]);
    assert!(ls.contains("files:3"), "{ls}");
}

/// Runs `kopr` with `args` against nothing but `env`, killing it if it outlives `limit`.
fn run_bounded(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (Output, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_kopr"));
    c.args(args)
        .env("KOPR_CONFIG_PATH", tmp.path().join("repository.config"))
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env_remove("KOPR_PASSWORD")
        .env_remove("KOPIA_PASSWORD")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kopr {args:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), start.elapsed())
}

#[test]
fn an_endpoint_that_never_answers_is_a_one_line_error_in_bounded_time() {
    // accepts every connection and holds it open without a byte of answer
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let ep = format!("--endpoint={endpoint}");
    let args = [
        "repository",
        "connect",
        "s3",
        "--bucket=hangbucket",
        "--access-key=AKIAEXAMPLE",
        "--secret-access-key=secret",
        &ep,
        "--disable-tls",
        "--password=x",
    ];
    let (out, took) = run_bounded(
        &args,
        &[("KOPR_S3_TIMEOUT_SECS", "1")],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.starts_with("ERROR: ")
            && e.contains("did not answer in time")
            && e.contains(&endpoint)
            && e.trim_end().lines().count() == 1,
        "{e}"
    );
    // three 1 s attempts and short pauses
    assert!(took < Duration::from_secs(15), "{took:?}");

    // a limit that is not a number is refused up front, also in one line
    let (out, _) = run_bounded(
        &args,
        &[("KOPR_S3_TIMEOUT_SECS", "soon")],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains("invalid KOPR_S3_TIMEOUT_SECS") && e.trim_end().lines().count() == 1,
        "{e}"
    );
}

/// Two clusters' repositories in buckets of the same name on two S3 servers, connected
/// through config files of the same relative name in two directories, keep apart caches: a
/// cache named by the config path alone was shared, and a copy of the other repository's
/// format blob there (the storage names, `s3://velero/`, are the same) made the first one fail
/// to open ("cannot be decrypted") until the copy aged out.
#[test]
fn same_bucket_names_on_two_servers_and_one_config_name_open_each_their_repository() {
    let Some(one) = Env::new("velero") else {
        return;
    };
    let Some(two) = Env::new("velero") else {
        return;
    };
    let (a, b) = (one.tmp.path().join("cwd"), two.tmp.path().join("cwd"));
    // One user: one home, one cache.
    let cache_home = one.tmp.path().join("cache");
    let run = |env: &Env, cwd: &Path, args: &[String]| {
        std::fs::create_dir_all(cwd).unwrap();
        let out = env
            .cmd(&strs(args))
            .current_dir(cwd)
            .env_remove("KOPR_CONFIG_PATH")
            .env("XDG_CACHE_HOME", &cache_home)
            .env("KOPR_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let what = format_args!("kopr {args:?} in {}", cwd.display());
        kopr_testkit::cli::succeeded(&out, what);
    };
    let cfg = |rest: &[&str]| -> Vec<String> {
        ["--config-file", "repository.config"]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    for (env, cwd) in [(&one, &a), (&two, &b)] {
        let mut args = cfg(&[]);
        args.extend(env.s3_args("create", "velero", "", &[]));
        run(env, cwd, &args);
    }
    for _ in 0..2 {
        for (env, cwd) in [(&one, &a), (&two, &b)] {
            run(env, cwd, &cfg(&["snapshot", "ls"]));
        }
    }
}
