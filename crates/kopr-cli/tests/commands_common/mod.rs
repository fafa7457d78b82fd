//! Helpers shared by the cli_commands tests: a connected repository and outputs as text.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

use kopr_testkit::cli::Kopr;
use std::path::{Path, PathBuf};
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// A temporary directory with a repository, a config and a small source tree snapshotted once.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub src: PathBuf,
    pub k: Kopr,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), b"hello kopr\n").unwrap();
        std::fs::write(
            src.join("sub/b.bin"),
            kopr_testkit::random_bytes(7, 300_000),
        )
        .unwrap();
        let k = Kopr::new(BIN, &dir.path().join("cfg/repository.config"));
        k.create_filesystem(&repo);
        Env { dir, repo, src, k }
    }

    pub fn snapshot(&self) -> String {
        let out = self
            .k
            .ok(&["snapshot", "create", self.src.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    pub fn blob_file(&self, id: &str) -> PathBuf {
        self.repo.join(format!("{id}.f"))
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Restores `id` with `k` into a new directory and compares it with `src`, byte for byte.
pub fn assert_restores(k: &Kopr, id: &str, src: &Path, into: &Path) {
    k.ok(&["snapshot", "restore", id, into.to_str().unwrap()]);
    for rel in ["a.txt", "sub/b.bin"] {
        assert_eq!(
            std::fs::read(src.join(rel)).unwrap(),
            std::fs::read(into.join(rel)).unwrap(),
            "{rel} restored differently"
        );
    }
}

/// Every blob file of a filesystem repository by blob id (the shard directories joined).
pub fn blob_files(repo: &Path) -> std::collections::BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, out: &mut std::collections::BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &format!("{prefix}{name}"), out);
            } else if let Some(stem) = name.strip_suffix(".f") {
                out.insert(format!("{prefix}{stem}"), e.path());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(repo, "", &mut out);
    out
}

pub fn set_age_days(path: &Path, days: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86400);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}
