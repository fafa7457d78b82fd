//! Shared by the server tests: a repository with snapshots (one of them deleted, so that
//! `maintenance explain` has something to show) and a running `kopr server start` on a free
//! loopback port, ended when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use kopr_testkit::cli::Kopr;

pub const BIN: &str = env!("CARGO_BIN_EXE_kopr");
pub const SERVER_USER: &str = "admin";
pub const SERVER_PASSWORD: &str = "server-Secret-9";

/// A temporary repository with a source tree snapshotted twice (the first snapshot deleted)
/// and a quick maintenance run on record.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub k: Kopr,
    pub source: PathBuf,
    /// The live snapshot's id.
    pub snapshot: String,
    /// The deleted snapshot's id.
    pub deleted: String,
}

/// The bytes of the test's big file (not compressible, several chunks of the splitter).
pub fn big_file() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = Kopr::new(BIN, &dir.path().join("repo.config"));
        k.create_filesystem(&dir.path().join("repo"));
        let source = dir.path().join("data");
        std::fs::create_dir_all(source.join("docs/deep")).expect("mkdir");
        std::fs::write(source.join("hello.txt"), b"hello from kopr\n").expect("write");
        std::fs::write(source.join("docs/readme.md"), b"# readme\n").expect("write");
        std::fs::write(source.join("docs/deep/big.bin"), big_file()).expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink("hello.txt", source.join("link")).expect("symlink");
        let src = source.to_str().expect("utf-8");
        let first = snapshot_id(&k.ok(&["snapshot", "create", src, "--json"]));
        std::fs::write(source.join("later.txt"), b"added later\n").expect("write");
        let second = snapshot_id(&k.ok(&["snapshot", "create", src, "--json"]));
        k.ok(&["snapshot", "delete", &first, "--delete"]);
        k.ok(&["maintenance", "run"]);
        Repo {
            dir,
            k,
            source,
            snapshot: second,
            deleted: first,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn snapshot_id(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("snapshot JSON");
    v["id"].as_str().expect("id").to_string()
}

/// A running `kopr server start`.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server with `args` after `server start --address 127.0.0.1:0`; waits for the
    /// address line it prints.
    pub fn start(k: &Kopr, args: &[&str]) -> Server {
        let mut all = vec!["server", "start", "--address", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = k
            .cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let out = child.stdout.take().expect("stdout");
        let mut url = String::new();
        for line in BufReader::new(out).lines() {
            let line = line.expect("server output");
            if let Some(u) = line.strip_prefix("SERVER ADDRESS: ") {
                url = u.to_string();
                break;
            }
        }
        assert!(!url.is_empty(), "the server printed no address");
        Server { child, url }
    }

    /// With the test's user and password.
    pub fn start_with_password(k: &Kopr) -> Server {
        Server::start(
            k,
            &[
                "--insecure",
                "--server-username",
                SERVER_USER,
                "--server-password",
                SERVER_PASSWORD,
            ],
        )
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

/// (status, Location header, body) of a request.
pub fn request(method: &str, url: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut req = agent().request(method, url);
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = if method == "POST" {
        req.set("Content-Type", "application/json")
            .send_string("{}")
    } else {
        req.call()
    };
    let r = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let location = r.header("Location").unwrap_or("").to_string();
    (status, location, r.into_string().unwrap_or_default())
}
