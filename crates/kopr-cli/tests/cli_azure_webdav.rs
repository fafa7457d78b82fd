//! Azure (Azurite), WebDAV (`rclone serve webdav`), GCS (fake-gcs-server), SFTP (OpenSSH's
//! sshd) and rclone (over a WebDAV remote) through the CLI when things go wrong: rejected credentials, a missing container or bucket, an unreachable
//! endpoint and one that accepts connections but never answers each give one error line naming
//! the fix, and write no connection; a server stopped in the middle of a snapshot gives one clear error, loses
//! nothing already saved, and the next run succeeds.

#![cfg(unix)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kopr_blob::azure::{AzureOptions, AzureStorage, ENDPOINT_ENV};
use kopr_blob::gcs::{GcsOptions, GcsStorage, EMULATOR_ENV};
use kopr_blob::sftp::{SftpOptions, SftpStorage};
use kopr_blob::webdav::{WebDavOptions, WebDavStorage};
use kopr_blob::BlobStorage;
use kopr_testkit::cli::{one_error_line, Kopr};
use kopr_testkit::servers::{Server, AZURITE_ACCOUNT, AZURITE_KEY, WEBDAV_PASSWORD, WEBDAV_USER};
use kopr_testkit::{assert_same_tree, random_bytes};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Azure,
    WebDav,
    Gcs,
    Sftp,
    /// kopr's rclone backend, its remote a WebDAV server (`:webdav,url=…:r`).
    Rclone,
}

/// A server of one kind and a connection directory.
struct Env {
    kind: Kind,
    srv: Server,
    tmp: tempfile::TempDir,
    kopr: Kopr,
    /// Where the CLI is pointed (Azurite's account URL, or the WebDAV root).
    url: String,
}

impl Env {
    fn new(kind: Kind) -> Option<Env> {
        let srv = match kind {
            Kind::Azure => Server::azurite()?,
            Kind::WebDav | Kind::Rclone => Server::webdav()?,
            Kind::Gcs => Server::fake_gcs()?,
            Kind::Sftp => Server::sshd()?,
        };
        let tmp = tempfile::tempdir().unwrap();
        let kopr = Kopr::new(
            env!("CARGO_BIN_EXE_kopr"),
            &tmp.path().join("cfg/repository.config"),
        );
        let url = srv.url();
        let env = Env {
            kind,
            srv,
            tmp,
            kopr,
            url,
        };
        if kind == Kind::Azure {
            env.azure(&env.url, "kopr", "").create_container().unwrap();
        }
        if kind == Kind::Gcs {
            env.gcs().create_bucket().unwrap();
        }
        if kind == Kind::Sftp {
            std::fs::write(env.path("known_hosts"), env.srv.known_hosts()).unwrap();
        }
        Some(env)
    }

    fn azure(&self, url: &str, container: &str, key: &str) -> AzureStorage {
        let key = if key.is_empty() { AZURITE_KEY } else { key };
        AzureStorage::with_endpoint(
            AzureOptions {
                container: container.into(),
                prefix: "r/".into(),
                storage_account: AZURITE_ACCOUNT.into(),
                storage_key: key.into(),
                ..Default::default()
            },
            Some(url),
        )
        .unwrap()
    }

    fn gcs(&self) -> GcsStorage {
        GcsStorage::with_endpoint(
            GcsOptions {
                bucket: "kopr".into(),
                prefix: "r/".into(),
                ..Default::default()
            },
            &self.url,
            false,
        )
        .unwrap()
    }

    /// SFTP: the port the CLI is pointed at (`url` is `127.0.0.1:PORT`).
    fn sftp_port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The repository's storage, seen from the test.
    fn storage(&self) -> Box<dyn BlobStorage> {
        match self.kind {
            Kind::Sftp => Box::new(
                SftpStorage::open(
                    SftpOptions {
                        path: self.srv.data().join("r").to_string_lossy().into_owned(),
                        host: "127.0.0.1".into(),
                        port: self.srv.port(),
                        username: self.srv.ssh_user(),
                        keyfile: self.srv.ssh_key().to_string_lossy().into_owned(),
                        known_hosts_data: self.srv.known_hosts(),
                        ..Default::default()
                    },
                    false,
                )
                .unwrap(),
            ),
            Kind::Azure => Box::new(self.azure(&self.url, "kopr", "")),
            Kind::Gcs => Box::new(self.gcs()),
            Kind::WebDav | Kind::Rclone => Box::new(
                WebDavStorage::open(
                    WebDavOptions {
                        url: format!("{}/r", self.url),
                        username: WEBDAV_USER.into(),
                        password: WEBDAV_PASSWORD.into(),
                        ..Default::default()
                    },
                    false,
                )
                .unwrap(),
            ),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// `repository VERB azure|webdav …` against `url`, with `container`/`secret` (empty for
    /// the good ones).
    fn args(&self, verb: &str, container: &str, secret: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["repository".into(), verb.into()];
        match self.kind {
            Kind::Azure => a.extend(azure_flags(container, secret)),
            Kind::Gcs => a.extend(["gcs".into(), "--bucket=kopr".into(), "--prefix=r/".into()]),
            Kind::Rclone => a.extend(self.rclone_flags()),
            Kind::Sftp => a.extend(self.sftp_flags(secret)),
            Kind::WebDav => a.extend(self.webdav_flags(secret)),
        }
        if verb == "create" {
            a.push("--format-block-key-derivation-algorithm=testing-only-insecure".into());
        }
        a
    }

    /// rclone serving the WebDAV server as its remote.
    fn rclone_flags(&self) -> Vec<String> {
        let exe = rclone_exe();
        let pass = Command::new(&exe)
            .args(["obscure", WEBDAV_PASSWORD])
            .output()
            .unwrap();
        let pass = String::from_utf8(pass.stdout).unwrap();
        vec![
            "rclone".into(),
            format!(
                "--remote-path=:webdav,url='{}',user={WEBDAV_USER},pass={}:r",
                self.url,
                pass.trim()
            ),
            format!("--rclone-exe={exe}"),
            // rclone's own waits for its remote kept short, as KOPR_S3_TIMEOUT_SECS
            // keeps kopr's
            "--rclone-args=--config=/dev/null".into(),
            "--rclone-args=--contimeout=2s".into(),
            "--rclone-args=--timeout=2s".into(),
            "--rclone-args=--low-level-retries=2".into(),
        ]
    }

    /// The SFTP server, with the key or, when `secret` is given, that password.
    fn sftp_flags(&self, secret: &str) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "sftp".into(),
            format!("--path={}", self.srv.data().join("r").display()),
            "--host=127.0.0.1".into(),
            format!("--port={}", self.sftp_port()),
            format!("--username={}", self.srv.ssh_user()),
            format!("--known-hosts={}", self.path("known_hosts").display()),
        ];
        a.push(if secret.is_empty() {
            format!("--keyfile={}", self.srv.ssh_key().display())
        } else {
            format!("--sftp-password={secret}")
        });
        a
    }

    /// The WebDAV server, with its password or `secret`.
    fn webdav_flags(&self, secret: &str) -> Vec<String> {
        vec![
            "webdav".into(),
            format!("--url={}/r", self.url),
            format!("--webdav-username={WEBDAV_USER}"),
            format!(
                "--webdav-password={}",
                if secret.is_empty() {
                    WEBDAV_PASSWORD
                } else {
                    secret
                }
            ),
        ]
    }

    fn cmd(&self, args: &[String]) -> Command {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.kopr.cmd(&args);
        c.env("XDG_CACHE_HOME", self.path("cache"))
            .env("KOPR_S3_TIMEOUT_SECS", "2");
        if self.kind == Kind::Azure {
            c.env(ENDPOINT_ENV, &self.url);
        }
        if self.kind == Kind::Gcs {
            c.env(EMULATOR_ENV, &self.url);
        }
        c
    }

    fn run(&self, args: &[String]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn cfg_exists(&self) -> bool {
        self.path("cfg/repository.config").exists()
    }
}

/// Azurite's account in `container` (`kopr` when empty), with its key or `secret`.
fn azure_flags(container: &str, secret: &str) -> Vec<String> {
    vec![
        "azure".into(),
        format!(
            "--container={}",
            if container.is_empty() {
                "kopr"
            } else {
                container
            }
        ),
        "--prefix=r/".into(),
        format!("--storage-account={AZURITE_ACCOUNT}"),
        format!(
            "--storage-key={}",
            if secret.is_empty() {
                AZURITE_KEY
            } else {
                secret
            }
        ),
    ]
}

fn rclone_exe() -> String {
    std::env::var("KOPR_RCLONE").unwrap_or_else(|_| "rclone".into())
}

fn make_tree(root: &Path, seed: u64, files: u64, size: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), random_bytes(seed + i, size)).unwrap();
    }
}

fn snapshot_id(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A port that accepts connections and never answers (the listener is kept open).
fn silent() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn errors(kind: Kind) {
    let Some(mut env) = Env::new(kind) else {
        return;
    };
    rejected_credentials(&env, kind);
    // a missing container (Azure only: a WebDAV create makes its directory)
    if kind == Kind::Azure {
        let e = one_error_line(&env.run(&env.args("create", "nosuch", "")));
        assert!(e.contains("container \"nosuch\" does not exist"), "{e}");
        assert!(!env.cfg_exists());
    }
    // an unreachable endpoint: prompt and clear
    let good = env.url.clone();
    env.url = endpoint_url(kind, free_port());
    let t = Instant::now();
    let e = one_error_line(&env.run(&env.args("connect", "", "")));
    let service = match kind {
        Kind::Azure => "Azure endpoint",
        Kind::WebDav => "WebDAV endpoint",
        Kind::Gcs => "GCS endpoint",
        Kind::Sftp => "SFTP server",
        Kind::Rclone => "rclone",
    };
    if kind == Kind::Rclone {
        // rclone itself reports its remote unreachable
        assert!(
            e.contains("rclone serve webdav failed to start") && e.contains("connection refused"),
            "{e}"
        );
    } else {
        assert!(e.contains(&format!("cannot reach {service}")), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // an endpoint that accepts and never answers: bounded by the time limits
    let (_listener, port) = silent();
    env.url = endpoint_url(kind, port);
    let t = Instant::now();
    let e = one_error_line(&env.run(&env.args("connect", "", "")));
    if kind == Kind::Rclone {
        // rclone's own time limit (--timeout, or kopr's --rclone-startup-timeout) ends it
        assert!(
            e.contains("rclone serve webdav") && e.contains("timeout"),
            "{e}"
        );
    } else {
        assert!(e.contains("did not answer in time"), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(!env.cfg_exists());
    // and the next run, against the answering server, succeeds
    env.url = good;
    let out = env.run(&env.args("create", "", ""));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The endpoint of a `kind` server on loopback `port`.
fn endpoint_url(kind: Kind, port: u16) -> String {
    match kind {
        Kind::Azure => format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
        Kind::WebDav | Kind::Gcs | Kind::Rclone => format!("http://127.0.0.1:{port}"),
        Kind::Sftp => format!("127.0.0.1:{port}"),
    }
}

/// Rejected credentials: one line naming the flag to fix, no connection saved (GCS:
/// gcs_errors_and_embedded_credentials and the blob tests, the emulator does not
/// authenticate).
fn rejected_credentials(env: &Env, kind: Kind) {
    if kind != Kind::Gcs && kind != Kind::Rclone {
        // rejected credentials
        let bad = match kind {
            Kind::Azure => "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
            Kind::WebDav | Kind::Sftp => "wrong-password",
            Kind::Gcs | Kind::Rclone => unreachable!("GCS: gcs_errors_and_embedded_credentials"),
        };
        let e = one_error_line(&env.run(&env.args("create", "", bad)));
        let fix = match kind {
            Kind::Azure => "--storage-key",
            Kind::WebDav => "--webdav-password",
            Kind::Sftp => "--sftp-password",
            Kind::Gcs | Kind::Rclone => unreachable!(),
        };
        assert!(
            e.contains("rejected the credentials") && e.contains(fix),
            "{e}"
        );
        assert!(!env.cfg_exists());
    }
}

#[test]
fn azure_errors_are_one_line_naming_the_fix() {
    errors(Kind::Azure);
}

#[test]
fn webdav_errors_are_one_line_naming_the_fix() {
    errors(Kind::WebDav);
}

#[test]
fn gcs_unreachable_and_silent_endpoints_are_one_line_errors() {
    errors(Kind::Gcs);
}

#[test]
fn rclone_unreachable_and_silent_remotes_are_one_line_errors() {
    errors(Kind::Rclone);
}

#[test]
fn sftp_errors_are_one_line_naming_the_fix() {
    errors(Kind::Sftp);
}

/// An SFTP server whose host key is not in the known hosts, or differs from the one there, is
/// refused before anything is sent: one line naming the fix, no connection written.
#[test]
fn sftp_unknown_or_changed_host_key_is_refused() {
    let Some(env) = Env::new(Kind::Sftp) else {
        return;
    };
    let create = env.args("create", "", "");
    for (known, want) in [
        (String::new(), "is not in the known hosts"),
        (env.srv.changed_known_hosts(), "changed"),
    ] {
        std::fs::write(env.path("known_hosts"), &known).unwrap();
        let e = one_error_line(&env.run(&create));
        assert!(e.contains(want), "{e}");
        assert!(
            e.contains(&format!("[127.0.0.1]:{}", env.srv.port())) && e.contains("SHA256:"),
            "{e}"
        );
        assert!(!env.cfg_exists());
        assert!(!env.srv.data().join("r").exists());
    }
    // with the right key, it works
    std::fs::write(env.path("known_hosts"), env.srv.known_hosts()).unwrap();
    env.ok(&create.iter().map(String::as_str).collect::<Vec<_>>());
}

fn killed_mid_snapshot(kind: Kind) {
    let Some(mut env) = Env::new(kind) else {
        return;
    };
    let out = env.run(&env.args("create", "", ""));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = env.path("first");
    make_tree(&first, 500, 8, 100_000);
    let first_id = snapshot_id(&env.ok(&["snapshot", "create", first.to_str().unwrap(), "--json"]));

    let src = env.path("second");
    make_tree(&src, 1000, 48, 1 << 20);
    let st = env.storage();
    let packs = || st.list_all("p").map(|l| l.len()).unwrap_or(0);
    let before = packs();
    let args: Vec<String> = ["snapshot", "create", src.to_str().unwrap(), "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let child = env
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server as soon as the snapshot has written its first pack.
    let deadline = Instant::now() + Duration::from_secs(60);
    while packs() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    env.srv.stop();
    std::thread::sleep(Duration::from_millis(1500));
    env.srv.restart();
    let out = child.wait_with_output().unwrap();
    let second_id = if out.status.success() {
        Some(snapshot_id(&String::from_utf8(out.stdout).unwrap()))
    } else {
        let e = one_error_line(&out);
        assert!(
            e.contains("Azure") || e.contains("WebDAV") || e.contains("GCS") || e.contains("SFTP"),
            "unclear failure: {e}"
        );
        None
    };
    // What was saved restores; the next run succeeds.
    env.ok(&["snapshot", "ls"]);
    let dst = env.path("restored-first");
    env.ok(&["snapshot", "restore", &first_id, dst.to_str().unwrap()]);
    assert_same_tree(&first, &dst);
    let second_id = match second_id {
        Some(id) => id,
        None => snapshot_id(&env.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"])),
    };
    let dst = env.path("restored-second");
    env.ok(&["snapshot", "restore", &second_id, dst.to_str().unwrap()]);
    assert_same_tree(&src, &dst);
    env.ok(&["snapshot", "verify"]);

    // A server that is down when a command starts: a prompt, one-line failure.
    env.srv.stop();
    let t = Instant::now();
    let e = one_error_line(&env.run(&args));
    assert!(
        e.contains("cannot reach") || e.contains("connection refused"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    env.srv.restart();
    assert!(env.ok(&["snapshot", "ls"]).contains("files:48"));
}

#[test]
fn azure_server_stopped_mid_snapshot() {
    killed_mid_snapshot(Kind::Azure);
}

#[test]
fn webdav_server_stopped_mid_snapshot() {
    killed_mid_snapshot(Kind::WebDav);
}

#[test]
fn gcs_server_stopped_mid_snapshot() {
    killed_mid_snapshot(Kind::Gcs);
}

#[test]
fn rclone_remote_stopped_mid_snapshot() {
    killed_mid_snapshot(Kind::Rclone);
}

#[test]
fn sftp_server_stopped_mid_snapshot() {
    killed_mid_snapshot(Kind::Sftp);
}

/// GCS through the CLI (fake-gcs-server, reached as Google's clients do through
/// `STORAGE_EMULATOR_HOST`): a missing bucket and an unreachable endpoint are one line each;
/// `--embed-credentials` stores the credentials JSON in the connection, masked by `status`.
#[test]
fn gcs_errors_and_embedded_credentials() {
    let Some(srv) = Server::fake_gcs() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let kopr = Kopr::new(
        env!("CARGO_BIN_EXE_kopr"),
        &tmp.path().join("cfg/repository.config"),
    );
    let run = |host: &str, args: &[&str]| {
        kopr.cmd(args)
            .env(kopr_blob::gcs::EMULATOR_ENV, host)
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env("KOPR_S3_TIMEOUT_SECS", "2")
            .output()
            .unwrap()
    };
    let create = [
        "repository",
        "create",
        "gcs",
        "--bucket=nosuch",
        "--format-block-key-derivation-algorithm=testing-only-insecure",
    ];
    let e = one_error_line(&run(&srv.url(), &create));
    assert!(e.contains("bucket \"nosuch\" does not exist"), "{e}");
    let e = one_error_line(&run(&format!("127.0.0.1:{}", free_port()), &create));
    assert!(e.contains("cannot reach GCS endpoint"), "{e}");
    assert!(!tmp.path().join("cfg/repository.config").exists());

    kopr_blob::gcs::GcsStorage::with_endpoint(
        kopr_blob::gcs::GcsOptions {
            bucket: "real".into(),
            ..Default::default()
        },
        &srv.url(),
        false,
    )
    .unwrap()
    .create_bucket()
    .unwrap();
    let creds = tmp.path().join("creds.json");
    std::fs::write(
        &creds,
        r#"{"type":"service_account","client_email":"x@y","private_key":"SECRET-KEY-TEXT"}"#,
    )
    .unwrap();
    let out = run(
        &srv.url(),
        &[
            "repository",
            "create",
            "gcs",
            "--bucket=real",
            "--credentials-file",
            creds.to_str().unwrap(),
            "--embed-credentials",
            "--format-block-key-derivation-algorithm=testing-only-insecure",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("cfg/repository.config")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cfg["storage"]["config"]["credentials"]["client_email"],
        "x@y"
    );
    assert!(cfg["storage"]["config"].get("credentialsFile").is_none());
    let status = run(&srv.url(), &["repository", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("Storage type:        gcs"), "{status}");
    assert!(!status.contains("SECRET-KEY-TEXT"), "{status}");
}
