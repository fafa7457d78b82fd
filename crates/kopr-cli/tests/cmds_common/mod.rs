//! Helpers shared by the cli_cmds tests: a connected repository in a temp dir.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

use kopr_testkit::cli::Kopr;
use std::path::PathBuf;

pub const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// A temporary directory with a repository, a config and a small source tree.
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

    pub fn src(&self) -> &str {
        self.src.to_str().unwrap()
    }

    pub fn snapshot(&self) -> String {
        let out = self.k.ok(&["snapshot", "create", self.src(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    pub fn snapshots_json(&self) -> Vec<serde_json::Value> {
        let out = self.k.ok(&["snapshot", "ls", "--all", "--json"]);
        serde_json::from_str(&out).unwrap()
    }
}
