//! Kopia's own repositories, the test of record: `../shared/fixtures/kopia-0.23.1/<name>/` beside
//! the workspace holds a filesystem repository written by Kopia 0.23.1 (`repo/`) and what is in
//! it (`expected.json`: password, snapshots with their full trees, Kopia's own command outputs).
//! The shared copy is read-only: tests work on [`Fixture::copy_repo`].
//!
//! Where the fixtures are missing, [`Fixture::load`] says `SKIPPED` loudly and returns `None`,
//! except under CI (`CI` set), where a missing fixture fails the test.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::tree::{Kind, Node};

/// The fixtures' directory, if present.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/kopia-0.23.1")
}

/// One entry of a snapshot's tree in `expected.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedEntry {
    /// Relative path (`.` is the root).
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Octal Unix permission bits with setuid 4000 / setgid 2000 / sticky 1000.
    pub mode: String,
    /// Modification time.
    pub mtime_ns: i64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// File size.
    #[serde(default)]
    pub size: u64,
    /// File SHA-256.
    #[serde(default)]
    pub sha256: String,
    /// Symlink target.
    #[serde(default)]
    pub target: String,
}

impl ExpectedEntry {
    /// As a [`Node`], to compare with a scanned tree.
    pub fn node(&self) -> Node {
        let kind = match self.kind.as_str() {
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            _ => Kind::File,
        };
        Node {
            path: self.path.clone(),
            kind,
            mode: if kind == Kind::Symlink {
                0
            } else {
                u32::from_str_radix(&self.mode, 8).expect("octal mode in expected.json")
            },
            mtime_ns: self.mtime_ns,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            sha256: self.sha256.clone(),
            target: self.target.clone(),
        }
    }
}

/// One snapshot in `expected.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedSnapshot {
    /// Manifest id.
    pub id: String,
    /// `user@host:/path`.
    pub source: String,
    /// Root object id.
    pub root: String,
    /// Deleted later.
    pub deleted: bool,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Tags as stored (`tag:` keys).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Pins.
    #[serde(default)]
    pub pins: Vec<String>,
    /// The source tree when snapshotted (absent for some deleted snapshots).
    #[serde(default)]
    pub tree: Option<Vec<ExpectedEntry>>,
}

impl ExpectedSnapshot {
    /// The tree as [`Node`]s sorted by path.
    pub fn nodes(&self) -> Vec<Node> {
        let mut v: Vec<Node> = self
            .tree
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(ExpectedEntry::node)
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

/// `expected.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    /// The repository password.
    pub password: String,
    /// Flags given to `kopia repository create`.
    #[serde(default)]
    pub create_flags: Vec<String>,
    /// Every snapshot ever made, in creation order.
    pub snapshots: Vec<ExpectedSnapshot>,
    /// Ids of deleted snapshots.
    #[serde(default)]
    pub deleted_snapshot_ids: Vec<String>,
    /// Kopia's own output of some commands, by command.
    #[serde(default)]
    pub kopia_outputs: BTreeMap<String, String>,
    /// For the compressors fixture: file → compressor name (`None` = stored uncompressed).
    #[serde(default)]
    pub compressor_by_file: BTreeMap<String, Option<String>>,
}

/// A fixture: its directory and `expected.json`.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Fixture name (`default`, `velero`, …).
    pub name: String,
    /// `<root>/<name>`.
    pub dir: PathBuf,
    /// Its `expected.json`.
    pub expected: Expected,
}

impl Fixture {
    /// Loads fixture `name`; `None` (after a loud `SKIPPED` line) when the fixtures are not
    /// on this machine, a test failure when `CI` is set.
    pub fn load(name: &str) -> Option<Fixture> {
        let dir = root().join(name);
        let path = dir.join("expected.json");
        if !path.is_file() {
            crate::env::skip(
                &format!("fixture {name}"),
                &format!("Kopia fixture {} not found", path.display()),
            );
            return None;
        }
        let text = std::fs::read_to_string(&path).expect("read expected.json");
        let expected =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Some(Fixture {
            name: name.into(),
            dir,
            expected,
        })
    }

    /// Copies the repository to `dest` (which must not exist) with write permission, so that
    /// commands can write to the copy; returns `dest`.
    pub fn copy_repo(&self, dest: &Path) -> PathBuf {
        copy_dir(&self.dir.join("repo"), dest);
        dest.to_path_buf()
    }

    /// Copies the repository to `dir/repo` and connects to the copy with the fixture's
    /// password through `bin` (a config file in `dir`); returns the copy and the connection.
    pub fn connect_copy(&self, bin: &str, dir: &Path) -> (PathBuf, crate::cli::Kopr) {
        let repo = self.copy_repo(&dir.join("repo"));
        let k = crate::cli::Kopr::new(bin, &dir.join("repository.config"))
            .with_password(&self.expected.password);
        k.ok(&[
            "repository",
            "connect",
            "filesystem",
            "--path",
            repo.to_str().expect("utf-8 path"),
        ]);
        (repo, k)
    }

    /// Snapshots that are still live, in creation order.
    pub fn live_snapshots(&self) -> Vec<&ExpectedSnapshot> {
        self.expected
            .snapshots
            .iter()
            .filter(|s| !s.deleted)
            .collect()
    }

    /// Kopia's output of `command` (a key of `kopia_outputs`).
    pub fn kopia_output(&self, command: &str) -> &str {
        self.expected
            .kopia_outputs
            .get(command)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{}: no Kopia output for {command:?}", self.name))
    }
}

/// Copies the tree `from` to `to` with owner write permission (the shared fixtures are
/// read-only), files `0600` and directories `0700` as Kopia's filesystem storage makes them.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))
        .expect("chmod copy directory");
    for e in std::fs::read_dir(from).expect("read fixture") {
        let e = e.expect("fixture entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy fixture file");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .expect("chmod copy");
        }
    }
}
