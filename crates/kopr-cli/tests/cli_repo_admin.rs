//! `repository set-parameters | set-client | throttle | validate-provider | upgrade`, driven
//! through the binary, each checked by what it did to the repository or the connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::REPOSITORY_BLOB_ID;
use kopr_repo::format_params::RawFormat;
use kopr_testkit::cli::{one_error_line, Kopr, PASSWORD};
use kopr_testkit::fixtures::Fixture;
use kopr_testkit::tree::{self, Compare};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

fn new_repo() -> (tempfile::TempDir, PathBuf, Kopr) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let k = Kopr::new(BIN, &dir.path().join("cfg/repository.config"));
    k.create_filesystem(&repo);
    (dir, repo, k)
}

fn storage(repo: &Path) -> Arc<dyn BlobStorage> {
    Arc::new(FilesystemStorage::open(repo).unwrap())
}

fn raw(repo: &Path, password: &str) -> RawFormat {
    RawFormat::open(storage(repo).as_ref(), password).unwrap()
}

fn format_bytes(repo: &Path) -> Vec<u8> {
    storage(repo).get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn set_parameters_writes_kopias_parameters_and_refuses_invalid_ones() {
    let (dir, repo, k) = new_repo();
    let log = k.ok_stderr(&[
        "repository",
        "set-parameters",
        "--max-pack-size-mb=40",
        "--epoch-advance-on-count=50",
        "--epoch-min-duration=2h",
        "--epoch-checkpoint-frequency=9",
    ]);
    assert!(log.contains(" - setting maximum pack size to "), "{log}");
    assert!(
        log.contains(" - setting epoch advance on count to 50."),
        "{log}"
    );
    assert!(log.contains("NOTE: Repository parameters updated"), "{log}");
    let f = raw(&repo, PASSWORD);
    assert_eq!(f.config.max_pack_size, 40 << 20);
    assert_eq!(f.config.epoch_parameters.advance_on_count_threshold, 50);
    assert_eq!(
        f.config.epoch_parameters.min_epoch_duration_nanos,
        2 * 3_600_000_000_000
    );
    assert_eq!(f.config.epoch_parameters.full_checkpoint_frequency, 9);
    assert!(k
        .ok(&["repository", "status"])
        .contains("Max pack length:     41.9 MB"));

    invalid_parameters_are_refused_and_nothing_written(&k, &repo);

    // The repository still works with the new parameters: a snapshot round trip.
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), kopr_testkit::random_bytes(3, 100_000)).unwrap();
    let out = k.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = dir.path().join("restored");
    k.ok(&["snapshot", "restore", &id, dest.to_str().unwrap()]);
    tree::assert_same_tree(&src, &dest);
    // A connection made earlier with another format blob sees the change too (a writer that
    // opened the old one is refused by the compare before write).
    let f2 = raw(&repo, PASSWORD);
    assert_eq!(f2.config.max_pack_size, 40 << 20);
}

/// Refused, and nothing written: Kopia's limits, index downgrade, retention without period;
/// no flags changes nothing.
fn invalid_parameters_are_refused_and_nothing_written(k: &Kopr, repo: &Path) {
    let before = format_bytes(repo);
    for (args, want) in [
        (&["--max-pack-size-mb=5"][..], "max pack size too small"),
        (&["--max-pack-size-mb=200"], "max pack size too big"),
        (
            &["--index-version=1"],
            "index format version can only be upgraded",
        ),
        (
            &["--epoch-min-duration=5m"],
            "minimum epoch duration too low",
        ),
        (
            &["--retention-mode=GOVERNANCE"],
            "both retention mode and period must be provided",
        ),
    ] {
        let mut a = vec!["repository", "set-parameters"];
        a.extend_from_slice(args);
        let out = k.run(&a);
        assert!(
            one_error_line(&out).contains(want),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(format_bytes(repo), before, "{args:?} wrote the format blob");
    }
    assert!(k
        .ok_stderr(&["repository", "set-parameters"])
        .contains("no changes"));
    assert_eq!(format_bytes(repo), before);
}

#[test]
fn set_parameters_upgrade_moves_a_format_1_repository_to_the_epoch_manager() {
    let Some(fx) = Fixture::load("format-v1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    let before = raw(&repo, &fx.expected.password);
    assert!(!before.config.epoch_parameters.enabled);
    let log = k.ok_stderr(&["repository", "set-parameters", "--upgrade"]);
    assert!(
        log.contains("migrating current indexes to epoch format"),
        "{log}"
    );
    let after = raw(&repo, &fx.expected.password);
    assert!(after.config.epoch_parameters.enabled);
    assert_eq!(after.config.index_version, 2);
    assert_eq!(after.config.version, 2);
    let st = storage(&repo);
    assert!(!st.list_all("xn0_").unwrap().is_empty());
    assert!(st
        .get_metadata(kopr_repo::format_params::LEGACY_INDEX_POISON_BLOB_ID)
        .is_ok());
    for s in fx.live_snapshots() {
        assert_restores(&k, dir.path(), s);
    }
}

fn assert_restores(k: &Kopr, dir: &Path, s: &kopr_testkit::fixtures::ExpectedSnapshot) {
    let dest = dir.join(format!("restore-{}", s.id));
    k.ok(&["snapshot", "restore", &s.id, dest.to_str().unwrap()]);
    let d = tree::differences(&s.nodes(), &tree::scan(&dest), Compare::all());
    assert!(d.is_empty(), "snapshot {} differs:\n{}", s.id, d.join("\n"));
}

#[test]
fn set_client_changes_the_connection_only() {
    let (dir, repo, k) = new_repo();
    let format_before = format_bytes(&repo);
    let cfg_path = k.cfg().to_path_buf();
    let log = k.ok_stderr(&[
        "repository",
        "set-client",
        "--read-only",
        "--hostname=h2",
        "--username=u2",
        "--description=my repo",
    ]);
    assert!(
        log.contains("Setting repository to read-only mode."),
        "{log}"
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(cfg["readonly"], true);
    assert_eq!(cfg["hostname"], "h2");
    assert_eq!(cfg["username"], "u2");
    assert_eq!(cfg["description"], "my repo");
    assert_eq!(format_bytes(&repo), format_before);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"x").unwrap();
    let refused = k.run(&["snapshot", "create", src.to_str().unwrap()]);
    assert!(one_error_line(&refused).contains("read-only"));
    // Nothing to change is an error, as in Kopia.
    let same = k.run(&["repository", "set-client", "--read-only"]);
    assert!(stderr(&same).contains("Repository is already in read-only mode."));
    assert!(one_error_line(&same).contains("no changes"));
    k.ok(&["repository", "set-client", "--read-write"]);
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    // Snapshots are recorded under the new identity.
    let ls = k.ok(&["snapshot", "ls", "--all"]);
    assert!(ls.starts_with("u2@h2:"), "{ls}");
    let none = k.run(&["repository", "set-client"]);
    assert!(one_error_line(&none).contains("no changes"));
}

#[test]
fn throttle_limits_are_stored_shown_and_applied() {
    let (dir, _repo, k) = new_repo();
    let get = k.ok(&["repository", "throttle", "get"]);
    assert!(
        get.contains("Max Download Speed:            (unlimited)"),
        "{get}"
    );
    let log = k.ok_stderr(&[
        "repository",
        "throttle",
        "set",
        "--upload-bytes-per-second=1000000",
        "--read-requests-per-second=500",
        "--concurrent-reads=1",
        "--concurrent-writes=2",
    ]);
    assert!(log.contains("Setting max upload speed to 1 MB/s."), "{log}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(k.cfg()).unwrap()).unwrap();
    let t = &cfg["throttlingLimits"];
    assert_eq!(t["maxUploadSpeedBytesPerSecond"], 1_000_000.0);
    assert_eq!(t["readsPerSecond"], 500.0);
    assert_eq!(t["concurrentReads"], 1);
    assert_eq!(t["concurrentWrites"], 2);
    assert!(t.get("maxDownloadSpeedBytesPerSecond").is_none());
    let get = k.ok(&["repository", "throttle", "get"]);
    assert!(
        get.contains("Max Upload Speed:              1 MB/s"),
        "{get}"
    );
    assert!(get.contains("Max Read Requests Per Second:  500"), "{get}");
    assert!(get.contains("Max Concurrent Reads:          1"), "{get}");
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["repository", "throttle", "get", "--json"])).unwrap();
    assert_eq!(json["concurrentWrites"], 2);
    // Commands run under the limits and still do their work.
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), kopr_testkit::random_bytes(9, 50_000)).unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(k.ok(&["snapshot", "ls"]).lines().count(), 2);
    // A bad value changes nothing; `unlimited` removes a limit, all of them remove the entry.
    let bad = k.run(&["repository", "throttle", "set", "--concurrent-reads=many"]);
    assert!(one_error_line(&bad).contains("can't parse the concurrent reads"));
    for flag in [
        "--upload-bytes-per-second=unlimited",
        "--read-requests-per-second=-",
        "--concurrent-reads=unlimited",
        "--concurrent-writes=unlimited",
    ] {
        k.ok(&["repository", "throttle", "set", flag]);
    }
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(k.cfg()).unwrap()).unwrap();
    assert!(cfg.get("throttlingLimits").is_none(), "{cfg}");
}

#[test]
fn validate_provider_passes_on_a_good_storage_and_fails_when_listing_lags() {
    let (_dir, repo, k) = new_repo();
    let blobs_before: Vec<String> = storage(&repo)
        .list_all("")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .filter(|id| !id.starts_with("_log"))
        .collect();
    let ok = k.ok_stderr(&[
        "repository",
        "validate-provider",
        "--concurrency-test-duration=0s",
        "--num-storage-connections=3",
    ]);
    for want in [
        "Opening 2 equivalent storage connections...",
        "Validating list responses...",
        "Validating partial reads...",
        "Validating deletion...",
        "All good.",
    ] {
        assert!(ok.contains(want), "{want}: {ok}");
    }
    let left = |repo: &Path| -> Vec<String> {
        storage(repo)
            .list_all("z")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    };
    assert!(left(&repo).is_empty(), "temporary blobs left behind");
    // A storage whose listings lag behind its writes (eventual consistency) is caught. The
    // hook makes each connection lag on its own writes, so one connection says it surely.
    let out = k
        .cmd(&[
            "repository",
            "validate-provider",
            "--concurrency-test-duration=0s",
            "--num-storage-connections=1",
        ])
        .env("KOPR_TEST_LIST_LAG", "2")
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("provider validation error: invalid uber blob count: unexpected number of blobs returned for prefix z"),
        "{line}"
    );
    assert!(line.ends_with(": 0, wanted 1"), "{line}");
    assert!(!stderr(&out).contains("All good."));
    assert!(left(&repo).is_empty(), "temporary blobs left behind");
    // The repository's own blobs were never touched.
    let after: Vec<String> = storage(&repo)
        .list_all("")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .filter(|id| !id.starts_with("_log"))
        .collect();
    assert_eq!(after, blobs_before);
}

/// `repository upgrade begin` with drain times short enough for a test.
fn upgrade_begin(k: &Kopr, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "repository",
        "upgrade",
        "begin",
        "--allow-unsafe-upgrade",
        "--io-drain-timeout=1ms",
        "--max-permitted-clock-drift=1ms",
        "--status-poll-interval=1ms",
    ];
    args.extend_from_slice(extra);
    k.cmd(&args)
        .env("KOPIA_UPGRADE_LOCK_ENABLED", "1")
        .output()
        .unwrap()
}

#[test]
fn upgrade_takes_format_1_and_2_fixtures_to_the_current_format_and_they_restore() {
    for name in ["format-v1", "format-v2"] {
        let Some(fx) = Fixture::load(name) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (repo, k) = fx.connect_copy(BIN, dir.path());
        let before = raw(&repo, &fx.expected.password);
        let listed_before = k.ok(&["snapshot", "ls", "--all"]);
        // As Kopia: only with the feature variable set.
        let off = k.run(&["repository", "upgrade", "begin"]);
        assert!(one_error_line(&off).contains("KOPIA_UPGRADE_LOCK_ENABLED"));
        let out = upgrade_begin(&k, &[]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let log = stderr(&out);
        assert!(
            log.contains("Repository upgrade lock intent has been placed."),
            "{log}"
        );
        assert!(log.contains("index validation succeeded"), "{log}");
        assert!(
            log.contains("Repository has been successfully upgraded."),
            "{log}"
        );
        let after = raw(&repo, &fx.expected.password);
        assert_eq!(after.config.version, 3, "{name}");
        assert!(after.config.upgrade_lock.is_none(), "{name}");
        assert!(after.config.epoch_parameters.enabled, "{name}");
        assert_eq!(after.config.index_version, 2, "{name}");
        // Keys and algorithms are untouched: the same master key, hash and encryption.
        assert_eq!(after.config.master_key, before.config.master_key);
        assert_eq!(after.config.hash, before.config.hash);
        assert_eq!(after.blob.unique_id, before.blob.unique_id);
        // It opens in kopr, lists the same snapshots and restores them as Kopia wrote them.
        assert_eq!(k.ok(&["snapshot", "ls", "--all"]), listed_before, "{name}");
        for s in fx.live_snapshots() {
            assert_restores(&k, dir.path(), s);
        }
        let verify = k.ok_stderr(&["content", "verify", "--full"]);
        assert!(verify.contains("found 0 errors"), "{verify}");
        // Again: nothing to do.
        let again = upgrade_begin(&k, &[]);
        assert!(stderr(&again).contains("Repository format is already upto date."));
        // A new snapshot goes to the epoch index and restores.
        let src = dir.path().join("new-src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("n"), kopr_testkit::random_bytes(5, 70_000)).unwrap();
        let out = k.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]);
        let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let dest = dir.path().join("new-restored");
        k.ok(&["snapshot", "restore", &id, dest.to_str().unwrap()]);
        tree::assert_same_tree(&src, &dest);
    }
}

#[test]
fn an_upgrade_lock_stops_other_clients_and_rollback_restores_the_old_format() {
    let Some(fx) = Fixture::load("format-v1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    let original = format_bytes(&repo);
    let out = upgrade_begin(&k, &["--lock-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let locked = raw(&repo, &fx.expected.password);
    assert_eq!(locked.config.version, 3);
    let lock = locked.lock().unwrap().expect("lock placed");
    assert_eq!(lock.message, "Upgrading from format version 1 -> 3");
    assert!(!lock.owner_id.is_empty());
    // The backup of the old format blob is there, byte for byte.
    let st = storage(&repo);
    let backups = st
        .list_all(kopr_repo::format_params::BACKUP_BLOB_PREFIX)
        .unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(st.get_blob(&backups[0].id, 0, None).unwrap(), original);
    // Another client (a second connection) stops: nothing opens a locked repository.
    let other = Kopr::new(BIN, &dir.path().join("other/repository.config"))
        .with_password(&fx.expected.password);
    let out = other.run(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
    ]);
    assert!(one_error_line(&out).contains("locked for a format upgrade"));
    let out = k.run(&["snapshot", "ls"]);
    assert!(one_error_line(&out).contains("locked for a format upgrade"));
    // Another owner cannot take the lock over.
    let out = k
        .cmd(&[
            "repository",
            "upgrade",
            "begin",
            "--allow-unsafe-upgrade",
            "--io-drain-timeout=1ms",
            "--max-permitted-clock-drift=1ms",
            "--status-poll-interval=1ms",
            "--upgrade-owner-id=someone-else",
        ])
        .env("KOPIA_UPGRADE_LOCK_ENABLED", "1")
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("you are not the owner of the upgrade lock"));
    // Rollback needs --force, then puts the old format back and removes the backups.
    let rb = |extra: &[&str]| {
        let mut a = vec!["repository", "upgrade", "rollback"];
        a.extend_from_slice(extra);
        k.cmd(&a)
            .env("KOPIA_UPGRADE_LOCK_ENABLED", "1")
            .output()
            .unwrap()
    };
    assert!(one_error_line(&rb(&[])).contains("please use the --force flag"));
    let out = rb(&["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Repository upgrade lock has been revoked."));
    assert_eq!(format_bytes(&repo), original);
    assert!(st
        .list_all(kopr_repo::format_params::BACKUP_BLOB_PREFIX)
        .unwrap()
        .is_empty());
    let back = raw(&repo, &fx.expected.password);
    assert_eq!(back.config.version, 1);
    assert!(!back.config.epoch_parameters.enabled);
    for s in fx.live_snapshots() {
        assert_restores(&k, dir.path(), s);
    }
    // Nothing to roll back now.
    assert!(one_error_line(&rb(&["--force"])).contains("no upgrade in progress"));
}

#[test]
fn upgrade_validate_reports_an_index_that_does_not_match() {
    let Some(fx) = Fixture::load("format-v1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    // Lock and migrate without committing, then drop one migrated index blob's twin: the
    // legacy index still lists contents the epoch index lost.
    let out = upgrade_begin(&k, &["--commit-mode=never"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Commit mode is set to 'never'."));
    let validate = |k: &Kopr| {
        k.cmd(&["repository", "upgrade", "validate"])
            .env("KOPIA_UPGRADE_LOCK_ENABLED", "1")
            .output()
            .unwrap()
    };
    let ok = validate(&k);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).contains("index validation succeeded"));
    let st = storage(&repo);
    for b in st.list_all("xn0_").unwrap() {
        st.delete_blob(&b.id).unwrap();
    }
    // An empty epoch index: the upgrade failed.
    let bad = validate(&k);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("upgrade may have failed"),
        "{}",
        stderr(&bad)
    );
}

/// What a user troubleshooting an S3-compatible store runs: the checks pass against a real S3
/// server (`s3s-fs` on loopback) over several connections, and leave nothing behind.
#[cfg(unix)]
#[test]
fn validate_provider_on_an_s3_server() {
    use kopr_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
    let Some(srv) = S3Server::start() else {
        return;
    };
    srv.create_bucket("vprov");
    let dir = tempfile::tempdir().unwrap();
    let k = Kopr::new(BIN, &dir.path().join("cfg/repository.config"));
    let endpoint = srv.endpoint();
    k.ok(&[
        "repository",
        "create",
        "s3",
        "--bucket=vprov",
        "--prefix=repo/",
        &format!("--access-key={ACCESS_KEY}"),
        &format!("--secret-access-key={SECRET_KEY}"),
        &format!("--endpoint={endpoint}"),
        "--disable-tls",
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
    ]);
    let objects = |srv: &S3Server| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(srv.data().join("vprov/repo"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("_log"))
            .collect();
        v.sort();
        v
    };
    let before = objects(&srv);
    let out = k.ok_stderr(&[
        "repository",
        "validate-provider",
        "--concurrency-test-duration=0s",
        "--num-storage-connections=3",
    ]);
    assert!(out.contains("All good."), "{out}\n{}", srv.log());
    assert_eq!(objects(&srv), before, "temporary objects left behind");
}
