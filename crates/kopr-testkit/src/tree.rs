//! What a directory tree holds, as users lose it when a restore gets it wrong: entry types,
//! permission bits (setuid, setgid and sticky included), modification times of files and
//! symlinks, symlink targets, file bytes and, as root, owners. [`assert_same_tree`] compares two
//! trees on disk; [`Node`] is also what the Kopia fixtures' `expected.json` trees are read into.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
}

/// One entry of a tree, by path relative to its root (`.` is the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Permission bits, `0o7777` (none for symlinks).
    pub mode: u32,
    /// Modification time in Unix nanoseconds.
    pub mtime_ns: i64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// File size.
    pub size: u64,
    /// Hex SHA-256 of a file's bytes.
    pub sha256: String,
    /// A symlink's target.
    pub target: String,
}

/// True when this process runs as root (owners can then be restored and compared).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The bytes of the regular files under `dir`, at any depth (0 for a missing directory): a
/// repository's packs, a cache's contents.
pub fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

/// Every entry below `root` (and `root` itself as `.`), sorted by path.
pub fn scan(root: &Path) -> Vec<Node> {
    fn node(path: String, p: &Path) -> Node {
        let md = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::File
        };
        let (mut size, mut sha256, mut target) = (0, String::new(), String::new());
        match kind {
            Kind::File => {
                let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                size = data.len() as u64;
                sha256 = hex::encode(Sha256::digest(&data));
            }
            Kind::Symlink => {
                target = std::fs::read_link(p)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                    .to_string_lossy()
                    .into_owned();
            }
            Kind::Dir => {}
        }
        Node {
            path,
            kind,
            mode: if kind == Kind::Symlink {
                0
            } else {
                md.mode() & 0o7777
            },
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            uid: md.uid(),
            gid: md.gid(),
            size,
            sha256,
            target,
        }
    }
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Node>) {
        let rd = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in rd {
            let p = e
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let rel = p
                .strip_prefix(root)
                .expect("below root")
                .to_string_lossy()
                .into_owned();
            let n = node(rel, &p);
            let is_dir = n.kind == Kind::Dir;
            out.push(n);
            if is_dir {
                walk(root, &p, out);
            }
        }
    }
    let mut out = vec![node(".".into(), root)];
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// What to compare besides types, paths, bytes and symlink targets.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Permission bits of files and directories.
    pub mode: bool,
    /// Modification times of files and symlinks.
    pub file_mtime: bool,
    /// Modification times of directories (the root's too when `root` is set).
    pub dir_mtime: bool,
    /// Owners.
    pub owners: bool,
    /// Compare the root entry itself (mode, times, owner), not only what is below it.
    pub root: bool,
}

impl Compare {
    /// Everything users lose when it is wrong; owners only as root.
    pub fn all() -> Compare {
        Compare {
            mode: true,
            file_mtime: true,
            dir_mtime: true,
            owners: running_as_root(),
            root: true,
        }
    }
}

/// Differences between an `expected` and an `actual` tree (both sorted by path), one line each.
pub fn differences(expected: &[Node], actual: &[Node], how: Compare) -> Vec<String> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < actual.len() {
        let (e, a) = (expected.get(i), actual.get(j));
        match (e, a) {
            (Some(e), Some(a)) if e.path == a.path => {
                compare_node(e, a, how, &mut out);
                i += 1;
                j += 1;
            }
            (Some(e), a) if a.is_none_or(|a| e.path < a.path) => {
                out.push(format!("{}: missing", e.path));
                i += 1;
            }
            (_, Some(a)) => {
                out.push(format!("{}: unexpected entry", a.path));
                j += 1;
            }
            (None, None) => break,
            _ => unreachable!("both sides covered"),
        }
    }
    out
}

fn compare_node(e: &Node, a: &Node, how: Compare, out: &mut Vec<String>) {
    let p = &e.path;
    if e.kind != a.kind {
        out.push(format!("{p}: type {:?}, expected {:?}", a.kind, e.kind));
        return;
    }
    let is_root = p == ".";
    if e.kind == Kind::File && (e.size != a.size || e.sha256 != a.sha256) {
        out.push(format!(
            "{p}: bytes differ ({} bytes, expected {})",
            a.size, e.size
        ));
    }
    if e.target != a.target {
        out.push(format!(
            "{p}: symlink target {:?}, expected {:?}",
            a.target, e.target
        ));
    }
    if is_root && !how.root {
        return;
    }
    if how.mode && e.kind != Kind::Symlink && e.mode != a.mode {
        out.push(format!("{p}: mode {:04o}, expected {:04o}", a.mode, e.mode));
    }
    let check_time = match e.kind {
        Kind::Dir => how.dir_mtime,
        _ => how.file_mtime,
    };
    if check_time && e.mtime_ns != a.mtime_ns {
        out.push(format!(
            "{p}: mtime {} ns, expected {}",
            a.mtime_ns, e.mtime_ns
        ));
    }
    if how.owners && (e.uid, e.gid) != (a.uid, a.gid) {
        out.push(format!(
            "{p}: owner {}:{}, expected {}:{}",
            a.uid, a.gid, e.uid, e.gid
        ));
    }
}

/// Asserts that the trees at `a` (the original) and `b` (its restore) hold the same entries
/// with the same types, bytes, symlink targets, permission bits (special bits included),
/// modification times of files and symlinks and, as root, owners; names every difference.
/// The roots themselves and directory times are not compared (a restore target may be made
/// by the test, and writing into a directory changes its time).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let how = Compare {
        dir_mtime: false,
        root: false,
        ..Compare::all()
    };
    let d = differences(&scan(a), &scan(b), how);
    assert!(
        d.is_empty(),
        "{} and {} differ:\n{}",
        a.display(),
        b.display(),
        d.join("\n")
    );
}
