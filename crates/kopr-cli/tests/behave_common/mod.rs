//! Helpers shared by the cli_behave tests: a connected repository with snapshots, outputs as
//! text, the state of a tree.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

use kopr_testkit::cli::Kopr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

pub fn kopr(cfg: &Path) -> Kopr {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file below `dir` with its size, mtime and bytes' length (the repository's blobs).
pub fn tree_state(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    (md.len(), md.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// A repository with two snapshots of `data`, and the snapshot ids.
pub fn repo_with_snapshots(tmp: &Path) -> (Kopr, PathBuf, PathBuf, Vec<String>) {
    let cfg = tmp.join("repository.config");
    let k = kopr(&cfg);
    let repo = tmp.join("repo");
    let src = tmp.join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
    k.create_filesystem(&repo);
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    std::fs::write(src.join("c.txt"), b"gamma").unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let ids = snapshot_ids(&k, &["snapshot", "ls", "--all", "--json"]);
    assert_eq!(ids.len(), 2);
    (k, repo, src, ids)
}

pub fn snapshot_ids(k: &Kopr, args: &[&str]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&k.ok(args)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// The data pack files (`p…`) of a filesystem repository.
pub fn data_packs(repo: &Path) -> Vec<PathBuf> {
    tree_state(repo)
        .into_keys()
        .filter(|p| p.starts_with("p"))
        .map(|p| repo.join(p))
        .collect()
}
