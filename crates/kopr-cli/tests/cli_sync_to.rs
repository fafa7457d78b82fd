//! `repository sync-to`: a filesystem repository copied to Azure (Azurite), GCS
//! (fake-gcs-server), WebDAV (`rclone serve webdav`), rclone and SFTP (OpenSSH's sshd), incrementally on reruns, with
//! `--delete` mirroring deletions, and back to a filesystem; a GCS repository copied to Azure.
//! Every copy opens as the same repository and restores byte for byte.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kopr_blob::azure::{AzureOptions, AzureStorage, ENDPOINT_ENV};
use kopr_blob::gcs::{GcsOptions, GcsStorage, EMULATOR_ENV};
use kopr_testkit::cli::{blob_lengths, Kopr};
use kopr_testkit::servers::{Server, AZURITE_ACCOUNT, AZURITE_KEY, WEBDAV_PASSWORD, WEBDAV_USER};
use kopr_testkit::{assert_same_tree, random_bytes};

/// One connection (its own config file) in a shared temporary directory.
struct Conn {
    kopr: Kopr,
    cache: PathBuf,
    env: Vec<(String, String)>,
}

impl Conn {
    fn new(dir: &Path, name: &str, env: &[(String, String)]) -> Conn {
        Conn {
            kopr: Kopr::new(
                env!("CARGO_BIN_EXE_kopr"),
                &dir.join(name).join("repository.config"),
            ),
            cache: dir.join(name).join("cache"),
            env: env.to_vec(),
        }
    }

    fn both(&self, args: &[&str]) -> (String, String) {
        let out = self
            .kopr
            .cmd(args)
            .env("XDG_CACHE_HOME", &self.cache)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "kopr {args:?}: {e}");
        (o, e)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.both(args).0
    }

    fn blobs(&self) -> BTreeMap<String, u64> {
        blob_lengths(&self.ok(&["blob", "ls", "--json"]))
    }

    fn snapshot(&self, src: &Path) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&[
            "snapshot",
            "create",
            src.to_str().unwrap(),
            "--json",
        ]))
        .unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

fn make_tree(root: &Path, seed: u64) {
    for i in 0..6u64 {
        let dir = root.join(format!("d{}", i % 2));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}")),
            random_bytes(seed + i, 80_000 + 31 * i as usize),
        )
        .unwrap();
    }
}

/// The number in `Found N BLOBs to copy`.
fn to_copy(log: &str) -> usize {
    log.lines()
        .find_map(|l| l.trim().strip_prefix("Found "))
        .filter(|l| l.contains("BLOBs to copy"))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no copy count in:\n{log}"))
}

/// Source → `target` (sync-to arguments, connect arguments) → back to a filesystem.
fn round_trip(env: &[(String, String)], sync: &[String], connect: &[String]) {
    let tmp = tempfile::tempdir().unwrap();
    let src_conn = Conn::new(tmp.path(), "src", env);
    let repo = tmp.path().join("repo");
    src_conn.ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]);
    let data = tmp.path().join("data");
    make_tree(&data, 1);
    let first = src_conn.snapshot(&data);

    let mut sync_args: Vec<&str> = vec!["repository", "sync-to"];
    sync_args.extend(sync.iter().map(String::as_str));
    let (_, log) = src_conn.both(&sync_args);
    assert!(log.contains("Copying..."), "{log}");
    assert_eq!(to_copy(&log), src_conn.blobs().len() - 1, "{log}"); // the format blob goes first

    // A rerun copies nothing.
    let (_, log) = src_conn.both(&sync_args);
    assert_eq!(to_copy(&log), 0, "{log}");

    // New data and deletions in the source: an update copies the new blobs, --delete mirrors
    // the deletions.
    std::fs::write(data.join("d0/f0"), random_bytes(99, 70_000)).unwrap();
    let second = src_conn.snapshot(&data);
    src_conn.ok(&["snapshot", "delete", &first, "--delete"]);
    src_conn.both(&["maintenance", "run", "--full", "--safety=none"]);
    let mut with_delete = sync_args.clone();
    with_delete.push("--delete");
    let (_, log) = src_conn.both(&with_delete);
    assert!(to_copy(&log) > 0, "{log}");

    // The copy opens as the same repository, holds exactly the source's blobs, restores.
    let copy_conn = Conn::new(tmp.path(), "copy", env);
    let mut c: Vec<&str> = vec!["repository", "connect"];
    c.extend(connect.iter().map(String::as_str));
    copy_conn.ok(&c);
    assert_eq!(copy_conn.blobs(), src_conn.blobs());
    let ls = copy_conn.ok(&["snapshot", "ls"]);
    assert!(ls.contains(&second) || ls.contains("files:6"), "{ls}");
    let out = tmp.path().join("restored");
    copy_conn.ok(&["snapshot", "restore", &second, out.to_str().unwrap()]);
    assert_same_tree(&data, &out);
    copy_conn.ok(&["snapshot", "verify"]);

    back_to_a_new_filesystem_location(tmp.path(), env, &copy_conn, &src_conn, &second, &data);

    another_repository_is_refused(tmp.path(), env, sync);
}

/// And back from the copy to a new filesystem location, with the same blobs, restoring.
fn back_to_a_new_filesystem_location(
    tmp: &Path,
    env: &[(String, String)],
    copy_conn: &Conn,
    src_conn: &Conn,
    second: &str,
    data: &Path,
) {
    let back = tmp.join("back");
    copy_conn.both(&[
        "repository",
        "sync-to",
        "filesystem",
        "--path",
        back.to_str().unwrap(),
    ]);
    let back_conn = Conn::new(tmp, "back", env);
    back_conn.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        back.to_str().unwrap(),
    ]);
    assert_eq!(back_conn.blobs(), src_conn.blobs());
    let out = tmp.join("restored-back");
    back_conn.ok(&["snapshot", "restore", second, out.to_str().unwrap()]);
    assert_same_tree(data, &out);
}

/// A destination holding another repository is refused.
fn another_repository_is_refused(tmp: &Path, env: &[(String, String)], sync: &[String]) {
    let other = Conn::new(tmp, "other", env);
    let other_repo = tmp.join("other-repo");
    other.ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        other_repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]);
    let mut refused: Vec<&str> = vec!["repository", "sync-to"];
    refused.extend(sync.iter().map(String::as_str));
    let out = other
        .kopr
        .cmd(&refused)
        .env("XDG_CACHE_HOME", &other.cache)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("incompatible data"), "{e}");
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sync_to_azure_and_back() {
    let Some(srv) = Server::azurite() else {
        return;
    };
    AzureStorage::with_endpoint(
        AzureOptions {
            container: "mirror".into(),
            storage_account: AZURITE_ACCOUNT.into(),
            storage_key: AZURITE_KEY.into(),
            ..Default::default()
        },
        Some(&srv.url()),
    )
    .unwrap()
    .create_container()
    .unwrap();
    let env = vec![(ENDPOINT_ENV.to_string(), srv.url())];
    let args = strings(&[
        "azure",
        "--container=mirror",
        "--prefix=copy/",
        "--storage-account",
        AZURITE_ACCOUNT,
        "--storage-key",
        AZURITE_KEY,
    ]);
    round_trip(&env, &args, &args);
}

#[test]
fn sync_to_webdav_and_back() {
    let Some(srv) = Server::webdav() else {
        return;
    };
    let url = format!("--url={}/copy", srv.url());
    let args = strings(&[
        "webdav",
        &url,
        "--webdav-username",
        WEBDAV_USER,
        "--webdav-password",
        WEBDAV_PASSWORD,
    ]);
    round_trip(&[], &args, &args);
}

#[test]
fn sync_to_gcs_and_back() {
    let Some(srv) = Server::fake_gcs() else {
        return;
    };
    GcsStorage::with_endpoint(
        GcsOptions {
            bucket: "mirror".into(),
            ..Default::default()
        },
        &srv.url(),
        false,
    )
    .unwrap()
    .create_bucket()
    .unwrap();
    let env = vec![(EMULATOR_ENV.to_string(), srv.url())];
    let args = strings(&["gcs", "--bucket=mirror", "--prefix=copy/"]);
    round_trip(&env, &args, &args);
}

/// A repository on GCS copied to Azure: any pair of backends.
#[test]
fn sync_to_between_two_clouds() {
    let (Some(gcs), Some(az)) = (Server::fake_gcs(), Server::azurite()) else {
        return;
    };
    GcsStorage::with_endpoint(
        GcsOptions {
            bucket: "from".into(),
            ..Default::default()
        },
        &gcs.url(),
        false,
    )
    .unwrap()
    .create_bucket()
    .unwrap();
    AzureStorage::with_endpoint(
        AzureOptions {
            container: "to-container".into(),
            storage_account: AZURITE_ACCOUNT.into(),
            storage_key: AZURITE_KEY.into(),
            ..Default::default()
        },
        Some(&az.url()),
    )
    .unwrap()
    .create_container()
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let env = vec![
        (EMULATOR_ENV.to_string(), gcs.url()),
        (ENDPOINT_ENV.to_string(), az.url()),
    ];
    let src = Conn::new(tmp.path(), "src", &env);
    src.ok(&[
        "repository",
        "create",
        "gcs",
        "--bucket=from",
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ]);
    let data = tmp.path().join("data");
    make_tree(&data, 5);
    let id = src.snapshot(&data);
    let azure = strings(&[
        "azure",
        "--container=to-container",
        "--storage-account",
        AZURITE_ACCOUNT,
        "--storage-key",
        AZURITE_KEY,
    ]);
    let mut sync: Vec<&str> = vec!["repository", "sync-to"];
    sync.extend(azure.iter().map(String::as_str));
    src.both(&sync);
    let dst = Conn::new(tmp.path(), "dst", &env);
    let mut connect: Vec<&str> = vec!["repository", "connect"];
    connect.extend(azure.iter().map(String::as_str));
    dst.ok(&connect);
    assert_eq!(dst.blobs(), src.blobs());
    let out = tmp.path().join("restored");
    dst.ok(&["snapshot", "restore", &id, out.to_str().unwrap()]);
    assert_same_tree(&data, &out);
}

#[test]
fn sync_to_rclone_and_back() {
    let rclone = std::env::var("KOPR_RCLONE").unwrap_or_else(|_| "rclone".into());
    if !std::process::Command::new(&rclone)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        kopr_testkit::env::skip(
            "sync_to_rclone_and_back",
            "rclone not found: set KOPR_RCLONE or install Debian's rclone",
        );
        return;
    }
    let remote = tempfile::tempdir().unwrap();
    let path = remote.path().join("copy");
    let args = strings(&[
        "rclone",
        "--remote-path",
        path.to_str().unwrap(),
        "--rclone-exe",
        &rclone,
        "--rclone-args=--config=/dev/null",
    ]);
    round_trip(&[], &args, &args);
}

#[test]
fn sync_to_sftp_and_back() {
    let Some(srv) = Server::sshd() else {
        return;
    };
    let known = srv.data().join("known_hosts");
    std::fs::write(&known, srv.known_hosts()).unwrap();
    let path = format!("--path={}", srv.data().join("copy").display());
    let port = format!("--port={}", srv.port());
    let user = format!("--username={}", srv.ssh_user());
    let key = format!("--keyfile={}", srv.ssh_key().display());
    let kh = format!("--known-hosts={}", known.display());
    let args = strings(&["sftp", &path, "--host=127.0.0.1", &port, &user, &key, &kh]);
    round_trip(&[], &args, &args);
}
