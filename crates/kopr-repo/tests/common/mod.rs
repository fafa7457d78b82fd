//! Helpers shared by the snapshot tests: a repository in a temp dir, a test tree and its
//! listing, snapshot and restore shortcuts.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

pub mod counting;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::snapshot::{create_snapshot, UploadOptions};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn repo_at(dir: &Path, splitter: &str) -> (Arc<dyn BlobStorage>, Repository) {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::create(dir).unwrap());
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
        splitter: splitter.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").unwrap();
    let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
    (st, r)
}

pub fn source(p: &Path) -> SourceInfo {
    SourceInfo {
        host: "host".into(),
        user_name: "user".into(),
        path: p.to_string_lossy().into_owned(),
    }
}

pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(root.join("small.txt"), b"hello kopr\n").unwrap();
    fs::write(root.join("zürich ünïcödé ☃.txt"), "grüezi".repeat(100)).unwrap();
    fs::write(root.join("l".repeat(255)), b"long name").unwrap();
    let mut deep = root.to_path_buf();
    for i in 0..30 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"deep").unwrap();
    fs::write(root.join("big.bin"), random_bytes(1, 5 << 20)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink("small.txt", root.join("link")).unwrap();
        std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
        fs::set_permissions(root.join("small.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(root.join("exec.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

pub fn walk(root: &Path) -> Vec<(PathBuf, String, Vec<u8>, u32, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            #[cfg(unix)]
            let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
            #[cfg(not(unix))]
            let mode = 0;
            let mtime = md
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            if md.file_type().is_symlink() {
                out.push((
                    rel,
                    "link".into(),
                    fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                    0,
                    0,
                ));
            } else if md.is_dir() {
                out.push((rel, "dir".into(), vec![], mode, mtime));
                stack.push(p);
            } else {
                out.push((rel, "file".into(), fs::read(&p).unwrap(), mode, mtime));
            }
        }
    }
    out.sort();
    out
}

pub fn snap(repo: &Repository, src: &Path) -> kopr_format::snapshot::SnapshotManifest {
    create_snapshot(
        repo,
        src,
        &source(src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

/// Restores the whole of snapshot `m` to `dst` with the default options.
pub fn restore_all(
    repo: &Repository,
    m: &kopr_format::snapshot::SnapshotManifest,
    dst: &Path,
) -> kopr_repo::snapshot::RestoreStats {
    kopr_repo::snapshot::restore(
        repo,
        m.root_entry.as_ref().expect("a root"),
        dst,
        kopr_repo::snapshot::RestoreOptions::default(),
    )
    .unwrap()
}

pub fn root_entries(
    repo: &Repository,
    m: &kopr_format::snapshot::SnapshotManifest,
) -> Vec<kopr_format::snapshot::DirEntry> {
    let root = m.root_entry.as_ref().unwrap();
    let bytes = kopr_repo::object::read_object(repo.contents(), &root.object_id).unwrap();
    kopr_format::snapshot::DirManifest::decode(&bytes)
        .unwrap()
        .entries
}
