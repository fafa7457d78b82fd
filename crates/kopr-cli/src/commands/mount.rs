//! `kopr mount SNAPSHOT-ID|all MOUNTPOINT`: a read-only FUSE filesystem over snapshots.
//!
//! Directories are read when first listed; file reads fetch only the chunks that cover the
//! requested range, through a cache of decoded chunks bounded in bytes. `all` shows
//! `user@host` → the source path (slashes as `_`) → one directory per snapshot named by its
//! start time (`20261130-035210`) → the snapshot's tree, as Kopia's `mount all` groups them.
//! Ctrl-C or `fusermount -u`/`umount` ends it.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyOpen, Request,
};
use kopr_format::object_id::{IndirectEntry, ObjectId};
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, SnapshotManifest};
use kopr_repo::object::{object_entries, read_object};
use kopr_repo::snapshot as snap;
use kopr_repo::Repository;

use super::Context;

/// How long the kernel may cache attributes and names (the tree never changes).
const TTL: Duration = Duration::from_secs(60);
/// Bytes of decoded chunks kept for reads.
const CHUNK_CACHE_BYTES: usize = 64 << 20;

/// What an inode is.
enum Node {
    /// A directory made up by `all` (sources, paths, snapshot times).
    Synthetic {
        mtime: i64,
        children: Vec<(String, u64)>,
    },
    /// An entry of a snapshot.
    Entry {
        entry: Box<DirEntry>,
        children: Option<Vec<(String, u64)>>,
        chunks: Option<Vec<IndirectEntry>>,
    },
}

/// The mounted filesystem.
struct SnapshotFs {
    repo: Repository,
    nodes: Vec<Node>,
    cache: HashMap<ObjectId, Arc<Vec<u8>>>,
    cache_order: VecDeque<ObjectId>,
    cache_bytes: usize,
    uid: u32,
    gid: u32,
}

fn time_of(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

impl SnapshotFs {
    fn node(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(ino.checked_sub(1)? as usize)
    }

    fn add(&mut self, n: Node) -> u64 {
        self.nodes.push(n);
        self.nodes.len() as u64
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.node(ino)?;
        let (kind, perm, size, mtime, uid, gid) = match n {
            Node::Synthetic { mtime, .. } => {
                (FileType::Directory, 0o555, 0, *mtime, self.uid, self.gid)
            }
            Node::Entry { entry: e, .. } => {
                let kind = match e.entry_type {
                    EntryType::Directory => FileType::Directory,
                    EntryType::Symlink => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                let perm = if kind == FileType::Symlink {
                    0o777
                } else {
                    (e.permissions.0 & 0o7777) as u16
                };
                let size = match kind {
                    FileType::Directory => 0,
                    _ => e.file_size.max(0) as u64,
                };
                (kind, perm, size, e.mod_time, e.user_id, e.group_id)
            }
        };
        let t = time_of(mtime);
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Reads a directory's object the first time it is listed or looked into.
    fn load_children(&mut self, ino: u64) -> std::result::Result<(), i32> {
        let oid = match self.node(ino) {
            Some(Node::Synthetic { .. })
            | Some(Node::Entry {
                children: Some(_), ..
            }) => return Ok(()),
            Some(Node::Entry { entry, .. }) if entry.entry_type == EntryType::Directory => {
                entry.object_id.clone()
            }
            Some(_) => return Err(libc::ENOTDIR),
            None => return Err(libc::ENOENT),
        };
        let dm = read_object(self.repo.contents(), &oid)
            .ok()
            .and_then(|b| DirManifest::decode(&b).ok())
            .ok_or(libc::EIO)?;
        let mut list = Vec::with_capacity(dm.entries.len());
        for e in dm.entries {
            let name = e.name.clone();
            let child = self.add(Node::Entry {
                entry: Box::new(e),
                children: None,
                chunks: None,
            });
            list.push((name, child));
        }
        if let Some(Node::Entry { children, .. }) = self.nodes.get_mut(ino as usize - 1) {
            *children = Some(list);
        }
        Ok(())
    }

    /// A directory's children (name, inode), after [`Self::load_children`].
    fn listed(&self, ino: u64) -> &[(String, u64)] {
        match self.node(ino) {
            Some(Node::Synthetic { children, .. })
            | Some(Node::Entry {
                children: Some(children),
                ..
            }) => children,
            _ => &[],
        }
    }

    /// A file's chunks with their offsets.
    fn chunks(&mut self, ino: u64) -> std::result::Result<Vec<IndirectEntry>, i32> {
        let oid = match self.node(ino) {
            Some(Node::Entry {
                chunks: Some(c), ..
            }) => return Ok(c.clone()),
            Some(Node::Entry { entry, .. }) => entry.object_id.clone(),
            _ => return Err(libc::EISDIR),
        };
        let list = object_entries(self.repo.contents(), &oid).map_err(|_| libc::EIO)?;
        if let Some(Node::Entry { chunks, .. }) = self.nodes.get_mut(ino as usize - 1) {
            *chunks = Some(list.clone());
        }
        Ok(list)
    }

    /// A decoded chunk, from the bounded cache or the repository.
    fn chunk(&mut self, oid: &ObjectId) -> std::result::Result<Arc<Vec<u8>>, i32> {
        if let Some(c) = self.cache.get(oid) {
            return Ok(c.clone());
        }
        let data = Arc::new(read_object(self.repo.contents(), oid).map_err(|_| libc::EIO)?);
        self.cache_bytes += data.len();
        self.cache.insert(oid.clone(), data.clone());
        self.cache_order.push_back(oid.clone());
        while self.cache_bytes > CHUNK_CACHE_BYTES {
            let Some(old) = self.cache_order.pop_front() else {
                break;
            };
            if let Some(d) = self.cache.remove(&old) {
                self.cache_bytes -= d.len();
            }
        }
        Ok(data)
    }

    fn read_range(
        &mut self,
        ino: u64,
        offset: u64,
        size: usize,
    ) -> std::result::Result<Vec<u8>, i32> {
        let chunks = self.chunks(ino)?;
        let end = offset.saturating_add(size as u64);
        let mut out = Vec::with_capacity(size);
        for c in chunks
            .iter()
            .filter(|c| c.start < end && c.start + c.length > offset)
        {
            let data = self.chunk(&c.object)?;
            let from = offset.saturating_sub(c.start) as usize;
            let to = ((end - c.start) as usize).min(data.len());
            if from < to {
                out.extend_from_slice(&data[from..to]);
            }
        }
        Ok(out)
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if let Err(e) = self.load_children(parent) {
            return reply.error(e);
        }
        let found = self
            .listed(parent)
            .iter()
            .find(|(n, _)| OsStr::new(n) == name)
            .map(|(_, ino)| *ino);
        match found.and_then(|ino| self.attr(ino)) {
            Some(a) => reply.entry(&TTL, &a, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let oid = match self.node(ino) {
            Some(Node::Entry { entry, .. }) if entry.entry_type == EntryType::Symlink => {
                entry.object_id.clone()
            }
            _ => return reply.error(libc::EINVAL),
        };
        match read_object(self.repo.contents(), &oid) {
            Ok(target) => reply.data(&target),
            Err(_) => reply.error(libc::EIO),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        match self.node(ino) {
            Some(Node::Entry { entry, .. }) if entry.entry_type == EntryType::File => {
                reply.opened(0, 0)
            }
            Some(_) => reply.error(libc::EISDIR),
            None => reply.error(libc::ENOENT),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.read_range(ino, offset.max(0) as u64, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if let Err(e) = self.load_children(ino) {
            return reply.error(e);
        }
        let dots = [(ino, "."), (ino, "..")];
        let entries = dots.into_iter().chain(
            self.listed(ino)
                .iter()
                .map(|(name, child)| (*child, name.as_str())),
        );
        for (i, (child, name)) in entries.enumerate().skip(offset.max(0) as usize) {
            let kind = self.attr(child).map_or(FileType::RegularFile, |a| a.kind);
            if reply.add(child, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A source path of `all` and its snapshots (directory name, root entry).
type SourcePath = (String, Vec<(String, DirEntry)>);

/// Builds the inode table: one snapshot's root, or `all` sources.
fn build(repo: Repository, what: &str) -> Result<SnapshotFs> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut fs = SnapshotFs {
        repo,
        nodes: Vec::new(),
        cache: HashMap::new(),
        cache_order: VecDeque::new(),
        cache_bytes: 0,
        uid,
        gid,
    };
    if what != "all" {
        let entry = super::snapshot::resolve(&fs.repo, what)?;
        if entry.entry_type != EntryType::Directory {
            bail!("{what} is not a directory");
        }
        fs.add(Node::Entry {
            entry: Box::new(entry),
            children: None,
            chunks: None,
        });
        return Ok(fs);
    }
    fs.add(Node::Synthetic {
        mtime: 0,
        children: Vec::new(),
    });
    let users = group_snapshots(snap::list_snapshots(&fs.repo, None)?);
    let mut top = Vec::new();
    for (user, paths) in users {
        let mut path_nodes = Vec::new();
        for (path, list) in paths {
            let mut snap_nodes = Vec::new();
            let mut newest = 0;
            for (name, root) in list {
                newest = newest.max(root.mod_time);
                let ino = fs.add(Node::Entry {
                    entry: Box::new(root),
                    children: None,
                    chunks: None,
                });
                snap_nodes.push((name, ino));
            }
            let ino = fs.add(Node::Synthetic {
                mtime: newest,
                children: snap_nodes,
            });
            path_nodes.push((path, ino));
        }
        let ino = fs.add(Node::Synthetic {
            mtime: 0,
            children: path_nodes,
        });
        top.push((user, ino));
    }
    fs.nodes[0] = Node::Synthetic {
        mtime: 0,
        children: top,
    };
    Ok(fs)
}

/// The complete snapshots by `user@host`, then by source path (`/` as `_`), each named by its
/// start time (a suffix of its id when two start in the same second).
fn group_snapshots(snaps: Vec<SnapshotManifest>) -> Vec<(String, Vec<SourcePath>)> {
    let mut users: Vec<(String, Vec<SourcePath>)> = Vec::new();
    for m in snaps.into_iter().filter(|m| m.incomplete_reason.is_empty()) {
        let Some(root) = m.root_entry.clone() else {
            continue;
        };
        let user = format!("{}@{}", m.source.user_name, m.source.host);
        let path = m.source.path.replace('/', "_");
        let when = kopr_format::snapshot::utc_nanos::to_time(m.start_time)
            .format("%Y%m%d-%H%M%S")
            .to_string();
        let u = match users.iter().position(|(n, _)| *n == user) {
            Some(i) => i,
            None => {
                users.push((user, Vec::new()));
                users.len() - 1
            }
        };
        let paths = &mut users[u].1;
        let p = match paths.iter().position(|(n, _)| *n == path) {
            Some(i) => i,
            None => {
                paths.push((path, Vec::new()));
                paths.len() - 1
            }
        };
        let list = &mut paths[p].1;
        // Two snapshots in the same second get a suffix.
        let name = if list.iter().any(|(n, _)| *n == when) {
            format!("{when}-{}", &m.id[..8.min(m.id.len())])
        } else {
            when
        };
        list.push((name, root));
    }
    users
}

/// Mounts and serves until Ctrl-C or an unmount.
pub fn run(ctx: &Context, what: &str, mountpoint: PathBuf) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    if !mountpoint.is_dir() {
        bail!("mount point {} is not a directory", mountpoint.display());
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        bail!("FUSE is not available on this machine (/dev/fuse is missing); load the fuse module or install FUSE");
    }
    let fs = build(repo, what)?;
    let options = [
        MountOption::RO,
        MountOption::FSName("kopr".into()),
        MountOption::Subtype("kopr".into()),
    ];
    let session = fuser::spawn_mount2(fs, &mountpoint, &options).with_context(|| {
        format!(
            "cannot mount at {} (FUSE needs root or fusermount3)",
            mountpoint.display()
        )
    })?;
    eprintln!(
        "Mounted {what} at {}. Press Ctrl-C to unmount.",
        mountpoint.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    while !stop.load(Ordering::SeqCst) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(session);
    eprintln!("Unmounted {}.", mountpoint.display());
    Ok(())
}
