//! A real S3 server for tests: `s3s-fs` (0.14.1) on a free loopback port over a temporary
//! directory. The binary comes from `KOPR_S3_SERVER`, `target/tools/bin/s3s-fs` (where
//! `.ci/run` installs it) or `/tmp/s3s-install/bin/s3s-fs`. Without it, [`S3Server::start`]
//! panics when `CI` is set and otherwise prints why and returns `None` (the test skips).

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
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
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
