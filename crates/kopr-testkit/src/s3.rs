//! A real S3 server for tests: `s3s-fs` (0.14.1) on a free loopback port over a temporary
//! directory. The binary comes from `KOPR_S3_SERVER`, `target/tools/bin/s3s-fs` (where
//! `.ci/run` installs it) or `/tmp/s3s-install/bin/s3s-fs`. Without it, [`S3Server::start`]
//! fails the test when `CI` is set and otherwise reports a visible skip ([`crate::env::skip`])
//! and returns `None`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "kopr-test-access";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "kopr-test-secret-0123456789";

/// A running `s3s-fs`; killed on drop.
pub struct S3Server {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

/// Where the server binary is, if anywhere.
pub fn server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOPR_S3_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        workspace.join("target/tools/bin/s3s-fs"),
        PathBuf::from("/tmp/s3s-install/bin/s3s-fs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The running test's name (the harness names its thread after it).
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

impl S3Server {
    /// Starts a server, or `None` (after saying why) when the binary is missing outside CI.
    pub fn start() -> Option<S3Server> {
        let Some(binary) = server_binary() else {
            let msg = "S3 server binary not found: set KOPR_S3_SERVER or run `cargo install s3s-fs@0.14.1 --features binary --locked --root target/tools`";
            crate::env::skip(&current_test(), msg);
            return None;
        };
        let mut s = S3Server {
            binary,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            port: free_port(),
        };
        std::fs::create_dir_all(s.data()).expect("server data dir");
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log");
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.data())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "S3 server did not start; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's data directory (one subdirectory per bucket).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a bucket (a directory of the data dir, which is what s3s-fs serves).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.data().join(name)).expect("bucket dir");
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server (the data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
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

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The PEM of the CA that signed [`TlsProxy`]'s certificate (for `--root-ca-pem-path`).
pub const TEST_CA_PEM: &str = include_str!("../testdata/ca.pem");

/// A TLS front for a plain-TCP port: a certificate for `127.0.0.1` signed by [`TEST_CA_PEM`]
/// (a test-only CA whose key was discarded). One thread per connection; stops with the test.
pub struct TlsProxy {
    port: u16,
}

impl TlsProxy {
    /// Listens on a free loopback port and forwards decrypted bytes to `upstream`.
    pub fn start(upstream: u16) -> TlsProxy {
        use std::sync::Arc;
        let certs: Vec<_> =
            rustls_pemfile::certs(&mut &include_bytes!("../testdata/server.pem")[..])
                .collect::<Result<_, _>>()
                .expect("test certificate");
        let key = rustls_pemfile::private_key(&mut &include_bytes!("../testdata/server.key")[..])
            .expect("test key")
            .expect("a key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server certificate"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let cfg = cfg.clone();
                std::thread::spawn(move || forward(tcp, cfg, upstream));
            }
        });
        TlsProxy { port }
    }

    /// `127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn forward(tcp: TcpStream, cfg: std::sync::Arc<rustls::ServerConfig>, upstream: u16) {
    use std::io::{ErrorKind, Read, Write};
    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
        return;
    };
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let tick = Some(Duration::from_millis(5));
    if tcp.set_read_timeout(tick).is_err() || up.set_read_timeout(tick).is_err() {
        return;
    }
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = vec![0u8; 64 << 10];
    let idle = |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if up.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
        match up.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
    }
}

/// An HTTP CONNECT proxy on loopback that counts the tunnels it opened.
pub struct ConnectProxy {
    port: u16,
    tunnels: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnectProxy {
    /// Listens on a free loopback port.
    pub fn start() -> ConnectProxy {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let count = tunnels.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    if tunnel(client).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        ConnectProxy { port, tunnels }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many tunnels were opened.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn tunnel(mut client: TcpStream) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b)? == 0 || head.len() > 8192 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")?;
        return Err(std::io::ErrorKind::InvalidData.into());
    };
    let upstream = TcpStream::connect(target)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
    let (mut c1, mut u1) = (client, upstream);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c1, &mut u1);
        let _ = u1.shutdown(std::net::Shutdown::Write);
    });
    Ok(())
}

/// The moto version `.ci/run` installs (`moto[server]` from PyPI into a virtualenv under
/// `target/tools/moto`).
pub const MOTO_VERSION: &str = "5.2.5";

/// Where moto's `moto_server` is, if anywhere: `KOPR_MOTO_SERVER`, else
/// `target/tools/moto/bin/moto_server`.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOPR_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Some(workspace.join("target/tools/moto/bin/moto_server")).filter(|p| p.is_file())
}

/// An S3 server with object lock, for the retention tests: moto's server on a free loopback
/// port, state in memory. It keeps what a put's `x-amz-object-lock-*` headers and
/// PutObjectRetention set and reports it on HeadObject (moto has no GetObjectRetention). It
/// accepts any credentials. Killed on drop.
pub struct LockingS3Server {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl LockingS3Server {
    /// Starts moto, or `None` (after saying why) when it is not installed, outside CI.
    pub fn start() -> Option<LockingS3Server> {
        let Some(binary) = moto_binary() else {
            let msg = format!(
                "moto_server not found: set KOPR_MOTO_SERVER or run `python3 -m venv target/tools/moto && target/tools/moto/bin/pip install 'moto[server]=={MOTO_VERSION}'`"
            );
            crate::env::skip(&current_test(), &msg);
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let s = LockingS3Server { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start; log: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(s)
    }

    /// `127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a versioned bucket with object lock enabled
    /// (`x-amz-bucket-object-lock-enabled: true` on CreateBucket).
    pub fn create_locking_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            tcp,
            "PUT /{name} HTTP/1.1\r\nHost: {}\r\nx-amz-bucket-object-lock-enabled: true\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.endpoint()
        )
        .expect("send CreateBucket");
        let mut resp = String::new();
        tcp.read_to_string(&mut resp)
            .expect("read CreateBucket reply");
        assert!(
            resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
            "CreateBucket {name}: {resp}"
        );
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for LockingS3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
