//! The cached format blobs from the command line: `formatBlobCacheDuration` set by `connect` and
//! `set-client` and shown by `repository status`; `change-password` leaves no copy of the old
//! format; `cache clear` accepts the copies; and on an S3 server, a second command sends no
//! request for `kopia.repository` or `kopia.blobcfg` (seen through a recording relay).

use std::path::PathBuf;
use std::sync::Mutex;

use kopr_testkit::cli::Kopr;
use kopr_testkit::relay::recording_relay;

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

struct Env {
    tmp: tempfile::TempDir,
    kopr: Kopr,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let kopr = Kopr::new(BIN, &tmp.path().join("cfg/repository.config"));
        Env { tmp, kopr }
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn create(&self, extra: &[&str]) {
        let cache = self.cache();
        let mut args = vec!["--cache-directory", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.kopr
            .create_filesystem_with(&self.tmp.path().join("repo"), &args);
    }

    /// The connection config's `formatBlobCacheDuration` (absent: `null`).
    fn setting(&self) -> serde_json::Value {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.kopr.cfg()).unwrap()).unwrap();
        cfg["formatBlobCacheDuration"].clone()
    }

    /// `repository status --json`'s `clientOptions.formatBlobCacheDuration`.
    fn status_setting(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.kopr.ok(&["repository", "status", "--json"])).unwrap();
        v["clientOptions"]["formatBlobCacheDuration"].clone()
    }

    fn status_line(&self) -> String {
        self.kopr
            .ok(&["repository", "status"])
            .lines()
            .find(|l| l.starts_with("Format blob cache:"))
            .unwrap()
            .to_string()
    }
}

#[test]
fn connect_writes_kopias_default_and_set_client_changes_it() {
    let e = Env::new();
    e.create(&[]);
    assert_eq!(e.setting(), 900_000_000_000i64);
    assert_eq!(e.status_setting(), 900_000_000_000i64);
    assert_eq!(e.status_line(), "Format blob cache:   15m0s");
    // The copies are in the cache directory, named as Kopia names them.
    assert!(e.cache().join("kopia.repository").is_file());
    assert!(e.cache().join("kopia.blobcfg").is_file());

    e.kopr.ok(&[
        "repository",
        "set-client",
        "--repository-format-cache-duration=5m",
    ]);
    assert_eq!(e.setting(), 300_000_000_000i64);
    assert_eq!(e.status_setting(), 300_000_000_000i64);
    assert_eq!(e.status_line(), "Format blob cache:   5m0s");

    e.kopr.ok(&[
        "repository",
        "set-client",
        "--disable-repository-format-cache",
    ]);
    assert_eq!(e.setting(), -1);
    assert_eq!(e.status_setting(), -1);
    assert_eq!(e.status_line(), "Format blob cache:   disabled");

    let out = e.kopr.run(&[
        "repository",
        "set-client",
        "--repository-format-cache-duration=5x",
    ]);
    let err = kopr_testkit::cli::one_error_line(&out);
    assert!(err.contains("repository-format-cache-duration"), "{err}");
}

#[test]
fn connect_takes_the_hidden_flags() {
    let e = Env::new();
    e.create(&["--disable-repository-format-cache"]);
    assert_eq!(e.setting(), -1);
    e.kopr.ok(&["repository", "disconnect"]);
    let repo = e.tmp.path().join("repo");
    e.kopr.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--repository-format-cache-duration=90s",
    ]);
    assert_eq!(e.setting(), 90_000_000_000i64);
}

#[test]
fn change_password_leaves_no_copy_of_the_old_format() {
    let e = Env::new();
    e.create(&[]);
    e.kopr.ok(&["snapshot", "ls", "--all"]);
    e.kopr
        .ok(&["repository", "change-password", "--new-password=new-pw"]);
    // The old password no longer opens it (a stale copy would still open with it for 15
    // minutes), the new one does.
    let out = e.kopr.run(&["snapshot", "ls", "--all"]);
    let err = kopr_testkit::cli::one_error_line(&out);
    assert!(err.contains("invalid repository password"), "{err}");
    let new = e.kopr.clone().with_password("new-pw");
    new.ok(&["snapshot", "ls", "--all"]);
}

#[test]
fn set_parameters_is_seen_by_the_next_command() {
    let e = Env::new();
    e.create(&[]);
    e.kopr
        .ok(&["repository", "set-parameters", "--max-pack-size-mb=30"]);
    let v: serde_json::Value =
        serde_json::from_str(&e.kopr.ok(&["repository", "status", "--json"])).unwrap();
    assert_eq!(v["contentFormat"]["maxPackSize"], 30 << 20);
}

#[test]
fn cache_clear_accepts_the_copies_and_a_readonly_connection_uses_them() {
    let e = Env::new();
    e.create(&["--readonly"]);
    e.kopr.ok(&["snapshot", "ls", "--all"]);
    assert!(e.cache().join("kopia.repository").is_file());
    e.kopr.ok(&["cache", "clear"]);
    assert!(!e.cache().join("kopia.repository").exists());
    e.kopr.ok(&["repository", "status"]);
    assert!(e.cache().join("kopia.repository").is_file());
}

/// The request lines (`GET /bucket/kopia.repository HTTP/1.1`) recorded so far; the record
/// is emptied.
fn requests(seen: &Mutex<Vec<u8>>) -> Vec<String> {
    let mut all = seen.lock().unwrap();
    let text = String::from_utf8_lossy(&all).into_owned();
    all.clear();
    text.lines()
        .filter(|l| l.ends_with(" HTTP/1.1"))
        .map(str::to_string)
        .collect()
}

fn format_requests(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("/kopia.repository ") || l.contains("/kopia.blobcfg "))
        .collect()
}

#[cfg(unix)]
#[test]
fn a_second_command_on_s3_sends_no_request_for_the_format_blobs() {
    use kopr_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
    let Some(srv) = S3Server::start() else {
        return; // the testkit printed SKIPPED (and fails under CI)
    };
    srv.create_bucket("bucket");
    let (relay, seen) = recording_relay(srv.port());
    let e = Env::new();
    let cache = e.cache();
    e.kopr.ok(&[
        "repository",
        "create",
        "s3",
        "--bucket=bucket",
        &format!("--endpoint=127.0.0.1:{relay}"),
        "--disable-tls",
        &format!("--access-key={ACCESS_KEY}"),
        &format!("--secret-access-key={SECRET_KEY}"),
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
        "--cache-directory",
        cache.to_str().unwrap(),
    ]);
    e.kopr.ok(&["snapshot", "ls", "--all"]);
    requests(&seen);
    e.kopr.ok(&["snapshot", "ls", "--all"]);
    let all = requests(&seen);
    assert!(!all.is_empty(), "the relay saw no request");
    assert_eq!(format_requests(&all), Vec::<&String>::new());

    // The control: with the cache disabled, the same command asks for both.
    e.kopr.ok(&[
        "repository",
        "set-client",
        "--disable-repository-format-cache",
    ]);
    requests(&seen);
    e.kopr.ok(&["snapshot", "ls", "--all"]);
    let all = requests(&seen);
    let format = format_requests(&all);
    assert_eq!(format.len(), 2, "{all:#?}");
    assert!(format.iter().all(|l| l.starts_with("GET ")), "{format:?}");
}
