//! One repository life cycle, the same code against every backend: a filesystem repository,
//! S3 (s3s-fs), S3 with object lock (moto), Azure (Azurite), GCS (fake-gcs-server) and WebDAV
//! (`rclone serve webdav`), rclone itself and SFTP (OpenSSH's sshd). Create → snapshot → change → snapshot → restore → delete a snapshot → full maintenance with `--safety=none` → verify → restore.
//! On the locking server the same run also checks that `--retention-mode/--retention-period`
//! lock the format blobs and every pack and index a snapshot writes, and that full
//! maintenance with `--extend-object-locks` moves the retain-until dates forward.

#![cfg(unix)]

use kopr_testkit::assert_same_tree;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use kopr_blob::azure::{AzureOptions, AzureStorage, ENDPOINT_ENV};
use kopr_blob::gcs::{GcsOptions, GcsStorage, EMULATOR_ENV};
use kopr_blob::s3::{S3Options, S3Storage};
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::LOCKING_PREFIXES;
use kopr_testkit::cli::Kopr;
use kopr_testkit::random_bytes;
use kopr_testkit::s3::{LockingS3Server, S3Server, ACCESS_KEY, SECRET_KEY};
use kopr_testkit::servers::{Server, AZURITE_ACCOUNT, AZURITE_KEY, WEBDAV_PASSWORD, WEBDAV_USER};

/// A repository connection in a temporary directory, whatever the backend.
struct Case {
    tmp: tempfile::TempDir,
    kopr: Kopr,
    env: Vec<(String, String)>,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let kopr = Kopr::new(
            env!("CARGO_BIN_EXE_kopr"),
            &tmp.path().join("cfg/repository.config"),
        );
        Case {
            tmp,
            kopr,
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The connection's config file, parsed.
    fn stored_config(&self) -> serde_json::Value {
        let cfg = std::fs::read_to_string(self.path("cfg/repository.config")).unwrap();
        serde_json::from_str(&cfg).unwrap()
    }

    /// Runs, requires success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).0
    }

    /// Runs, requires success, returns stdout and stderr (where logs go) together.
    fn ok_log(&self, args: &[&str]) -> String {
        let (out, err) = self.ok_both(args);
        out + &err
    }

    /// The pack blobs (`p` prefix) as `blob ls` lists them: id and length.
    fn packs(&self) -> std::collections::BTreeMap<String, u64> {
        kopr_testkit::cli::blob_lengths(&self.ok(&["blob", "ls", "--prefix=p", "--json"]))
    }

    fn ok_both(&self, args: &[&str]) -> (String, String) {
        let out = self
            .kopr
            .cmd(args)
            .env("XDG_CACHE_HOME", self.path("cache"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kopr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn s3_create_args(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    [
        "repository",
        "create",
        "s3",
        &format!("--bucket={bucket}"),
        &format!("--prefix={prefix}"),
        &format!("--access-key={ACCESS_KEY}"),
        &format!("--secret-access-key={SECRET_KEY}"),
        &format!("--endpoint={endpoint}"),
        "--disable-tls",
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn s3_storage(endpoint: &str, bucket: &str, prefix: &str) -> S3Storage {
    S3Storage::new(S3Options {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: endpoint.into(),
        do_not_use_tls: true,
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        ..Default::default()
    })
    .unwrap()
}

fn make_tree(root: &Path, seed: u64) {
    for i in 0..10u64 {
        let dir = root.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}")),
            random_bytes(seed + i, 150_000 + 997 * i as usize),
        )
        .unwrap();
    }
    std::fs::write(root.join("empty"), b"").unwrap();
}

fn snapshot(case: &Case, src: &Path) -> String {
    let out = case.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// The suite body every backend runs: `create` makes and connects the repository. Returns
/// with the repository holding the second snapshot only, after a full maintenance cycle.
fn life_cycle(case: &Case, create: &[String]) {
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    case.ok(&create);
    let src = case.path("src");
    make_tree(&src, 1);
    let first = snapshot(case, &src);
    let first_packs = case.packs();
    assert!(!first_packs.is_empty());
    let first_copy = case.path("first-copy");
    case.ok(&["snapshot", "restore", &first, first_copy.to_str().unwrap()]);
    assert_same_tree(&src, &first_copy);

    // Change the tree: one file rewritten, one removed, one added. The two files that go are
    // the first snapshot's only unique data (incompressible, so as large in its packs).
    let unique = std::fs::metadata(src.join("d1/f1")).unwrap().len()
        + std::fs::metadata(src.join("d2/f2")).unwrap().len();
    std::fs::write(src.join("d1/f1"), random_bytes(77, 123_456)).unwrap();
    std::fs::remove_file(src.join("d2/f2")).unwrap();
    std::fs::write(src.join("new"), random_bytes(78, 50_000)).unwrap();
    let second = snapshot(case, &src);
    assert_ne!(first, second);
    let listed = case.ok(&["snapshot", "ls"]);
    assert!(listed.contains("files:11"), "{listed}");

    let live: u64 = kopr_testkit::tree::bytes_under(&src);

    case.ok(&["snapshot", "delete", &first, "--delete"]);
    let before = case.packs();
    let log = case.ok_log(&["maintenance", "run", "--full", "--safety=none"]);
    let after = case.packs();
    // The deleted snapshot's unique data left the storage: some of its packs are gone, and
    // the packs hold at least its unique bytes less than before; the live data stayed.
    let gone: Vec<&String> = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .collect();
    assert!(
        first_packs.keys().any(|id| !after.contains_key(id)),
        "no pack of the deleted snapshot was deleted: {first_packs:?} -> {after:?}\n{log}"
    );
    let (size_before, size_after): (u64, u64) = (before.values().sum(), after.values().sum());
    assert!(
        size_after + unique <= size_before,
        "packs {size_before} -> {size_after} bytes, the deleted data is {unique}\n{log}"
    );
    assert!(size_after >= live, "packs {size_after} < live data {live}");
    let deleted: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("Deleted total "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no deletion count in:\n{log}"));
    assert!(
        deleted >= gone.len(),
        "{deleted} deleted, {} packs gone\n{log}",
        gone.len()
    );
    case.ok(&["snapshot", "verify"]);
    let listed = case.ok(&["snapshot", "ls"]);
    assert!(!listed.contains(&first), "{listed}");
    let restored = case.path("second-copy");
    case.ok(&["snapshot", "restore", &second, restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
}

#[test]
fn life_cycle_on_filesystem() {
    let case = Case::new();
    let repo = case.path("repo");
    let create: Vec<String> = [
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    life_cycle(&case, &create);
    assert!(repo.join("kopia.repository.f").is_file() || repo.join("kopia.repository").is_file());
}

#[test]
fn life_cycle_on_s3() {
    let Some(srv) = S3Server::start() else {
        return;
    };
    srv.create_bucket("suite");
    let case = Case::new();
    life_cycle(&case, &s3_create_args(&srv.endpoint(), "suite", "repo/"));
    let st = s3_storage(&srv.endpoint(), "suite", "repo/");
    assert!(!st.list_all("p").unwrap().is_empty());
    assert!(st.get_metadata("kopia.repository").is_ok());
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn life_cycle_on_azure() {
    let Some(srv) = Server::azurite() else {
        return;
    };
    let opts = AzureOptions {
        container: "suite".into(),
        prefix: "repo/".into(),
        storage_account: AZURITE_ACCOUNT.into(),
        storage_key: AZURITE_KEY.into(),
        ..Default::default()
    };
    let st = AzureStorage::with_endpoint(opts, Some(&srv.url())).unwrap();
    st.create_container().unwrap();
    let mut case = Case::new();
    case.env.push((ENDPOINT_ENV.into(), srv.url()));
    let key = format!("--storage-key={AZURITE_KEY}");
    life_cycle(
        &case,
        &strings(&[
            "repository",
            "create",
            "azure",
            "--container=suite",
            "--prefix=repo/",
            "--storage-account",
            AZURITE_ACCOUNT,
            &key,
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ]),
    );
    // Kopia's object names: `prefix + blob id`, no sharding.
    assert!(!st.list_all("p").unwrap().is_empty());
    assert!(st.get_metadata("kopia.repository").is_ok());
    // The stored connection is Kopia's `azure` config; status masks the key.
    let status = case.ok(&["repository", "status"]);
    assert!(
        status.contains("\"storageAccount\": \"devstoreaccount1\""),
        "{status}"
    );
    assert!(!status.contains(AZURITE_KEY), "{status}");
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["type"], "azure", "{cfg}");
    assert_eq!(cfg["storage"]["config"]["container"], "suite");
    assert_eq!(cfg["storage"]["config"]["prefix"], "repo/");
    // Reconnecting with the environment variables Kopia reads works too.
    case.ok(&["repository", "disconnect"]);
    let out = case
        .kopr
        .cmd(&[
            "repository",
            "connect",
            "azure",
            "--container=suite",
            "--prefix=repo/",
        ])
        .env(ENDPOINT_ENV, srv.url())
        .env("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZURITE_KEY)
        .env("XDG_CACHE_HOME", case.path("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(case.ok(&["snapshot", "ls"]).contains("files:11"));
}

#[test]
fn life_cycle_on_webdav() {
    let Some(srv) = Server::webdav() else {
        return;
    };
    let case = Case::new();
    let url = format!("--url={}/kopia", srv.url());
    life_cycle(
        &case,
        &strings(&[
            "repository",
            "create",
            "webdav",
            &url,
            "--webdav-username",
            WEBDAV_USER,
            "--webdav-password",
            WEBDAV_PASSWORD,
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ]),
    );
    let status = case.ok(&["repository", "status"]);
    assert!(!status.contains(WEBDAV_PASSWORD), "{status}");
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["type"], "webdav", "{cfg}");
    assert_eq!(cfg["storage"]["config"]["username"], WEBDAV_USER);
    // Kopia's sharded filesystem layout: the served directory opens as a filesystem repository.
    let dir = srv.data().join("kopia");
    assert!(dir.join("kopia.repository.f").is_file());
    let other = Case::new();
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        dir.to_str().unwrap(),
    ]);
    assert!(other.ok(&["snapshot", "ls"]).contains("files:11"));
}

/// The retain-until date of every blob under a locking prefix, each checked for `mode`.
fn locks(st: &S3Storage, mode: &str) -> Vec<(String, DateTime<Utc>)> {
    let mut out = Vec::new();
    for prefix in LOCKING_PREFIXES {
        for b in st.list_all(prefix).unwrap() {
            let (m, until) = st
                .retention_of(&b.id)
                .unwrap()
                .unwrap_or_else(|| panic!("{} is not locked", b.id));
            assert_eq!(m, mode, "{}", b.id);
            out.push((b.id, until));
        }
    }
    out
}

fn locked_life_cycle(mode: &str) {
    let Some(srv) = LockingS3Server::start() else {
        return;
    };
    let bucket = format!("locked-{}", mode.to_lowercase());
    srv.create_locking_bucket(&bucket);
    let case = Case::new();
    let mut create = s3_create_args(&srv.endpoint(), &bucket, "kopia/");
    create.extend([
        format!("--retention-mode={mode}"),
        "--retention-period=48h".into(),
    ]);
    let st = s3_storage(&srv.endpoint(), &bucket, "kopia/");
    let started = Utc::now();
    life_cycle(&case, &create);
    let period = chrono::Duration::hours(48);

    // The format blobs, and every pack and index blob the snapshots and maintenance wrote,
    // carry the lock: mode as configured, until the period after their put.
    let before = locks(&st, mode);
    let ids: Vec<&str> = before.iter().map(|(id, _)| id.as_str()).collect();
    for must in ["kopia.repository", "kopia.blobcfg"] {
        assert!(ids.contains(&must), "{must} missing from {ids:?}");
    }
    for prefix in ["p", "q", "xn"] {
        assert!(ids.iter().any(|id| id.starts_with(prefix)), "{ids:?}");
    }
    for (id, until) in &before {
        assert!(
            *until >= started + period - chrono::Duration::seconds(2)
                && *until <= Utc::now() + period + chrono::Duration::seconds(2),
            "{id} locked until {until}"
        );
    }
    // Blobs outside the locking prefixes (logs, session markers) are not locked.
    for b in st.list_all("").unwrap() {
        if !LOCKING_PREFIXES.iter().any(|p| b.id.starts_with(p)) {
            assert_eq!(st.retention_of(&b.id).unwrap(), None, "{} locked", b.id);
        }
    }

    // Full maintenance with --extend-object-locks moves every retain-until date forward.
    case.ok(&["maintenance", "set", "--extend-object-locks=true"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let log = case.ok_log(&["maintenance", "run", "--full", "--safety=none"]);
    assert!(log.contains("Extended retention time of "), "{log}");
    let after: std::collections::BTreeMap<String, DateTime<Utc>> =
        locks(&st, mode).into_iter().collect();
    for (id, until) in &before {
        let Some(now_until) = after.get(id) else {
            continue; // deleted by this cycle (a delete marker over the locked version)
        };
        assert!(
            now_until > until,
            "{id}: retain-until {until} not extended ({now_until})"
        );
    }
    assert!(after.keys().any(|id| id.starts_with('p')));
    case.ok(&["snapshot", "verify"]);
}

#[test]
fn life_cycle_on_s3_with_compliance_lock() {
    locked_life_cycle("COMPLIANCE");
}

#[test]
fn life_cycle_on_s3_with_governance_lock() {
    locked_life_cycle("GOVERNANCE");
}

#[test]
fn life_cycle_on_gcs() {
    let Some(srv) = Server::fake_gcs() else {
        return;
    };
    let st = GcsStorage::with_endpoint(
        GcsOptions {
            bucket: "suite".into(),
            prefix: "repo/".into(),
            ..Default::default()
        },
        &srv.url(),
        false,
    )
    .unwrap();
    st.create_bucket().unwrap();
    let mut case = Case::new();
    // As Google's clients: the emulator's address, no authentication.
    case.env.push((EMULATOR_ENV.into(), srv.url()));
    life_cycle(
        &case,
        &strings(&[
            "repository",
            "create",
            "gcs",
            "--bucket=suite",
            "--prefix=repo/",
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ]),
    );
    assert!(!st.list_all("p").unwrap().is_empty());
    assert!(st.get_metadata("kopia.repository").is_ok());
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["type"], "gcs", "{cfg}");
    assert_eq!(cfg["storage"]["config"]["bucket"], "suite");
    assert_eq!(cfg["storage"]["config"]["prefix"], "repo/");
}

#[test]
fn life_cycle_on_rclone() {
    let Some(rclone) = rclone_or_skip("life_cycle_on_rclone") else {
        return;
    };
    let case = Case::new();
    // rclone's `local` remote: a directory, which then holds Kopia's filesystem layout.
    let remote = case.path("remote");
    life_cycle(
        &case,
        &strings(&[
            "repository",
            "create",
            "rclone",
            "--remote-path",
            remote.to_str().unwrap(),
            "--rclone-exe",
            &rclone,
            "--rclone-args=--config=/dev/null",
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ]),
    );
    assert!(remote.join("kopia.repository.f").is_file());
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["type"], "rclone", "{cfg}");
    assert_eq!(
        cfg["storage"]["config"]["remotePath"],
        remote.to_str().unwrap()
    );
    assert_eq!(
        cfg["storage"]["config"]["rcloneArgs"],
        serde_json::json!(["--config=/dev/null"])
    );
    // the remote directory opens as a filesystem repository too
    let other = Case::new();
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        remote.to_str().unwrap(),
    ]);
    assert!(other.ok(&["snapshot", "ls"]).contains("files:11"));
    // no rclone server is left running after the commands
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines()
            .any(|l| l.contains("serve webdav") && l.contains(remote.to_str().unwrap())),
        "{ps}"
    );
}

#[test]
fn life_cycle_on_sftp() {
    let Some(srv) = Server::sshd() else {
        return;
    };
    let case = Case::new();
    let dir = srv.data().join("repo");
    let known = case.path("known_hosts");
    std::fs::write(&known, srv.known_hosts()).unwrap();
    let path = format!("--path={}", dir.display());
    let port = format!("--port={}", srv.port());
    let user = format!("--username={}", srv.ssh_user());
    // the key and known hosts embedded in the connection, as Kopia's --embed-credentials
    life_cycle(
        &case,
        &strings(&[
            "repository",
            "create",
            "sftp",
            &path,
            "--host=127.0.0.1",
            &port,
            &user,
            "--keyfile",
            srv.ssh_key().to_str().unwrap(),
            "--known-hosts",
            known.to_str().unwrap(),
            "--embed-credentials",
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ]),
    );
    embedded_credentials_are_stored_and_masked(&case, &srv, &dir);
    // Kopia's sharded filesystem layout: the directory opens as a filesystem repository.
    assert!(dir.join("kopia.repository.f").is_file());
    let other = Case::new();
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        dir.to_str().unwrap(),
    ]);
    assert!(other.ok(&["snapshot", "ls"]).contains("files:11"));
    // and it connects again with the key and known hosts as files
    case.ok(&["repository", "disconnect"]);
    case.ok(&[
        "repository",
        "connect",
        "sftp",
        &path,
        "--host=127.0.0.1",
        &port,
        &user,
        "--keyfile",
        srv.ssh_key().to_str().unwrap(),
        "--known-hosts",
        known.to_str().unwrap(),
    ]);
    assert!(case.ok(&["snapshot", "ls"]).contains("files:11"));
    connects_through_openssh(&case, &srv, &path, &user, &known);
}

/// Kopia's stored config of an SFTP connection with embedded credentials; status masks the key.
fn embedded_credentials_are_stored_and_masked(case: &Case, srv: &Server, dir: &Path) {
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["type"], "sftp", "{cfg}");
    let c = &cfg["storage"]["config"];
    assert_eq!(c["host"], "127.0.0.1");
    assert_eq!(c["port"], srv.port());
    assert_eq!(c["path"], dir.to_str().unwrap());
    assert!(
        c["keyData"].as_str().unwrap().contains("PRIVATE KEY"),
        "{c}"
    );
    assert_eq!(c["knownHostsData"], srv.known_hosts());
    assert!(c.get("keyfile").is_none(), "{c}");
    let status = case.ok(&["repository", "status"]);
    assert!(!status.contains("PRIVATE KEY"), "{status}");
}

/// The repository connects through OpenSSH's client, as Kopia's --external.
fn connects_through_openssh(case: &Case, srv: &Server, path: &str, user: &str, known: &Path) {
    case.ok(&["repository", "disconnect"]);
    let ssh_args = format!(
        "--ssh-args=-p {} -i {} -o UserKnownHostsFile={} -o BatchMode=yes",
        srv.port(),
        srv.ssh_key().display(),
        known.display()
    );
    case.ok(&[
        "repository",
        "connect",
        "sftp",
        path,
        "--host=127.0.0.1",
        user,
        "--external",
        &ssh_args,
    ]);
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["config"]["externalSSH"], true, "{cfg}");
    assert!(case.ok(&["snapshot", "ls"]).contains("files:11"));
}

/// The rclone binary (`KOPR_RCLONE`, else `rclone`), or `None` after a visible skip of `test`
/// when it does not run.
fn rclone_or_skip(test: &str) -> Option<String> {
    let rclone = std::env::var("KOPR_RCLONE").unwrap_or_else(|_| "rclone".into());
    if !std::process::Command::new(&rclone)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        kopr_testkit::env::skip(
            test,
            "rclone not found: set KOPR_RCLONE or install Debian's rclone",
        );
        return None;
    }
    Some(rclone)
}

/// `--embed-rclone-config`: the remote is defined only in the embedded config (an rclone
/// `alias` of a local directory), which the connection stores (masked by `status`) and rclone
/// reads from a private temporary file on every run.
#[test]
fn rclone_with_an_embedded_config() {
    let Some(rclone) = rclone_or_skip("rclone_with_an_embedded_config") else {
        return;
    };
    let case = Case::new();
    let target = case.path("target");
    std::fs::create_dir_all(&target).unwrap();
    let conf = case.path("rclone.conf");
    let text = format!(
        "[kopr-embedded]\ntype = alias\nremote = {}\n",
        target.display()
    );
    std::fs::write(&conf, &text).unwrap();
    let exe = format!("--rclone-exe={rclone}");
    let embed = format!("--embed-rclone-config={}", conf.display());
    case.ok(&[
        "repository",
        "create",
        "rclone",
        "--remote-path=kopr-embedded:repo",
        &exe,
        &embed,
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]);
    // the config file is no longer needed: the connection holds it
    std::fs::remove_file(&conf).unwrap();
    let src = case.path("src");
    make_tree(&src, 5);
    let id = snapshot(&case, &src);
    let out = case.path("restored");
    case.ok(&["snapshot", "restore", &id, out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    assert!(target.join("repo/kopia.repository.f").is_file());
    let cfg = case.stored_config();
    assert_eq!(cfg["storage"]["config"]["embeddedConfig"], text.as_str());
    let status = case.ok(&["repository", "status"]);
    assert!(!status.contains("type = alias"), "{status}");
}
