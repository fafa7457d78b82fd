//! SFTP storage, laid out as Kopia's `sftp` backend, which is the filesystem layout over SSH:
//! blob `id` is the file `<path>/<shards>/<rest>.f`, sharded as `.shards` at the root says
//! (`{1,3}` for new repositories, `{3,3}` when it is missing), so the directory opens as a
//! filesystem repository too. A put writes `<file>.tmp.<16 hex>` (created exclusively, missing
//! shard directories made on the way) and renames it over the blob with OpenSSH's
//! `posix-rename`, so readers never see part of a blob. Listings read several shard
//! directories at once. The stored options are Kopia's (`host`, `port`, `username`,
//! `keyfile`/`keyData`, `knownHostsFile`/`knownHostsData`, `externalSSH`, `dirShards`, …).
//!
//! The SSH client is russh (pure Rust) driven by a small tokio runtime owned by the storage;
//! callers stay blocking. One connection carries concurrent requests; a broken connection is a
//! [`BlobError::Transient`] error and the next call reconnects. The server's host key must be
//! in the known hosts: an unknown or changed key is refused with the fix in the message.

mod connect;
pub mod known_hosts;
mod options;
mod requests;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::task::JoinSet;

pub use options::SftpOptions;
use requests::*;

use crate::filesystem::{ShardParameters, BLOB_SUFFIX, SHARDS_FILE};
use crate::s3::Timeouts;
use crate::{checked_range, BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// Bytes per SFTP read or write request (OpenSSH serves up to 256 KiB).
const CHUNK: usize = 64 * 1024;
/// Requests of one transfer in flight at once.
const IN_FLIGHT: usize = 16;
/// Directories listed at once.
const LIST_PARALLEL: usize = 8;

/// Blobs as files of an SFTP server.
pub struct SftpStorage {
    opts: SftpOptions,
    /// The path without a trailing slash (`/` stays).
    root: String,
    shards: ShardParameters,
    timeouts: Timeouts,
    /// Always `Some` until dropped (then shut down without waiting, which is allowed even
    /// inside another runtime).
    rt: Option<tokio::runtime::Runtime>,
    session: Mutex<Option<Arc<connect::Session>>>,
}

impl fmt::Debug for SftpStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpStorage")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl SftpStorage {
    /// Connects to the server and opens the repository directory; `create` makes the
    /// directory and Kopia's `.shards` of a new repository when they are missing.
    pub fn open(opts: SftpOptions, create: bool) -> Result<SftpStorage> {
        if opts.host.is_empty() {
            return Err(BlobError::Other("no SFTP --host given".into()));
        }
        if opts.path.is_empty() {
            return Err(BlobError::Other("no SFTP --path given".into()));
        }
        let root = if opts.path.len() > 1 {
            opts.path.trim_end_matches('/').to_string()
        } else {
            opts.path.clone()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kopr-sftp")
            .enable_all()
            .build()
            .map_err(|e| BlobError::Other(format!("cannot start the SFTP client: {e}")))?;
        let mut st = SftpStorage {
            timeouts: Timeouts::from_env()?,
            shards: ShardParameters::default_for(&[3, 3]),
            root,
            rt: Some(rt),
            session: Mutex::new(None),
            opts,
        };
        st.shards = st.read_shards(create)?;
        Ok(st)
    }

    /// Runs `fut` on the storage's runtime, from a plain thread or (on a helper thread)
    /// from inside another runtime.
    fn block_on<F: Future + Send>(&self, fut: F) -> Result<F::Output>
    where
        F::Output: Send,
    {
        let Some(rt) = self.rt.as_ref() else {
            return Err(BlobError::Other("the SFTP client is shut down".into()));
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            Ok(std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }))
        } else {
            Ok(rt.block_on(fut))
        }
    }

    /// The live session, connecting when there is none or it broke.
    fn session(&self) -> Result<Arc<connect::Session>> {
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        *slot = None;
        let s = Arc::new(self.block_on(connect::open(
            &self.opts,
            self.timeouts.connect,
            self.timeouts.io,
        ))??);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Forgets `s` if it is still the current session (it broke).
    fn drop_session(&self, s: &Arc<connect::Session>) {
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, s)) {
            *slot = None;
        }
    }

    /// Runs one operation on the session; a broken or silent connection is dropped (the next
    /// call reconnects) and reported as transient.
    fn call<T, F, Fut>(&self, op: &str, id: &str, f: F) -> Result<T>
    where
        F: FnOnce(Arc<connect::Session>) -> Fut,
        Fut: Future<Output = Res<T>> + Send,
        T: Send,
    {
        let s = self.session()?;
        match self.block_on(f(s.clone()))? {
            Ok(v) => Ok(v),
            Err(f) => {
                if matches!(f, Failure::Timeout | Failure::Lost(_)) {
                    self.drop_session(&s);
                }
                Err(self.error(f, op, id))
            }
        }
    }

    fn error(&self, f: Failure, op: &str, id: &str) -> BlobError {
        let srv = connect::server(&self.opts);
        match f {
            Failure::Timeout => BlobError::Transient(format!(
                "SFTP server {srv} did not answer in time ({op} of {id}; limit {:?} per request, {} changes it)",
                self.timeouts.io,
                crate::s3::TIMEOUT_ENV
            )),
            Failure::Lost(m) => BlobError::Transient(format!(
                "connection to SFTP server {srv} lost ({op} of {id}): {m}"
            )),
            Failure::Status(StatusCode::NoSuchFile, _) => BlobError::NotFound(id.to_string()),
            Failure::Status(StatusCode::PermissionDenied, m) => BlobError::Permission(format!(
                "SFTP server {srv} denied {op} of {id} under {} (check the directory's owner and permissions): {m}",
                self.root
            )),
            Failure::Status(code, m) => BlobError::Other(format!(
                "SFTP {op} of {id} under {} on {srv} failed: {code}: {m}",
                self.root
            )),
        }
    }

    /// The full path of `rel` under the root.
    fn full(&self, rel: &str) -> String {
        join(&self.root, rel)
    }

    /// The shard directory (relative) and full path of `id`.
    fn path_of(&self, id: &str) -> Result<(String, String)> {
        if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(BlobError::Other(format!("invalid blob id {id:?}")));
        }
        let (dirs, file) = self.shards.split(id);
        let dir = dirs.join("/");
        Ok((dir.clone(), self.full(&join(&dir, &file))))
    }

    /// Reads `.shards`, writing Kopia's default for a new repository when it is missing.
    fn read_shards(&self, create: bool) -> Result<ShardParameters> {
        let path = self.full(SHARDS_FILE);
        let root = self.root.clone();
        let got = self.call("open", SHARDS_FILE, |s| async move {
            match s.sftp.stat(root.clone()).await {
                Ok(a) if a.attrs.is_dir() => {}
                Ok(_) => {
                    return Err(Failure::Status(
                        StatusCode::Failure,
                        format!("{root} is not a directory"),
                    ))
                }
                Err(e) => {
                    let f = Failure::from(e);
                    if is_status(&f, StatusCode::NoSuchFile) && !create {
                        return Err(Failure::Status(
                            StatusCode::NoSuchFile,
                            format!("the directory {root} does not exist"),
                        ));
                    }
                    if !is_status(&f, StatusCode::NoSuchFile) {
                        return Err(f);
                    }
                    mkdir_all(&s.sftp, &root).await?;
                }
            }
            let h = match s
                .sftp
                .open(path, OpenFlags::READ, FileAttributes::empty())
                .await
            {
                Ok(h) => h.handle,
                Err(e) => {
                    let f = Failure::from(e);
                    return if is_status(&f, StatusCode::NoSuchFile) {
                        Ok(None)
                    } else {
                        Err(f)
                    };
                }
            };
            let data = read_range(&s.sftp, &h, 0, 64 * 1024).await;
            let _ = s.sftp.close(h).await;
            data.map(Some)
        });
        let data = match got {
            Ok(d) => d,
            Err(BlobError::NotFound(_)) => {
                return Err(BlobError::Other(format!(
                    "the repository directory {} does not exist on SFTP server {} (check --path, or create the repository first)",
                    self.root,
                    connect::server(&self.opts)
                )))
            }
            Err(e) => return Err(e),
        };
        match data {
            Some(d) => serde_json::from_slice(&d).map_err(|e| {
                BlobError::Other(format!("invalid {SHARDS_FILE} at {}: {e}", self.root))
            }),
            None => {
                let dflt = self.opts.dir_shards.clone().unwrap_or(if create {
                    vec![1, 3]
                } else {
                    vec![3, 3]
                });
                let p = ShardParameters::default_for(&dflt);
                if create {
                    let mut data =
                        serde_json::to_vec(&p).map_err(|e| BlobError::Other(e.to_string()))?;
                    data.push(b'\n');
                    self.write_file("", &self.full(SHARDS_FILE), SHARDS_FILE, data, false)?;
                }
                Ok(p)
            }
        }
    }

    /// Writes `full` (in relative shard directory `dir`) through a temporary file renamed
    /// over it; `no_overwrite` refuses an existing file.
    fn write_file(
        &self,
        dir: &str,
        full: &str,
        id: &str,
        data: Vec<u8>,
        no_overwrite: bool,
    ) -> Result<()> {
        let mut r = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let tmp = format!("{full}.tmp.{}", hex::encode(r));
        let parent = self.full(dir);
        let data: Arc<[u8]> = data.into();
        let full = full.to_string();
        self.call("put", id, |s| async move {
            let flags = OpenFlags::CREATE | OpenFlags::WRITE | OpenFlags::EXCLUDE;
            let handle = match s
                .sftp
                .open(tmp.clone(), flags, FileAttributes::empty())
                .await
            {
                Ok(h) => h.handle,
                Err(e) => {
                    let f = Failure::from(e);
                    if !is_status(&f, StatusCode::NoSuchFile) {
                        return Err(f);
                    }
                    mkdir_all(&s.sftp, &parent).await?;
                    s.sftp
                        .open(tmp.clone(), flags, FileAttributes::empty())
                        .await?
                        .handle
                }
            };
            let written = write_all(&s.sftp, &handle, &data).await;
            let closed = s.sftp.close(handle).await;
            let moved = match (written, closed) {
                (Err(f), _) => Err(f),
                (Ok(()), Err(e)) => Err(e.into()),
                (Ok(()), Ok(_)) if no_overwrite => s
                    .sftp
                    .rename(tmp.clone(), full)
                    .await
                    .map(|_| ())
                    .map_err(Failure::from),
                (Ok(()), Ok(_)) => rename_over(&s.sftp, s.posix_rename, &tmp, &full).await,
            };
            if moved.is_err() {
                let _ = s.sftp.remove(tmp).await;
            }
            moved
        })
    }
}

impl Drop for SftpStorage {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.session.lock() {
            *slot = None;
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl BlobStorage for SftpStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let (_, full) = self.path_of(id)?;
        let id2 = id.to_string();
        let r = self.call("get", id, |s| async move {
            let h = s
                .sftp
                .open(full, OpenFlags::READ, FileAttributes::empty())
                .await?
                .handle;
            let r = async {
                let size = s.sftp.fstat(h.clone()).await?.attrs.size.unwrap_or(0);
                let range = match checked_range(&id2, size, offset, length) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let want = (range.end - range.start) as u64;
                let data = read_range(&s.sftp, &h, range.start as u64, want).await?;
                if data.len() as u64 != want {
                    // the file shrank under us: as a range past its end
                    return Ok(Err(BlobError::InvalidRange {
                        id: id2.clone(),
                        offset,
                        length: want,
                        actual: data.len() as u64 + range.start as u64,
                    }));
                }
                Ok(Ok(data))
            }
            .await;
            let _ = s.sftp.close(h).await;
            r
        })?;
        r
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let (_, full) = self.path_of(id)?;
        let a = self.call(
            "stat",
            id,
            |s| async move { Ok(s.sftp.stat(full).await?.attrs) },
        )?;
        Ok(BlobMetadata {
            id: id.to_string(),
            length: a.size.unwrap_or(0),
            timestamp: timestamp(&a),
        })
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if opts.retention_mode.is_some() {
            return Err(BlobError::Other(
                "SFTP storage does not support --retention-mode (object lock)".into(),
            ));
        }
        let (dir, full) = self.path_of(id)?;
        self.write_file(&dir, &full, id, data.to_vec(), opts.do_not_overwrite)
            .map_err(|e| match e {
                BlobError::Other(m) if opts.do_not_overwrite && m.contains("Failure") => {
                    BlobError::Other(format!("blob {id} already exists"))
                }
                e => e,
            })
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let (_, full) = self.path_of(id)?;
        self.call("delete", id, |s| async move {
            match s.sftp.remove(full).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let f = Failure::from(e);
                    if is_status(&f, StatusCode::NoSuchFile) {
                        Ok(())
                    } else {
                        Err(f)
                    }
                }
            }
        })
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        let root = self.root.clone();
        let want = prefix.to_string();
        let mut all = self.call("list", prefix, |s| async move {
            let mut queue = vec![(String::new(), String::new())];
            let mut set = JoinSet::new();
            let mut found = Vec::new();
            loop {
                while set.len() < LIST_PARALLEL {
                    let Some((dir, id_prefix)) = queue.pop() else {
                        break;
                    };
                    let (sftp, full) = (s.sftp.clone(), join(&root, &dir));
                    set.spawn(async move {
                        let r = read_dir(&sftp, full).await;
                        (dir, id_prefix, r)
                    });
                }
                let Some(done) = set.join_next().await else {
                    break;
                };
                let (dir, id_prefix, entries) = done?;
                for (name, attrs) in entries? {
                    if name.starts_with('.') {
                        continue;
                    }
                    if attrs.is_dir() {
                        let p = format!("{id_prefix}{name}");
                        let n = p.len().min(want.len());
                        if p.as_bytes()[..n] == want.as_bytes()[..n] {
                            queue.push((join(&dir, &name), p));
                        }
                    } else if let Some(stem) = name.strip_suffix(BLOB_SUFFIX) {
                        let id = format!("{id_prefix}{stem}");
                        if id.starts_with(&want) {
                            found.push(BlobMetadata {
                                id,
                                length: attrs.size.unwrap_or(0),
                                timestamp: timestamp(&attrs),
                            });
                        }
                    }
                }
            }
            Ok(found)
        })?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        for m in all {
            cb(m)?;
        }
        Ok(())
    }

    fn display_name(&self) -> String {
        format!("SFTP {}@{}", self.opts.username, self.opts.host)
    }
}

#[cfg(test)]
mod tests;
