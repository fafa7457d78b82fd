//! Taking a snapshot: [`create_snapshot`] sets up the upload (previous snapshot, policy,
//! estimate, workers), reads a single file or walks a directory tree (`upload_walk`,
//! `dir_builder`, the worker pool in `file_pool`), then saves the snapshot manifest.
//!
//! Files whose size and modification time match the previous snapshot of the same source are
//! not read again: their object ids are reused. Unreadable entries are recorded as errors in
//! the directory summaries and the snapshot stats, and the snapshot goes on.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use kopr_format::compression::{self, Compressor};
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{
    DirEntry, DirManifest, EntryType, Permissions, SnapshotManifest, SnapshotStats, SourceInfo,
};
use kopr_format::splitter::SplitterFactory;

use super::file_pool::{FileCompression, Job, Workers};
use super::local_file::LocalFile;
use super::upload_estimate::Estimator;
use super::upload_walk::{Uploader, QUEUED_BATCHES_PER_WORKER};
use super::{list_snapshots, Progress, ProgressCounters};
use crate::error::{RepoError, Result};
use crate::object::{read_object, ObjectWriter, WriterOptions};
use crate::repository::Repository;

/// How a snapshot is taken.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Compressor for file contents, `none` included, over the policy's (`None`: the policy's).
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

/// Reads one file into an object; `progress` counts bytes as they are read. With `spare`, the
/// chunks are stored on idle pool workers too (see [`ObjectWriter::with_spare_workers`]).
///
/// A file that ends before `single_chunk` bytes (the splitter's shortest cut, see
/// [`crate::object::single_chunk_limit`]) is stored as one content straight from the read
/// buffer, as the object writer would store it, without setting one up.
///
/// A file that changes while it is read is stored as read: reads stop at the first end of file,
/// so the object holds the bytes seen (Kopia does the same and records the object's length).
///
/// With `keep`, such a short file is not stored: its bytes are appended to `keep`, for the
/// caller to store with others ([`FileRead::Kept`]).
fn upload_file(
    repo: &Repository,
    compression: FileCompression,
    file: &LocalFile<'_>,
    progress: &ProgressCounters,
    spare: Option<&AtomicUsize>,
    objects: ObjectSettings,
    keep: Option<&mut Vec<u8>>,
) -> Result<FileRead> {
    let path = file.path;
    let (mut f, sized) = file.open_sized().map_err(|e| local(path, e))?;
    let file = &sized;
    let compression = compression.of_size(file.size);
    thread_local! {
        /// One read buffer per thread, reused file after file (no allocation per file).
        static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    READ_BUF.with(|cell| -> Result<FileRead> {
        let mut taken = cell.try_borrow_mut().ok();
        let mut own = Vec::new();
        let buf: &mut Vec<u8> = taken.as_deref_mut().unwrap_or(&mut own);
        buf.resize(READ_BUFFER, 0);
        // Fill the buffer once, up to the end of the file or of the buffer.
        let (filled, eof) = file
            .fill(&mut f, buf, |n| {
                ProgressCounters::add(&progress.hashed_bytes, n as u64)
            })
            .map_err(|e| local(path, e))?;
        if eof && filled < objects.single_chunk {
            if let Some(keep) = keep {
                keep.extend_from_slice(&buf[..filled]);
                return Ok(FileRead::Kept(filled, compression));
            }
            let oid =
                crate::object::write_single_chunk(repo.contents(), &buf[..filled], compression)?;
            return Ok(FileRead::Stored(oid, filled as u64));
        }
        let opts = WriterOptions {
            metadata_compression: objects.metadata,
            splitter: objects.splitter.map(|s| s.name().to_string()),
            ..WriterOptions::file_data(compression)
        };
        let mut w = ObjectWriter::new(repo.contents(), opts)?;
        if let Some(spare) = spare {
            w = w.with_spare_workers(spare);
        }
        w.write_bytes(&buf[..filled])?;
        let mut total = filled as u64;
        if !eof {
            loop {
                let n = f.read(buf).map_err(|e| local(path, e))?;
                if n == 0 {
                    break;
                }
                w.write_bytes(&buf[..n])?;
                total += n as u64;
                ProgressCounters::add(&progress.hashed_bytes, n as u64);
            }
        }
        Ok(FileRead::Stored(w.result()?, total))
    })
}

/// What [`upload_file`] did with a file.
pub(super) enum FileRead {
    /// Stored: its object and the bytes read into it.
    Stored(ObjectId, u64),
    /// Read whole (this many bytes) into the caller's buffer, to be stored by the caller with
    /// this compressor.
    Kept(usize, Option<&'static Compressor>),
}

/// A failed read of the local file `path`.
fn local(path: &Path, source: std::io::Error) -> RepoError {
    RepoError::Local {
        path: path.to_path_buf(),
        source,
    }
}

/// Size of the reads of file data.
const READ_BUFFER: usize = 1 << 20;

/// How an upload writes objects.
#[derive(Clone, Copy)]
pub(super) struct ObjectSettings {
    /// The policy's splitter of file data (Kopia's `splitter.algorithm`); the repository's
    /// when none.
    pub splitter: Option<SplitterFactory>,
    /// Files shorter than this are one chunk (see [`upload_file`]): the shortest cut of the
    /// splitter files are cut by.
    pub single_chunk: usize,
    /// The compressor of directory listings and of large files' chunk lists: the policy's
    /// `metadataCompression`, as Kopia applies it.
    pub metadata: Option<&'static Compressor>,
}

impl ObjectSettings {
    fn of(repo: &Repository, policy: &kopr_format::policy::Policy) -> Result<ObjectSettings> {
        let splitter = policy
            .splitter_name()
            .map(SplitterFactory::new)
            .transpose()?;
        Ok(ObjectSettings {
            splitter,
            single_chunk: match splitter {
                Some(s) => s.min_segment_size(),
                None => crate::object::single_chunk_limit(repo.contents())?,
            },
            metadata: match policy.metadata_compressor_name() {
                None => Some(compression::metadata_default()),
                Some(name) => compression::resolve(Some(name))?,
            },
        })
    }
}

/// [`upload_file`] counted as a file in flight, then (once stored) as a hashed file. With
/// `keep`, a short file's bytes are kept there instead of stored ([`FileRead::Kept`]): the
/// caller stores it, then calls [`counted_done`] for it.
pub(super) fn upload_counted(
    repo: &Repository,
    compression: FileCompression,
    file: &LocalFile<'_>,
    progress: &ProgressCounters,
    spare: Option<&AtomicUsize>,
    objects: ObjectSettings,
    keep: Option<&mut Vec<u8>>,
) -> Result<FileRead> {
    ProgressCounters::add(&progress.hashing_files, 1);
    let r = upload_file(repo, compression, file, progress, spare, objects, keep);
    if !matches!(r, Ok(FileRead::Kept(..))) {
        counted_done(progress, r.is_ok());
    }
    r
}

impl FileRead {
    /// The object of a file read without `keep` (which is always stored).
    pub(super) fn stored(self) -> Result<(ObjectId, u64)> {
        match self {
            FileRead::Stored(oid, len) => Ok((oid, len)),
            FileRead::Kept(..) => Err(RepoError::Worker("a file was kept unasked".into())),
        }
    }
}

/// Counts a file no longer in flight, and hashed if it was stored.
pub(super) fn counted_done(progress: &ProgressCounters, stored: bool) {
    progress.hashing_files.fetch_sub(1, Ordering::Relaxed);
    if stored {
        ProgressCounters::add(&progress.hashed_files, 1);
    }
}

/// The name of the file that marks a cache directory (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// How a `CACHEDIR.TAG` starts.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Whether `dir` holds a regular `CACHEDIR.TAG` that starts with the standard signature.
pub(super) fn is_cache_dir(dir: &Path) -> bool {
    let tag = dir.join(CACHEDIR_TAG);
    if !fs::symlink_metadata(&tag).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    fs::File::open(&tag)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
}

pub(super) fn mtime_nanos(md: &fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| chrono::DateTime::<chrono::Utc>::from(t).timestamp_nanos_opt())
        .unwrap_or(0)
}

#[cfg(unix)]
pub(super) fn owner(md: &fs::Metadata) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    (md.mode() & 0o7777, md.uid(), md.gid())
}

#[cfg(not(unix))]
pub(super) fn owner(md: &fs::Metadata) -> (u32, u32, u32) {
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

/// Takes a snapshot of `dir` as `source`, saves its manifest and flushes the repository; the
/// manifest of [`create_snapshot_outcome`] whatever it was.
pub fn create_snapshot(
    repo: &Repository,
    dir: &Path,
    source: &SourceInfo,
    opts: &UploadOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<SnapshotManifest> {
    create_snapshot_outcome(repo, dir, source, opts, on_progress).map(Created::into_manifest)
}

/// What [`create_snapshot_outcome`] did.
#[derive(Debug)]
pub enum Created {
    /// The new snapshot, saved.
    Saved(SnapshotManifest),
    /// Not saved: the policy's `retention.ignoreIdenticalSnapshots` is set and the new
    /// snapshot's root is the same object as that of the newest complete snapshot of the
    /// source, whose manifest this is.
    Identical(SnapshotManifest),
}

impl Created {
    /// The manifest, saved or found.
    pub fn into_manifest(self) -> SnapshotManifest {
        match self {
            Created::Saved(m) | Created::Identical(m) => m,
        }
    }
}

/// Takes a snapshot of `dir` as `source` and saves its manifest, unless the policy ignores
/// identical snapshots and it is one (as Kopia's `snapshot create` does); flushes the
/// repository either way.
pub fn create_snapshot_outcome(
    repo: &Repository,
    dir: &Path,
    source: &SourceInfo,
    opts: &UploadOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Created> {
    let start = repo.contents().clock().now();
    let md = source_metadata(dir)?;
    // One listing of the source's snapshots: the newest supplies unchanged files, the newest
    // complete one is what an identical snapshot is compared with.
    let snapshots = list_snapshots(repo, Some(source))?;
    let previous = previous_root(repo, snapshots.last());
    let newest_complete = snapshots
        .into_iter()
        .rev()
        .find(|m| m.incomplete_reason.is_empty());
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
        batch_unsized: 0,
        unsized_read: Default::default(),
        pending: VecDeque::new(),
        extensions: Default::default(),
        stats: SnapshotStats::default(),
        progress,
        on_progress,
        rules: crate::ignore::parse("", &policy.files.ignore_rules.join("\n")),
        forced_compressor: opts
            .compression
            .as_deref()
            .map(|name| compression::resolve(Some(name)))
            .transpose()?,
        policy_compressor: compression::resolve(Some(&policy.compression.compressor_name))?,
        objects: ObjectSettings::of(repo, &policy)?,
        file_limits: super::file_limits::FileLimits::of(&policy),
        policy,
    };
    let root = if md.is_file() {
        upload_root_file(&mut up, dir, &md)?
    } else {
        upload_root_dir(&mut up, dir, &md, previous.as_ref())?
    };
    let stats = up.stats;
    if up.policy.retention.ignore_identical_snapshots == Some(true) {
        if let Some(newest) = newest_complete
            .filter(|m| m.root_entry.as_ref().map(|r| &r.object_id) == Some(&root.object_id))
        {
            // Nothing new should be written, but what was is made durable all the same.
            repo.flush()?;
            return Ok(Created::Identical(newest));
        }
    }
    save_manifest(repo, source, opts, start, stats, root).map(Created::Saved)
}

/// The metadata of the source, which must be a directory or a regular file.
fn source_metadata(dir: &Path) -> Result<fs::Metadata> {
    let md = fs::metadata(dir)
        .map_err(|e| RepoError::Invalid(format!("cannot snapshot {}: {e}", dir.display())))?;
    if !md.is_dir() && !md.is_file() {
        return Err(RepoError::Refused(format!(
            "cannot snapshot {}: not a directory or regular file",
            dir.display()
        )));
    }
    Ok(md)
}

/// The root directory of `newest`, the newest snapshot of the source, complete or a
/// checkpoint: it supplies unchanged files.
fn previous_root(repo: &Repository, newest: Option<&SnapshotManifest>) -> Option<DirManifest> {
    newest
        .and_then(|m| m.root_entry.as_ref())
        .filter(|r| r.entry_type == EntryType::Directory)
        .and_then(|r| read_object(repo.contents(), &r.object_id).ok())
        .and_then(|b| DirManifest::decode(&b).ok())
}

/// The name of the snapshot's root entry: the source's last component.
fn root_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

/// A root entry for `dir` with its metadata and `object_id`.
fn root_entry(
    dir: &Path,
    md: &fs::Metadata,
    entry_type: EntryType,
    object_id: ObjectId,
) -> DirEntry {
    let (mode, uid, gid) = owner(md);
    DirEntry {
        name: root_name(dir),
        entry_type,
        permissions: Permissions(mode),
        file_size: 0,
        mod_time: mtime_nanos(md),
        user_id: uid,
        group_id: gid,
        object_id,
        dir_summary: None,
    }
}

/// Snapshots a single file: the root entry is the file.
fn upload_root_file(up: &mut Uploader<'_>, path: &Path, md: &fs::Metadata) -> Result<DirEntry> {
    let compression = up.compression_for(&root_name(path));
    let file = LocalFile {
        path,
        dir: None,
        size: md.len(),
        meta: None,
    };
    let (oid, len) = upload_counted(
        up.repo,
        compression,
        &file,
        &up.progress,
        None,
        up.objects,
        None,
    )
    .and_then(FileRead::stored)?;
    up.stats.total_file_count = 1;
    up.stats.non_cached_files = 1;
    up.stats.total_file_size = len as i64;
    up.report();
    let mut entry = root_entry(path, md, EntryType::File, oid);
    entry.file_size = len as i64;
    Ok(entry)
}

/// Snapshots a directory tree: the walk on this thread, files read by one worker per core,
/// and the estimating pre-walk beside them when asked.
fn upload_root_dir(
    up: &mut Uploader<'_>,
    dir: &Path,
    md: &fs::Metadata,
    previous: Option<&DirManifest>,
) -> Result<DirEntry> {
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let cancel = up.opts.cancel.clone();
    let halt = || {
        failed.load(Ordering::Relaxed) || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    };
    // The policy's upload.maxParallelFileReads, else one reader per core.
    let workers = kopr_format::policy_fields::max_parallel_file_reads(&up.policy.extra)
        .unwrap_or_else(crate::parallelism);
    let progress = up.progress.clone();
    let unsized_read = up.unsized_read.clone();
    let pool = Workers {
        repo: up.repo,
        objects: up.objects,
        progress: &progress,
        unsized_read: &unsized_read,
        idle: AtomicUsize::new(0),
        stop: &halt,
    };
    let uploaded = std::thread::scope(|s| {
        if up.opts.estimate {
            let est = Estimator::new(&progress, &stop, &up.policy, up.rules.clone());
            s.spawn(move || est.run(dir));
        }
        crate::parallel::stream_counting_idle(
            "upload worker",
            workers,
            workers * QUEUED_BATCHES_PER_WORKER,
            &pool.idle,
            |job: &Job| pool.run(job),
            |job, err| Workers::fail_unfinished(job, &err),
            |tx| {
                up.jobs = Some(tx);
                let r = up.upload_dir(dir, previous);
                // Close the queue: workers end after their current file (all of them on error).
                up.jobs = None;
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                stop.store(true, Ordering::Relaxed);
                r
            },
        )
    });
    let (oid, summary) = uploaded?;
    let mut entry = root_entry(dir, md, EntryType::Directory, oid);
    entry.dir_summary = Some(summary);
    Ok(entry)
}

/// Saves the snapshot manifest of `root` once everything it points at is flushed.
fn save_manifest(
    repo: &Repository,
    source: &SourceInfo,
    opts: &UploadOptions,
    start: chrono::DateTime<chrono::Utc>,
    mut stats: SnapshotStats,
    root: DirEntry,
) -> Result<SnapshotManifest> {
    if root.entry_type == EntryType::Directory {
        stats.total_directory_count += 1;
    }
    let end = repo.contents().clock().now();
    let mut manifest = SnapshotManifest {
        id: kopr_format::snapshot::SnapshotId::default(),
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
    manifest.id = repo.manifests().put(source.labels(), &manifest)?.into();
    repo.flush()?;
    Ok(manifest)
}
