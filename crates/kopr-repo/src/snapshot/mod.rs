//! Snapshots: uploading a directory tree as objects and directory manifests, saving snapshot
//! manifests, listing them, and restoring a tree.
//!
//! Files whose size and modification time match the previous snapshot of the same source are
//! not read again: their object ids are reused. Unreadable entries are recorded as errors in
//! the directory summaries and the snapshot stats, and the snapshot goes on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use kopr_format::compression::DEFAULT_METADATA_COMPRESSION;
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{
    DirEntry, DirManifest, DirectorySummary, EntryError, EntryType, Permissions, SnapshotManifest,
    SnapshotStats, SourceInfo, DIRECTORY_PREFIX, DIRECTORY_STREAM,
};

pub mod estimate;
mod file_pool;
pub mod fix;
pub mod migrate;
mod restore_batch;

use file_pool::{FileJob, JobSlot, Workers};

use crate::error::{RepoError, Result};
use crate::object::{object_entries, read_object, ObjectWriter, WriterOptions};
use crate::repository::Repository;

/// How a snapshot is taken.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Compressor for file contents (`None`: Kopia's default policy, no compression).
    pub compression: Option<String>,
    /// Free-text description.
    pub description: String,
    /// Set to stop the snapshot early; what was stored is saved as an incomplete checkpoint.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Live counters for a display that polls them from another thread (the upload creates its
    /// own when `None`; `on_progress` sees them either way).
    pub progress: Option<Arc<ProgressCounters>>,
    /// Estimate the total files and bytes with a pre-walk of the source in a background thread,
    /// as Kopia's "estimating" does; until it ends, the previous snapshot's totals stand in.
    pub estimate: bool,
}

/// Reason recorded on snapshots stopped by the user.
pub const INCOMPLETE_CANCELED: &str = "canceled";

/// Progress callbacks' view of the work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files hashed so far.
    pub hashed_files: u64,
    /// Bytes hashed so far (of finished files and of files being read).
    pub hashed_bytes: u64,
    /// Files reused from the previous snapshot.
    pub cached_files: u64,
    /// Bytes of those.
    pub cached_bytes: u64,
    /// Errors so far.
    pub errors: u64,
    /// Files being read right now.
    pub hashing_files: u64,
    /// Estimated files in the source (0: not known yet).
    pub estimated_files: u64,
    /// Estimated bytes in the source (0: not known yet).
    pub estimated_bytes: u64,
    /// Whether the estimate is the pre-walk's final count rather than a stand-in.
    pub estimate_done: bool,
}

impl Progress {
    /// Files done, hashed or cached.
    pub fn done_files(&self) -> u64 {
        self.hashed_files + self.cached_files
    }

    /// Bytes done, hashed or cached.
    pub fn done_bytes(&self) -> u64 {
        self.hashed_bytes + self.cached_bytes
    }
}

/// The counters behind [`Progress`], updated with relaxed atomic adds (one per buffer of up to
/// 1 MiB read, one per file) so any thread can poll them while the upload runs.
#[derive(Debug, Default)]
pub struct ProgressCounters {
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    cached_files: AtomicU64,
    cached_bytes: AtomicU64,
    errors: AtomicU64,
    hashing_files: AtomicU64,
    estimated_files: AtomicU64,
    estimated_bytes: AtomicU64,
    estimate_done: AtomicBool,
}

impl ProgressCounters {
    /// The counters now.
    pub fn get(&self) -> Progress {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Progress {
            hashed_files: l(&self.hashed_files),
            hashed_bytes: l(&self.hashed_bytes),
            cached_files: l(&self.cached_files),
            cached_bytes: l(&self.cached_bytes),
            errors: l(&self.errors),
            hashing_files: l(&self.hashing_files),
            estimated_files: l(&self.estimated_files),
            estimated_bytes: l(&self.estimated_bytes),
            estimate_done: self.estimate_done.load(Ordering::Relaxed),
        }
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    fn set_estimate(&self, files: u64, bytes: u64, done: bool) {
        self.estimated_files.store(files, Ordering::Relaxed);
        self.estimated_bytes.store(bytes, Ordering::Relaxed);
        self.estimate_done.store(done, Ordering::Relaxed);
    }
}

/// The pre-walk behind [`UploadOptions::estimate`]: counts the files and bytes a snapshot would
/// take, with the same ignore rules, and publishes the count to the progress counters.
struct Estimator<'a> {
    progress: &'a ProgressCounters,
    stop: &'a AtomicBool,
    dot_ignore_files: Vec<String>,
    rules: Vec<crate::ignore::Rule>,
    /// Cache directories count as empty, as in the snapshot.
    skip_cache_dirs: bool,
    /// The stand-in (previous snapshot's totals), never lowered while the walk runs.
    floor: (u64, u64),
    files: u64,
    bytes: u64,
}

impl Estimator<'_> {
    fn run(mut self, dir: &Path) {
        self.walk(dir, "");
        if !self.stop.load(Ordering::Relaxed) {
            self.progress.set_estimate(self.files, self.bytes, true);
        }
    }

    fn walk(&mut self, dir: &Path, rel: &str) {
        if self.skip_cache_dirs && is_cache_dir(dir) {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let rules_before = self.rules.len();
        for name in &self.dot_ignore_files {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                self.rules.extend(crate::ignore::parse(rel, &text));
            }
        }
        for e in rd.flatten() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(md) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if crate::ignore::is_ignored(&self.rules, &child_rel, md.is_dir()) {
                continue;
            }
            if md.is_dir() {
                self.walk(&e.path(), &child_rel);
            } else if md.is_file() {
                self.files += 1;
                self.bytes += md.len();
            }
        }
        self.rules.truncate(rules_before);
        if self.files > self.floor.0 || self.bytes > self.floor.1 {
            self.progress.set_estimate(
                self.files.max(self.floor.0),
                self.bytes.max(self.floor.1),
                false,
            );
        }
    }
}

/// Reads one file into an object; `progress` counts bytes as they are read. With `spare`, the
/// chunks are stored on idle pool workers too (see [`ObjectWriter::with_spare_workers`]).
///
/// A file that changes while it is read is stored as read: reads stop at the first end of file,
/// so the object holds the bytes seen (Kopia does the same and records the object's length).
fn upload_file(
    repo: &Repository,
    compression: Option<&str>,
    path: &Path,
    progress: &ProgressCounters,
    spare: Option<&AtomicUsize>,
) -> Result<(ObjectId, u64)> {
    let mut f =
        fs::File::open(path).map_err(|e| RepoError::Invalid(format!("{}: {e}", path.display())))?;
    let mut w = ObjectWriter::new(
        repo.contents(),
        WriterOptions {
            prefix: None,
            compression: compression.map(str::to_string),
            metadata_compression: Some(DEFAULT_METADATA_COMPRESSION.into()),
            splitter: None,
        },
    )?;
    if let Some(spare) = spare {
        w = w.with_spare_workers(spare);
    }
    thread_local! {
        /// One read buffer per thread, reused file after file (no allocation per file).
        static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let total = READ_BUF.with(|cell| -> Result<u64> {
        let mut taken = cell.try_borrow_mut().ok();
        let mut own = Vec::new();
        let buf: &mut Vec<u8> = taken.as_deref_mut().unwrap_or(&mut own);
        buf.resize(READ_BUFFER, 0);
        let mut total = 0u64;
        loop {
            let n = f
                .read(buf)
                .map_err(|e| RepoError::Invalid(format!("{}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            w.write_bytes(&buf[..n])?;
            total += n as u64;
            ProgressCounters::add(&progress.hashed_bytes, n as u64);
        }
        Ok(total)
    })?;
    Ok((w.result()?, total))
}

/// Size of the reads of file data.
const READ_BUFFER: usize = 1 << 20;

/// [`upload_file`] counted as a file in flight, then a hashed file.
fn upload_counted(
    repo: &Repository,
    compression: Option<&str>,
    path: &Path,
    progress: &ProgressCounters,
    spare: Option<&AtomicUsize>,
) -> Result<(ObjectId, u64)> {
    ProgressCounters::add(&progress.hashing_files, 1);
    let r = upload_file(repo, compression, path, progress, spare);
    progress.hashing_files.fetch_sub(1, Ordering::Relaxed);
    if r.is_ok() {
        ProgressCounters::add(&progress.hashed_files, 1);
    }
    r
}

/// Batches queued per worker before the walk waits for the workers.
const QUEUED_BATCHES_PER_WORKER: usize = 2;
/// Files under this size are handed to the workers in batches of up to [`FILES_PER_BATCH`]
/// files or this many bytes.
const SMALL_FILE: u64 = 256 << 10;
const FILES_PER_BATCH: usize = 16;

/// A directory walked whose files may still be being read; it is finished (its manifest
/// written) once they are, children before parents.
struct PendingDir {
    dir: PathBuf,
    entries: Vec<DirEntry>,
    summary: DirectorySummary,
    /// (entry index, relative path, result) of each file being read.
    files: Vec<(usize, String, Arc<JobSlot>)>,
    /// (entry index, finished child) of each subdirectory.
    subdirs: Vec<(usize, Arc<DirSlot>)>,
    /// Entry indexes of every file, read or reused, for the totals.
    file_entries: Vec<usize>,
    out: Arc<DirSlot>,
}

impl PendingDir {
    fn ready(&self) -> bool {
        self.files.iter().all(|(_, _, j)| j.is_done())
    }
}

/// A finished directory: its object and summary.
type DirSlot = std::sync::OnceLock<(ObjectId, DirectorySummary)>;

struct Uploader<'a> {
    repo: &'a Repository,
    opts: &'a UploadOptions,
    /// The workers' queue; files are read on the walking thread without one.
    jobs: Option<SyncSender<Vec<FileJob>>>,
    /// Small files gathered for the next hand-off, and their bytes.
    batch: Vec<FileJob>,
    batch_bytes: u64,
    /// Walked directories not finished yet, in the order they were walked (children first).
    pending: VecDeque<PendingDir>,
    stats: SnapshotStats,
    progress: Arc<ProgressCounters>,
    on_progress: &'a mut dyn FnMut(&Progress),
    rules: Vec<crate::ignore::Rule>,
    policy: kopr_format::policy::Policy,
}

/// The name of the file that marks a cache directory (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// How a `CACHEDIR.TAG` starts.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Whether `dir` holds a regular `CACHEDIR.TAG` that starts with the standard signature.
fn is_cache_dir(dir: &Path) -> bool {
    let tag = dir.join(CACHEDIR_TAG);
    if !fs::symlink_metadata(&tag).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    fs::File::open(&tag)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
}

fn mtime_nanos(md: &fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| chrono::DateTime::<chrono::Utc>::from(t).timestamp_nanos_opt())
        .unwrap_or(0)
}

#[cfg(unix)]
fn owner(md: &fs::Metadata) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    (md.mode() & 0o7777, md.uid(), md.gid())
}

#[cfg(not(unix))]
fn owner(md: &fs::Metadata) -> (u32, u32, u32) {
    (
        if md.permissions().readonly() {
            0o444
        } else {
            0o644
        },
        0,
        0,
    )
}

impl Uploader<'_> {
    fn canceled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Records an error reading an entry: fatal, or ignored when the error-handling policy
    /// says so for that kind (`dir`: opening or listing a directory; else reading a file).
    fn error(
        &mut self,
        summary: &mut DirectorySummary,
        rel: &str,
        e: impl std::fmt::Display,
        dir: bool,
    ) {
        let eh = &self.policy.error_handling;
        let ignored = if dir {
            eh.ignore_directory_errors.unwrap_or(false)
        } else {
            eh.ignore_file_errors.unwrap_or(false)
        };
        if ignored {
            summary.ignored_error_count += 1;
            self.stats.ignored_error_count += 1;
        } else {
            summary.fatal_error_count += 1;
            self.stats.error_count += 1;
        }
        if summary.failed_entries.len() < 10 {
            summary.failed_entries.push(EntryError {
                entry_path: rel.to_string(),
                error: e.to_string(),
            });
        }
        ProgressCounters::add(&self.progress.errors, 1);
    }

    fn report(&mut self) {
        let p = self.progress.get();
        (self.on_progress)(&p);
    }

    /// Uploads the tree at `dir` and returns its directory object and summary.
    fn upload_dir(
        &mut self,
        dir: &Path,
        previous: Option<&DirManifest>,
    ) -> Result<(ObjectId, DirectorySummary)> {
        let root = self.walk_dir(dir, "", previous)?;
        self.finish_pending(true)?;
        root.get()
            .cloned()
            .ok_or_else(|| RepoError::Invalid("directory upload did not finish".into()))
    }

    /// Walks `dir`: records its entries, queues the files to read, walks subdirectories, and
    /// leaves the directory pending until its files are read.
    fn walk_dir(
        &mut self,
        dir: &Path,
        rel: &str,
        previous: Option<&DirManifest>,
    ) -> Result<Arc<DirSlot>> {
        let mut summary = DirectorySummary::default();
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        let cache_dir = self.policy.files.ignore_cache_dirs.unwrap_or(true) && is_cache_dir(dir);
        match fs::read_dir(dir) {
            // A cache directory is kept, empty, as Kopia does.
            _ if cache_dir => {}
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => {
                            names.push((e.file_name().to_string_lossy().into_owned(), e.path()))
                        }
                        Err(err) => self.error(&mut summary, rel, err, true),
                    }
                }
            }
            Err(err) => self.error(&mut summary, rel, err, true),
        }
        names.sort();
        let rules_before = self.rules.len();
        for name in &self.policy.files.dot_ignore_files {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                self.rules.extend(crate::ignore::parse(rel, &text));
            }
        }
        let prev: HashMap<&str, &DirEntry> = previous
            .map(|p| p.entries.iter().map(|e| (e.name.as_str(), e)).collect())
            .unwrap_or_default();
        let mut entries = Vec::with_capacity(names.len());
        let mut files: Vec<(usize, String, Arc<JobSlot>)> = Vec::new();
        let mut subdirs: Vec<(usize, Arc<DirSlot>)> = Vec::new();
        // Counted in entry order once the reads are done.
        let mut file_entries: Vec<usize> = Vec::new();
        for (name, path) in names {
            if self.canceled() {
                summary.incomplete_reason = INCOMPLETE_CANCELED.into();
                break;
            }
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let md = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.error(&mut summary, &child_rel, e, false);
                    continue;
                }
            };
            if crate::ignore::is_ignored(&self.rules, &child_rel, md.is_dir()) {
                if md.is_dir() {
                    self.stats.excluded_dir_count += 1;
                } else {
                    self.stats.excluded_file_count += 1;
                    self.stats.excluded_total_file_size += md.len() as i64;
                }
                continue;
            }
            let (mode, uid, gid) = owner(&md);
            let mtime = mtime_nanos(&md);
            summary.max_mod_time = summary.max_mod_time.max(mtime);
            let ft = md.file_type();
            let mut entry = DirEntry {
                name: name.clone(),
                entry_type: EntryType::File,
                permissions: Permissions(mode),
                file_size: 0,
                mod_time: mtime,
                user_id: uid,
                group_id: gid,
                object_id: ObjectId::direct(kopr_format::index::ContentId::new(None, &[0])?),
                dir_summary: None,
            };
            if ft.is_dir() {
                let prev_dir = match prev.get(name.as_str()) {
                    Some(p) if p.entry_type == EntryType::Directory => {
                        read_object(self.repo.contents(), &p.object_id)
                            .ok()
                            .and_then(|b| DirManifest::decode(&b).ok())
                    }
                    _ => None,
                };
                let child = self.walk_dir(&path, &child_rel, prev_dir.as_ref())?;
                entry.entry_type = EntryType::Directory;
                subdirs.push((entries.len(), child));
                self.stats.total_directory_count += 1;
            } else if ft.is_symlink() {
                let target = match fs::read_link(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        self.error(&mut summary, &child_rel, e, false);
                        continue;
                    }
                };
                let bytes = target.to_string_lossy().into_owned().into_bytes();
                entry.entry_type = EntryType::Symlink;
                entry.file_size = bytes.len() as i64;
                entry.object_id = crate::object::write_object(
                    self.repo.contents(),
                    &bytes,
                    WriterOptions::default(),
                )?;
                summary.total_symlink_count += 1;
            } else if ft.is_file() {
                let size = md.len() as i64;
                entry.file_size = size;
                let cached = prev.get(name.as_str()).filter(|p| {
                    p.entry_type == EntryType::File && p.file_size == size && p.mod_time == mtime
                });
                file_entries.push(entries.len());
                if let Some(p) = cached {
                    entry.object_id = p.object_id.clone();
                    self.stats.cached_files += 1;
                    ProgressCounters::add(&self.progress.cached_files, 1);
                    ProgressCounters::add(&self.progress.cached_bytes, size as u64);
                } else {
                    let compression =
                        self.opts.compression.clone().or_else(|| {
                            self.policy.compressor_for(&name, size).map(str::to_string)
                        });
                    let slot = self.read_file(path.clone(), compression, size as u64)?;
                    files.push((entries.len(), child_rel.clone(), slot));
                }
            } else {
                continue; // sockets, fifos and devices are not backed up
            }
            self.report();
            entries.push(entry);
        }
        self.rules.truncate(rules_before);
        let out = Arc::new(DirSlot::new());
        self.pending.push_back(PendingDir {
            dir: dir.to_path_buf(),
            entries,
            summary,
            files,
            subdirs,
            file_entries,
            out: out.clone(),
        });
        self.finish_pending(false)?;
        Ok(out)
    }

    /// Hands a file to the workers (or reads it here when there are none).
    /// Small files go to the workers in batches (one hand-off, one wake-up for many files),
    /// a large one on its own.
    fn read_file(
        &mut self,
        path: PathBuf,
        compression: Option<String>,
        size: u64,
    ) -> Result<Arc<JobSlot>> {
        let slot = Arc::new(JobSlot::default());
        match &self.jobs {
            Some(_) => {
                self.batch.push(FileJob {
                    path,
                    compression,
                    slot: slot.clone(),
                });
                self.batch_bytes += size;
                if size >= SMALL_FILE
                    || self.batch.len() >= FILES_PER_BATCH
                    || self.batch_bytes >= SMALL_FILE
                {
                    self.send_batch()?;
                }
            }
            None => {
                let r = if self.canceled() {
                    Err(RepoError::Invalid(INCOMPLETE_CANCELED.into()))
                } else {
                    upload_counted(
                        self.repo,
                        compression.as_deref(),
                        &path,
                        &self.progress,
                        None,
                    )
                };
                slot.set(r);
            }
        }
        Ok(slot)
    }

    /// Hands the files gathered so far to the workers.
    fn send_batch(&mut self) -> Result<()> {
        self.batch_bytes = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match &self.jobs {
            Some(jobs) => jobs
                .send(batch)
                .map_err(|_| RepoError::Invalid("upload workers stopped".into())),
            None => Err(RepoError::Invalid("upload workers stopped".into())),
        }
    }

    /// Finishes pending directories in walk order: all of them when `wait`, else those whose
    /// files are all read.
    fn finish_pending(&mut self, wait: bool) -> Result<()> {
        if wait {
            self.send_batch()?;
        }
        while let Some(front) = self.pending.front() {
            if !wait && !front.ready() {
                break;
            }
            let Some(pd) = self.pending.pop_front() else {
                break;
            };
            self.finish_dir(pd)?;
        }
        Ok(())
    }

    /// Fills in a walked directory's read files and finished subdirectories, then writes it.
    fn finish_dir(&mut self, pd: PendingDir) -> Result<()> {
        let PendingDir {
            dir,
            mut entries,
            mut summary,
            files,
            subdirs,
            file_entries,
            out,
        } = pd;
        for (idx, child) in subdirs {
            let (oid, sub) = child.get().cloned().ok_or_else(|| {
                RepoError::Invalid("subdirectory finished after its parent".into())
            })?;
            summary.total_file_size += sub.total_file_size;
            summary.total_file_count += sub.total_file_count;
            summary.total_symlink_count += sub.total_symlink_count;
            summary.total_dir_count += sub.total_dir_count;
            summary.fatal_error_count += sub.fatal_error_count;
            summary.ignored_error_count += sub.ignored_error_count;
            if !sub.incomplete_reason.is_empty() {
                summary.incomplete_reason = sub.incomplete_reason.clone();
            }
            summary.max_mod_time = summary.max_mod_time.max(sub.max_mod_time);
            for fe in &sub.failed_entries {
                if summary.failed_entries.len() < 10 {
                    summary.failed_entries.push(fe.clone());
                }
            }
            entries[idx].object_id = oid;
            entries[idx].dir_summary = Some(sub);
        }
        let mut failed = Vec::new();
        for (idx, rel_path, slot) in files {
            match slot.take() {
                Ok((oid, len)) => {
                    // The size recorded is what was read, as Kopia does for a file that
                    // changed while it was read.
                    entries[idx].object_id = oid;
                    entries[idx].file_size = len as i64;
                    self.stats.non_cached_files += 1;
                }
                Err(RepoError::Invalid(m)) if m == INCOMPLETE_CANCELED => {
                    summary.incomplete_reason = INCOMPLETE_CANCELED.into();
                    failed.push(idx);
                }
                Err(e @ RepoError::Invalid(_)) => {
                    self.error(&mut summary, &rel_path, e, false);
                    failed.push(idx);
                }
                Err(e) => return Err(e),
            }
        }
        for idx in file_entries {
            if failed.contains(&idx) {
                continue;
            }
            let size = entries[idx].file_size;
            summary.total_file_count += 1;
            summary.total_file_size += size;
            self.stats.total_file_count += 1;
            self.stats.total_file_size += size;
        }
        failed.sort_unstable();
        for idx in failed.into_iter().rev() {
            entries.remove(idx);
        }
        self.report();
        // As Kopia: a directory counts itself, and an empty one takes its own mtime.
        summary.total_dir_count += 1;
        if entries.is_empty() {
            summary.max_mod_time = fs::metadata(&dir).map(|m| mtime_nanos(&m)).unwrap_or(0);
        }
        DirManifest::sort_entries(&mut entries);
        let manifest = DirManifest {
            stream: DIRECTORY_STREAM.into(),
            entries,
            summary: Some(summary.clone()),
        };
        let oid = crate::object::write_object(
            self.repo.contents(),
            &manifest.encode(),
            WriterOptions {
                prefix: Some(DIRECTORY_PREFIX),
                compression: Some(DEFAULT_METADATA_COMPRESSION.into()),
                metadata_compression: Some(DEFAULT_METADATA_COMPRESSION.into()),
                splitter: None,
            },
        )?;
        let _ = out.set((oid, summary));
        Ok(())
    }
}

/// Snapshots of `source`, oldest first.
pub fn list_snapshots(
    repo: &Repository,
    source: Option<&SourceInfo>,
) -> Result<Vec<SnapshotManifest>> {
    let labels = match source {
        Some(s) => s.labels(),
        None => [("type".to_string(), "snapshot".to_string())].into(),
    };
    let mut out = Vec::new();
    for e in repo.manifests().find(repo.contents(), &labels)? {
        let mut m: SnapshotManifest = serde_json::from_str(e.data.get()).map_err(|err| {
            RepoError::Invalid(format!("snapshot manifest {} is malformed: {err}", e.id))
        })?;
        m.id = e.id;
        out.push(m);
    }
    out.sort_by_key(|m| m.start_time);
    Ok(out)
}

/// Loads one snapshot by manifest id.
pub fn load_snapshot(repo: &Repository, id: &str) -> Result<SnapshotManifest> {
    let (e, mut m): (_, SnapshotManifest) = repo.manifests().get(repo.contents(), id)?;
    if e.labels.get("type").map(String::as_str) != Some("snapshot") {
        return Err(RepoError::Invalid(format!(
            "manifest {id} is not a snapshot"
        )));
    }
    m.id = e.id;
    Ok(m)
}

/// Takes a snapshot of `dir` as `source`, saves its manifest and flushes the repository.
pub fn create_snapshot(
    repo: &Repository,
    dir: &Path,
    source: &SourceInfo,
    opts: &UploadOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<SnapshotManifest> {
    let start = repo.contents().clock().now();
    let md = fs::metadata(dir)
        .map_err(|e| RepoError::Invalid(format!("cannot snapshot {}: {e}", dir.display())))?;
    if !md.is_dir() && !md.is_file() {
        return Err(RepoError::Invalid(format!(
            "cannot snapshot {}: not a directory or regular file",
            dir.display()
        )));
    }
    // The newest snapshot, complete or a checkpoint, supplies unchanged files.
    let previous = list_snapshots(repo, Some(source))?
        .into_iter()
        .next_back()
        .and_then(|m| m.root_entry)
        .filter(|r| r.entry_type == EntryType::Directory)
        .and_then(|r| read_object(repo.contents(), &r.object_id).ok())
        .and_then(|b| DirManifest::decode(&b).ok());
    let policy = crate::policy::effective(repo, source)?;
    let progress = opts.progress.clone().unwrap_or_default();
    if md.is_file() {
        progress.set_estimate(1, md.len(), true);
    } else if let Some(s) = previous.as_ref().and_then(|p| p.summary.as_ref()) {
        progress.set_estimate(
            u64::try_from(s.total_file_count).unwrap_or(0),
            u64::try_from(s.total_file_size).unwrap_or(0),
            false,
        );
    }
    let mut up = Uploader {
        repo,
        opts,
        jobs: None,
        batch: Vec::new(),
        batch_bytes: 0,
        pending: VecDeque::new(),
        stats: SnapshotStats::default(),
        progress: progress.clone(),
        on_progress,
        rules: crate::ignore::parse("", &policy.files.ignore_rules.join("\n")),
        policy,
    };
    let (mode, uid, gid) = owner(&md);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let root = if md.is_file() {
        let compression = opts.compression.clone().or_else(|| {
            up.policy
                .compressor_for(&name, md.len() as i64)
                .map(str::to_string)
        });
        let (oid, len) = upload_counted(repo, compression.as_deref(), dir, &progress, None)?;
        up.stats.total_file_count = 1;
        up.stats.non_cached_files = 1;
        up.stats.total_file_size = len as i64;
        up.report();
        DirEntry {
            name,
            entry_type: EntryType::File,
            permissions: Permissions(mode),
            file_size: len as i64,
            mod_time: mtime_nanos(&md),
            user_id: uid,
            group_id: gid,
            object_id: oid,
            dir_summary: None,
        }
    } else {
        let stop = AtomicBool::new(false);
        let failed = AtomicBool::new(false);
        let cancel = opts.cancel.clone();
        let halt = || {
            failed.load(Ordering::Relaxed)
                || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
        };
        // The policy's upload.maxParallelFileReads, else one reader per core.
        let workers = kopr_format::policy_fields::max_parallel_file_reads(&up.policy.extra)
            .unwrap_or_else(crate::parallelism);
        let (tx, rx) = std::sync::mpsc::sync_channel(workers * QUEUED_BATCHES_PER_WORKER);
        let rx = std::sync::Mutex::new(rx);
        let pool = Workers {
            repo,
            progress: &progress,
            idle: AtomicUsize::new(0),
            stop: &halt,
        };
        let uploaded = std::thread::scope(|s| {
            if opts.estimate {
                let before = progress.get();
                let est = Estimator {
                    progress: &progress,
                    stop: &stop,
                    dot_ignore_files: up.policy.files.dot_ignore_files.clone(),
                    rules: up.rules.clone(),
                    skip_cache_dirs: up.policy.files.ignore_cache_dirs.unwrap_or(true),
                    floor: (before.estimated_files, before.estimated_bytes),
                    files: 0,
                    bytes: 0,
                };
                s.spawn(move || est.run(dir));
            }
            let (pool, rx) = (&pool, &rx);
            for _ in 0..workers {
                s.spawn(move || pool.run(rx));
            }
            up.jobs = Some(tx);
            let r = up.upload_dir(dir, previous.as_ref());
            // Close the queue: workers end after their current file (all of them on error).
            up.jobs = None;
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            stop.store(true, Ordering::Relaxed);
            r
        });
        let (oid, summary) = uploaded?;
        DirEntry {
            name,
            entry_type: EntryType::Directory,
            permissions: Permissions(mode),
            file_size: 0,
            mod_time: mtime_nanos(&md),
            user_id: uid,
            group_id: gid,
            object_id: oid,
            dir_summary: Some(summary),
        }
    };
    let mut stats = up.stats;
    if root.entry_type == EntryType::Directory {
        stats.total_directory_count += 1;
    }
    let end = repo.contents().clock().now();
    let mut manifest = SnapshotManifest {
        id: String::new(),
        source: source.clone(),
        description: opts.description.clone(),
        start_time: start.timestamp_nanos_opt().unwrap_or(0),
        end_time: end.timestamp_nanos_opt().unwrap_or(0),
        stats,
        incomplete_reason: root
            .dir_summary
            .as_ref()
            .map(|s| s.incomplete_reason.clone())
            .unwrap_or_default(),
        root_entry: Some(root),
        tags: BTreeMap::new(),
        storage_stats: None,
        pins: vec![],
    };
    // Data and directories first, so the manifest never points at unwritten contents.
    repo.contents().flush()?;
    manifest.id = repo
        .manifests()
        .put(repo.contents(), source.labels(), &manifest)?;
    repo.flush()?;
    Ok(manifest)
}

/// Options of a restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Replace existing files.
    pub overwrite: bool,
    /// Restore owners (needs root; a refused change of owner is ignored, as Kopia does).
    pub restore_owners: bool,
    /// Restore every entry that can be restored and report the others in
    /// [`RestoreStats::failed`] instead of stopping at the first error.
    pub ignore_errors: bool,
}

/// Counters of a restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Entries not restored (with `ignore_errors`).
    pub failed: u64,
}

fn io_err(p: &Path, e: std::io::Error) -> RepoError {
    RepoError::Invalid(format!("{}: {e}", p.display()))
}

/// Restores the tree of `entry` (a directory, file or symlink) to `dest`.
pub fn restore(
    repo: &Repository,
    entry: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
) -> Result<RestoreStats> {
    restore_reporting(repo, entry, dest, opts, &mut |_, _| {})
}

/// [`restore`], calling `on_error(path, error)` for each entry not restored when
/// `opts.ignore_errors` is set.
pub fn restore_reporting(
    repo: &Repository,
    entry: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
    on_error: &mut dyn FnMut(&Path, &RepoError),
) -> Result<RestoreStats> {
    create_parents(dest)?;
    if entry.entry_type == EntryType::Directory && dest.exists() && !opts.overwrite {
        let non_empty = fs::read_dir(dest)
            .map(|mut d| d.any(|e| e.map_or(true, |e| !is_restore_temporary(&e.file_name()))))
            .unwrap_or(true);
        if non_empty {
            return Err(RepoError::Invalid(format!(
                "{} already exists and is not empty (use --overwrite to restore into it)",
                dest.display()
            )));
        }
    }
    let failed = AtomicBool::new(false);
    let skipped: std::sync::Mutex<Vec<(PathBuf, RepoError)>> = std::sync::Mutex::new(Vec::new());
    let mut restorer = Restorer {
        repo,
        opts,
        batch: Vec::new(),
        batch_bytes: 0,
        dirs: Vec::new(),
        stats: RestoreStats::default(),
        failed: &failed,
        skipped: &skipped,
    };
    // Files go in batches that read each pack once; the last batch after the walk.
    restorer.restore_entry(entry, dest)?;
    restorer.run_batch()?;
    // Directories last, deepest first, so writing their files does not change their times.
    let mut skipped = skipped
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (e, path) in restorer.dirs.iter().rev() {
        match set_metadata(e, path, opts) {
            Err(err) if opts.ignore_errors => skipped.push((path.clone(), err)),
            r => r?,
        }
    }
    let mut stats = restorer.stats;
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    stats.failed = skipped.len() as u64;
    for (path, err) in &skipped {
        on_error(path, err);
    }
    Ok(stats)
}

/// Creates the missing parent directories of a restore target, as Kopia does.
fn create_parents(dest: &Path) -> Result<()> {
    let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    // A file among the parents is named, rather than reported as "File exists".
    if let Some(file) = parent
        .ancestors()
        .find(|a| fs::symlink_metadata(a).is_ok())
        .filter(|a| !a.is_dir())
    {
        return Err(RepoError::Invalid(format!(
            "cannot restore to {}: {} is a file, not a directory; choose another target",
            dest.display(),
            file.display()
        )));
    }
    fs::create_dir_all(parent).map_err(|err| io_err(parent, err))
}

/// The name prefix of the temporary files a restore writes before renaming them.
const RESTORE_TEMPORARY_PREFIX: &str = ".kopr-restore-";

fn is_restore_temporary(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(RESTORE_TEMPORARY_PREFIX)
}

/// Temporary files being written by restores in this process, for [`remove_restore_temporaries`].
static RESTORE_TEMPORARIES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Creates a restore's temporary file for `dest`, registered so that an interrupt can remove it.
fn create_restore_temporary(dest: &Path) -> Result<(PathBuf, fs::File)> {
    let tmp = dest.with_file_name(format!(
        "{RESTORE_TEMPORARY_PREFIX}{:016x}",
        rand::random::<u64>()
    ));
    // Created under the lock: once an interrupt holds it, no temporary file appears unlisted.
    let mut live = RESTORE_TEMPORARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let f = fs::File::create(&tmp).map_err(|err| io_err(&tmp, err))?;
    live.push(tmp.clone());
    drop(live);
    // Tests interrupt a restore here: it says where it is and waits for the signal.
    if std::env::var_os("KOPR_TEST_STALL_RESTORE").is_some() {
        eprintln!("writing {}", tmp.display());
        loop {
            std::thread::park();
        }
    }
    Ok((tmp, f))
}

/// Forgets a temporary file that was renamed or removed.
fn forget_restore_temporary(tmp: &Path) {
    let mut live = RESTORE_TEMPORARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    live.retain(|p| p != tmp);
}

/// Removes the temporary files of restores under way, for an interrupt handler about to end
/// the process: it keeps the lock, so no restore creates another one afterwards.
pub fn remove_restore_temporaries() {
    let live = RESTORE_TEMPORARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for p in live.iter() {
        let _ = fs::remove_file(p);
    }
    std::mem::forget(live);
}

/// Removes the temporary files a killed restore left in `dir`.
fn remove_leftover_temporaries(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if is_restore_temporary(&e.file_name()) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Sets the owner of a restored entry (the link itself for a symlink); a refused change is
/// ignored, as Kopia ignores permission errors by default.
fn restore_owner(e: &DirEntry, dest: &Path, opts: RestoreOptions) {
    #[cfg(unix)]
    if opts.restore_owners {
        let _ = std::os::unix::fs::lchown(dest, Some(e.user_id), Some(e.group_id));
    }
    #[cfg(not(unix))]
    let _ = (e, dest, opts);
}

/// The walk of a restore: creates directories and symlinks, and gathers files into batches
/// ([`restore_batch`]).
struct Restorer<'a> {
    repo: &'a Repository,
    opts: RestoreOptions,
    /// Files to restore with the next batch, and their bytes.
    batch: Vec<(DirEntry, PathBuf)>,
    batch_bytes: u64,
    /// Directories created, in walk order, for their metadata at the end.
    dirs: Vec<(DirEntry, PathBuf)>,
    stats: RestoreStats,
    failed: &'a AtomicBool,
    /// Entries not restored, with `ignore_errors`.
    skipped: &'a std::sync::Mutex<Vec<(PathBuf, RepoError)>>,
}

impl Restorer<'_> {
    /// Restores the files gathered so far.
    fn run_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let r = restore_batch::restore_files(self.repo, files, self.opts, self.failed)?;
        self.stats.files += r.files;
        self.stats.bytes += r.bytes;
        if !r.skipped.is_empty() {
            if let Ok(mut v) = self.skipped.lock() {
                v.extend(r.skipped);
            }
        }
        Ok(())
    }

    /// Restores one entry; with `ignore_errors` a failure is recorded and the walk goes on.
    fn restore_entry(&mut self, e: &DirEntry, dest: &Path) -> Result<()> {
        match self.restore_one(e, dest) {
            Err(err) if self.opts.ignore_errors => {
                if let Ok(mut v) = self.skipped.lock() {
                    v.push((dest.to_path_buf(), err));
                }
                Ok(())
            }
            r => r,
        }
    }

    fn restore_one(&mut self, e: &DirEntry, dest: &Path) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Ok(()); // a worker failed: its error is reported
        }
        match e.entry_type {
            EntryType::Directory => {
                if fs::symlink_metadata(dest).is_ok_and(|m| !m.is_dir()) {
                    return Err(RepoError::Invalid(format!(
                        "{}: the snapshot has a directory here, but a file is in the way; move it away or restore to another target",
                        dest.display()
                    )));
                }
                fs::create_dir_all(dest).map_err(|err| io_err(dest, err))?;
                remove_leftover_temporaries(dest);
                let dm = DirManifest::decode(&restore_batch::read_small_object(
                    self.repo,
                    &e.object_id,
                )?)?;
                for child in &dm.entries {
                    if child.name.is_empty()
                        || child.name == "."
                        || child.name == ".."
                        || child.name.contains('/')
                    {
                        return Err(RepoError::Invalid(format!(
                            "unsafe entry name {:?} in directory {}",
                            child.name, e.object_id
                        )));
                    }
                    self.restore_entry(child, &dest.join(&child.name))?;
                }
                self.stats.dirs += 1;
                self.dirs.push((e.clone(), dest.to_path_buf()));
            }
            EntryType::File => {
                self.batch.push((e.clone(), dest.to_path_buf()));
                self.batch_bytes += e.file_size.max(0) as u64;
                if self.batch.len() >= restore_batch::BATCH_FILES
                    || self.batch_bytes >= restore_batch::BATCH_BYTES
                {
                    self.run_batch()?;
                }
            }
            EntryType::Symlink => {
                let target = String::from_utf8_lossy(&restore_batch::read_small_object(
                    self.repo,
                    &e.object_id,
                )?)
                .into_owned();
                if fs::symlink_metadata(dest).is_ok() {
                    if !self.opts.overwrite {
                        return Err(RepoError::Invalid(format!(
                            "{} already exists (use --overwrite)",
                            dest.display()
                        )));
                    }
                    fs::remove_file(dest).map_err(|err| io_err(dest, err))?;
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, dest).map_err(|err| io_err(dest, err))?;
                set_metadata(e, dest, self.opts)?;
                self.stats.symlinks += 1;
            }
            EntryType::Unknown => {}
        }
        Ok(())
    }
}

/// Writes an object's chunks to `f` in order; returns its length.
fn write_object_to(
    repo: &Repository,
    oid: &ObjectId,
    f: &mut fs::File,
    dest: &Path,
) -> Result<u64> {
    let cm = repo.contents();
    let mut total = 0u64;
    for chunk in object_entries(cm, oid)? {
        let data = read_object(cm, &chunk.object)?;
        if data.len() as u64 != chunk.length {
            return Err(RepoError::Invalid(format!(
                "chunk {} has {} bytes, index says {}",
                chunk.object,
                data.len(),
                chunk.length
            )));
        }
        f.write_all(&data).map_err(|err| io_err(dest, err))?;
        total += data.len() as u64;
    }
    Ok(total)
}

/// Writes one file (through a temporary name) and sets its metadata; returns its length.
fn restore_file(repo: &Repository, e: &DirEntry, dest: &Path, opts: RestoreOptions) -> Result<u64> {
    if dest.exists() && !opts.overwrite {
        return Err(RepoError::Invalid(format!(
            "{} already exists (use --overwrite)",
            dest.display()
        )));
    }
    if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(RepoError::Invalid(format!(
            "{}: the snapshot has a file here, but a directory is in the way; move it away or restore to another target",
            dest.display()
        )));
    }
    let (tmp, mut f) = create_restore_temporary(dest)?;
    let written = write_object_to(repo, &e.object_id, &mut f, dest);
    drop(f);
    let n = match written {
        Ok(n) => n,
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            forget_restore_temporary(&tmp);
            return Err(err);
        }
    };
    let renamed = fs::rename(&tmp, dest).map_err(|err| io_err(dest, err));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    forget_restore_temporary(&tmp);
    renamed?;
    set_metadata(e, dest, opts)?;
    Ok(n)
}

/// Sets an entry's owner (when asked), permissions and modification time on `dest`, without
/// following a symlink. Owners go first: `chown` clears setuid and setgid. A mode of 0 is a
/// real mode (Kopia omits the field), and a symlink has no mode of its own.
fn set_metadata(e: &DirEntry, dest: &Path, opts: RestoreOptions) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        restore_owner(e, dest, opts);
        if e.entry_type != EntryType::Symlink {
            fs::set_permissions(dest, fs::Permissions::from_mode(e.permissions.0 & 0o7777))
                .map_err(|err| io_err(dest, err))?;
        }
    }
    let nanos = e.mod_time;
    let t = filetime::FileTime::from_unix_time(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_symlink_file_times(dest, t, t).map_err(|err| io_err(dest, err))
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects (files, directories, symlinks) checked.
    pub objects: u64,
    /// Contents read and authenticated.
    pub contents: u64,
    /// Bytes read.
    pub bytes: u64,
    /// `path: error` for every damaged entry.
    pub errors: Vec<String>,
}

/// Re-reads every content below `root`, authenticating and decompressing it.
pub fn verify(repo: &Repository, root: &DirEntry, root_path: &str) -> VerifyReport {
    verify_with(
        repo,
        root,
        root_path,
        &VerifyOptions::default(),
        &mut std::collections::HashSet::new(),
    )
}

/// How [`verify_with`] checks files.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Percentage of files (picked at random) whose contents are read, authenticated and
    /// decoded; the others are checked for index entries of all their contents, as Kopia's
    /// `--verify-files-percent` does. Directories are always read.
    pub files_percent: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            files_percent: 100.0,
        }
    }
}

/// [`verify`] with options; objects in `seen` (filled as it goes) are not checked again, so
/// that the snapshots of one source, which share most objects, are verified in one pass's time.
pub fn verify_with(
    repo: &Repository,
    root: &DirEntry,
    root_path: &str,
    opts: &VerifyOptions,
    seen: &mut std::collections::HashSet<ObjectId>,
) -> VerifyReport {
    let workers = crate::parallelism();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(DirEntry, String, VerifySlot)>(workers * 4);
    let rx = std::sync::Mutex::new(rx);
    // What the walk found, in walk order: its own findings and the files' slots.
    let mut order: Vec<Result<VerifyReport, VerifySlot>> = Vec::new();
    // Files not read are checked against the pack blobs, as Kopia does: listed once.
    let packs = if opts.files_percent < 100.0 {
        match pack_blob_lengths(repo) {
            Ok(p) => Some(p),
            Err(err) => {
                order.push(Ok(VerifyReport {
                    errors: vec![format!("cannot list pack blobs: {err}")],
                    ..Default::default()
                }));
                None
            }
        }
    } else {
        None
    };
    let packs = packs.as_ref();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let job = file_pool::next_job(&rx);
                let Some((e, path, slot)) = job else { break };
                let mut r = VerifyReport::default();
                let read = opts.files_percent >= 100.0
                    || rand::random::<f64>() * 100.0 < opts.files_percent;
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if read {
                        check_object(repo, &e, &path, &mut r);
                    } else {
                        check_presence(repo, &e, &path, packs, &mut r);
                    }
                }));
                if checked.is_err() {
                    r.errors
                        .push(format!("{path}: verification worker panicked"));
                }
                if let Ok(mut g) = slot.lock() {
                    *g = Some(r);
                };
            });
        }
        let mut walk = VerifyWalk {
            repo,
            files: tx,
            order: &mut order,
            seen,
        };
        walk.entry(root, root_path);
    });
    let mut report = VerifyReport::default();
    for item in order {
        let part = match item {
            Ok(r) => r,
            Err(slot) => slot
                .lock()
                .ok()
                .and_then(|mut g| g.take())
                .unwrap_or_else(|| VerifyReport {
                    errors: vec!["verification worker failed".into()],
                    ..Default::default()
                }),
        };
        report.objects += part.objects;
        report.contents += part.contents;
        report.bytes += part.bytes;
        report.errors.extend(part.errors);
    }
    report
}

/// Where a worker leaves the findings of one file.
type VerifySlot = Arc<std::sync::Mutex<Option<VerifyReport>>>;

/// The walk of [`verify`]: reads directories itself and hands files to the workers.
struct VerifyWalk<'a> {
    repo: &'a Repository,
    files: std::sync::mpsc::SyncSender<(DirEntry, String, VerifySlot)>,
    order: &'a mut Vec<Result<VerifyReport, VerifySlot>>,
    seen: &'a mut std::collections::HashSet<ObjectId>,
}

impl VerifyWalk<'_> {
    fn entry(&mut self, e: &DirEntry, path: &str) {
        if !self.seen.insert(e.object_id.clone()) {
            return; // verified already, under this or another snapshot
        }
        if e.entry_type != EntryType::Directory {
            let slot = Arc::new(std::sync::Mutex::new(None));
            if self
                .files
                .send((e.clone(), path.to_string(), slot.clone()))
                .is_err()
            {
                let mut r = VerifyReport::default();
                check_object(self.repo, e, path, &mut r);
                self.order.push(Ok(r));
            } else {
                self.order.push(Err(slot));
            }
            return;
        }
        let mut r = VerifyReport::default();
        let children = match check_object(self.repo, e, path, &mut r)
            .map(|bytes| DirManifest::decode(&bytes))
        {
            Some(Ok(dm)) => dm.entries,
            Some(Err(err)) => {
                r.errors.push(format!("{path}: {err}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        self.order.push(Ok(r));
        for child in &children {
            self.entry(child, &format!("{path}/{}", child.name));
        }
    }
}

/// The length of every pack blob (`p` and `q`).
fn pack_blob_lengths(repo: &Repository) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for prefix in [
        kopr_format::pack::PACK_PREFIX_DATA,
        kopr_format::pack::PACK_PREFIX_METADATA,
    ] {
        for bm in repo.storage().list_all(prefix)? {
            out.insert(bm.id, bm.length);
        }
    }
    Ok(out)
}

/// Checks that every chunk of `e`'s object has a live index entry and, given the pack blobs'
/// lengths, that its pack exists and is long enough to hold it, without reading it.
fn check_presence(
    repo: &Repository,
    e: &DirEntry,
    path: &str,
    packs: Option<&HashMap<String, u64>>,
    report: &mut VerifyReport,
) {
    let cm = repo.contents();
    report.objects += 1;
    let entries = match crate::object::object_entries(cm, &e.object_id) {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(format!("{path}: {err}"));
            return;
        }
    };
    for chunk in &entries {
        let Some(cid) = chunk.object.content_id() else {
            report
                .errors
                .push(format!("{path}: chunk {} is not a content", chunk.object));
            continue;
        };
        match cm.content_info(&cid) {
            Ok(Some(info)) if !info.deleted => {
                report.contents += 1;
                let end = u64::from(info.pack_offset) + u64::from(info.packed_length);
                match packs.map(|p| p.get(&info.pack_blob_id)) {
                    Some(None) => report.errors.push(format!(
                        "{path}: object {} is backed by missing blob {}",
                        e.object_id, info.pack_blob_id
                    )),
                    Some(Some(&len)) if end > len => report.errors.push(format!(
                        "{path}: content {cid} of object {} ends at byte {end} of blob {}, which has {len} bytes",
                        e.object_id, info.pack_blob_id
                    )),
                    _ => {}
                }
            }
            Ok(_) => report.errors.push(format!(
                "{path}: {}",
                RepoError::ContentNotFound(cid.to_string())
            )),
            Err(err) => report.errors.push(format!("{path}: {err}")),
        }
    }
}

/// Reads every chunk of `e`'s object, counting and recording damage in `report`; returns the
/// object's bytes for a directory (empty for other entries), `None` when its chunk list is
/// unreadable.
fn check_object(
    repo: &Repository,
    e: &DirEntry,
    path: &str,
    report: &mut VerifyReport,
) -> Option<Vec<u8>> {
    let cm = repo.contents();
    report.objects += 1;
    let entries = match crate::object::object_entries(cm, &e.object_id) {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(format!("{path}: {err}"));
            return None;
        }
    };
    let mut dir_bytes = Vec::new();
    for chunk in &entries {
        match read_object(cm, &chunk.object) {
            Ok(b) => {
                report.contents += 1;
                report.bytes += b.len() as u64;
                if b.len() as u64 != chunk.length {
                    report.errors.push(format!(
                        "{path}: chunk {} has {} bytes, expected {}",
                        chunk.object,
                        b.len(),
                        chunk.length
                    ));
                }
                if e.entry_type == EntryType::Directory {
                    dir_bytes.extend_from_slice(&b);
                }
            }
            Err(err) => report.errors.push(format!("{path}: {err}")),
        }
    }
    Some(dir_bytes)
}

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Present only in the second tree.
    Added(String, EntryType),
    /// Present only in the first tree.
    Removed(String, EntryType),
    /// Present in both with different contents or metadata.
    Modified(String, EntryType),
}

/// Differences between two directory entries' trees; identical subtrees are skipped by id.
pub fn diff(repo: &Repository, a: &DirEntry, b: &DirEntry) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_dirs(repo, a, b, ".", &mut out)?;
    Ok(out)
}

fn diff_dirs(
    repo: &Repository,
    a: &DirEntry,
    b: &DirEntry,
    path: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a.object_id == b.object_id {
        return Ok(());
    }
    let load = |e: &DirEntry| -> Result<BTreeMap<String, DirEntry>> {
        let dm = DirManifest::decode(&read_object(repo.contents(), &e.object_id)?)?;
        Ok(dm
            .entries
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect())
    };
    let (left, right) = (load(a)?, load(b)?);
    for (name, l) in &left {
        let p = format!("{path}/{name}");
        match right.get(name) {
            None => out.push(Change::Removed(p, l.entry_type)),
            Some(r)
                if l.entry_type == EntryType::Directory && r.entry_type == EntryType::Directory =>
            {
                diff_dirs(repo, l, r, &p, out)?;
            }
            Some(r) => {
                if l.object_id != r.object_id
                    || l.entry_type != r.entry_type
                    || l.permissions != r.permissions
                {
                    out.push(Change::Modified(p, r.entry_type));
                }
            }
        }
    }
    for (name, r) in &right {
        if !left.contains_key(name) {
            out.push(Change::Added(format!("{path}/{name}"), r.entry_type));
        }
    }
    Ok(())
}

/// Storage used by snapshots, as in Kopia's `storageStats` (`newData`, `runningTotal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageUsage {
    /// Bytes of new file objects.
    #[serde(rename = "objectBytes")]
    pub object_bytes: i64,
    /// Original bytes of new file contents.
    #[serde(rename = "originalContentBytes")]
    pub original_content_bytes: i64,
    /// Packed bytes of new file contents.
    #[serde(rename = "packedContentBytes")]
    pub packed_content_bytes: i64,
    /// New file objects.
    #[serde(rename = "fileObjects")]
    pub file_objects: i32,
    /// New directory objects.
    #[serde(rename = "dirObjects")]
    pub dir_objects: i32,
    /// New contents.
    #[serde(rename = "contents")]
    pub contents: i32,
}

/// For each snapshot (oldest first), the storage it added and the running total.
pub fn storage_stats(
    repo: &Repository,
    snaps: &[SnapshotManifest],
) -> Result<Vec<(StorageUsage, StorageUsage)>> {
    let mut seen_objects = std::collections::HashSet::new();
    let mut seen_contents = std::collections::HashSet::new();
    let mut total = StorageUsage::default();
    let mut out = Vec::with_capacity(snaps.len());
    for m in snaps {
        let mut new = StorageUsage::default();
        if let Some(root) = &m.root_entry {
            let mut stack = vec![root.clone()];
            while let Some(e) = stack.pop() {
                if !seen_objects.insert(e.object_id.clone()) {
                    continue;
                }
                let is_dir = e.entry_type == EntryType::Directory;
                if is_dir {
                    new.dir_objects += 1;
                } else {
                    new.file_objects += 1;
                    new.object_bytes += e.file_size;
                }
                for cid in object_content_ids(repo, &e.object_id)? {
                    if !seen_contents.insert(cid) {
                        continue;
                    }
                    new.contents += 1;
                    if !is_dir {
                        if let Some(info) = repo.contents().content_info(&cid)? {
                            new.original_content_bytes += i64::from(info.original_length);
                            new.packed_content_bytes += i64::from(info.packed_length);
                        }
                    }
                }
                if is_dir {
                    let dm = DirManifest::decode(&read_object(repo.contents(), &e.object_id)?)?;
                    stack.extend(dm.entries);
                }
            }
        }
        total.object_bytes += new.object_bytes;
        total.original_content_bytes += new.original_content_bytes;
        total.packed_content_bytes += new.packed_content_bytes;
        total.file_objects += new.file_objects;
        total.dir_objects += new.dir_objects;
        total.contents += new.contents;
        out.push((new, total));
    }
    Ok(out)
}

/// Every content an object uses: its chunks and, for indirect objects, its chunk lists.
pub fn object_content_ids(
    repo: &Repository,
    oid: &ObjectId,
) -> Result<Vec<kopr_format::index::ContentId>> {
    let mut out = Vec::new();
    let mut current = Some(oid.clone());
    while let Some(o) = current {
        match o.index_object_id() {
            None => {
                if let Some(c) = o.content_id() {
                    out.push(c);
                }
                current = None;
            }
            Some(index) => {
                for chunk in crate::object::object_entries(repo.contents(), &o)? {
                    if let Some(c) = chunk.object.content_id() {
                        out.push(c);
                    }
                }
                current = Some(index);
            }
        }
    }
    Ok(out)
}
