//! The directory walk of an upload: lists a directory, applies ignore rules, reuses unchanged
//! files of the previous snapshot, stores symlinks, and hands the files to read to the worker
//! pool (in batches of small files), leaving the directory pending until they are read
//! (`dir_builder` finishes it).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{
    DirEntry, DirManifest, DirectorySummary, EntryError, EntryType, Permissions, SnapshotStats,
};

use super::file_limits::{device_of, FileLimits};
use super::file_pool::{FileCompression, FileJob, Job, JobSlot, UnsizedReads};
use super::local_file::FileMeta;
use super::upload::{is_cache_dir, ObjectSettings};
use super::{Progress, ProgressCounters, UploadOptions, INCOMPLETE_CANCELED};
use crate::error::{RepoError, Result};
use crate::object::{read_object, WriterOptions};
use crate::repository::Repository;
use kopr_format::compression::Compressor;

/// Extensions whose compression rule the walk remembers (a tree can have a different
/// "extension" per file, e.g. rotated logs).
const EXTENSIONS_REMEMBERED: usize = 1024;
/// Batches queued per worker before the walk waits for the workers.
pub(super) const QUEUED_BATCHES_PER_WORKER: usize = 2;
/// Files under this size are handed to the workers in batches of up to [`FILES_PER_BATCH`]
/// files or [`BATCH_BYTES`]; a larger one on its own. Batches are large enough for a worker to hash many short files
/// side by side (`file_pool::Workers::read_batch`), and small enough that a tree of a few
/// hundred files still keeps every worker busy.
const SMALL_FILE: u64 = 256 << 10;
const FILES_PER_BATCH: usize = 256;
const BATCH_BYTES: u64 = 256 << 10;
/// Files of unknown size (listed by name and type only) per batch, until files of the kind have
/// been read: few, so that large ones among them still spread over the workers. Then as many
/// as the average of those read fits in [`BATCH_BYTES`], at least this many.
const UNSIZED_PER_BATCH: usize = 8;

/// A directory walked whose files may still be being read; it is finished (its manifest
/// written) once they are, children before parents.
pub(super) struct PendingDir {
    pub(super) dir: PathBuf,
    /// The directory opened once, for the workers to open its files by name; dropped when
    /// the walk leaves it (only the queued files keep it open).
    /// `None` until a file needs it; `Some(None)` when the directory could not be opened (its
    /// files are then opened by path, and the open is not tried again for each).
    pub(super) handle: Option<Option<Arc<fs::File>>>,
    pub(super) entries: Vec<DirEntry>,
    pub(super) summary: DirectorySummary,
    /// (entry index, relative path, result) of each file being read.
    pub(super) files: Vec<(usize, String, Arc<JobSlot>)>,
    /// (entry index, finished child) of each subdirectory.
    pub(super) subdirs: Vec<(usize, Arc<DirSlot>)>,
    /// Entry indexes of every file, read or reused, for the totals.
    pub(super) file_entries: Vec<usize>,
    pub(super) out: Arc<DirSlot>,
    /// The directory's device, when the policy keeps a snapshot on one filesystem.
    pub(super) device: Option<u64>,
}

impl PendingDir {
    /// The directory opened once for its files (none when it cannot be opened: its files are
    /// then opened by path).
    fn dir_handle(&mut self) -> Option<Arc<fs::File>> {
        let dir = &self.dir;
        self.handle
            .get_or_insert_with(|| fs::File::open(dir).ok().map(Arc::new))
            .clone()
    }

    /// Whether its files are read and its subdirectories stored.
    pub(super) fn ready(&self) -> bool {
        self.files.iter().all(|(_, _, j)| j.is_done())
            && self.subdirs.iter().all(|(_, d)| d.object.is_done())
    }
}

/// A finished directory: its summary, set by the walk when it finishes the directory, and its
/// object, set by the worker that stores it.
#[derive(Default)]
pub(super) struct DirSlot {
    pub(super) summary: std::sync::OnceLock<DirectorySummary>,
    pub(super) object: JobSlot,
}

impl DirSlot {
    /// Waits for the directory to be stored; its object and summary.
    pub(super) fn take(&self) -> Result<(ObjectId, DirectorySummary)> {
        let (oid, _) = self.object.take()?;
        let summary = self.summary.get().cloned().ok_or_else(|| {
            RepoError::Worker("a directory was stored before it was finished".into())
        })?;
        Ok((oid, summary))
    }
}

pub(super) struct Uploader<'a> {
    pub(super) repo: &'a Repository,
    pub(super) opts: &'a UploadOptions,
    /// The workers' queue (files to read, directories to store), open while the tree is
    /// walked.
    pub(super) jobs: Option<SyncSender<Job>>,
    /// Small files gathered for the next hand-off, their bytes, and how many of them were
    /// listed without their size.
    pub(super) batch: Vec<FileJob>,
    pub(super) batch_bytes: u64,
    pub(super) batch_unsized: usize,
    /// What the workers read of the files listed without their size.
    pub(super) unsized_read: Arc<UnsizedReads>,
    /// Walked directories not finished yet, in the order they were walked (children first).
    pub(super) pending: VecDeque<PendingDir>,
    pub(super) stats: SnapshotStats,
    pub(super) progress: Arc<ProgressCounters>,
    pub(super) on_progress: &'a mut dyn FnMut(&Progress),
    pub(super) rules: Vec<crate::ignore::Rule>,
    /// The upload's compressor (`--compression`; `Some(None)` for none), over the policy's.
    pub(super) forced_compressor: Option<Option<&'static Compressor>>,
    /// The policy's compressor, for the files its rules apply to.
    pub(super) policy_compressor: Option<&'static Compressor>,
    /// How files and directories are written.
    pub(super) objects: ObjectSettings,
    pub(super) policy: kopr_format::policy::Policy,
    /// The policy's `maxFileSize` and `oneFileSystem`.
    pub(super) file_limits: FileLimits,
    /// Whether the policy compresses files by extension, for the extensions seen so far.
    pub(super) extensions: rustc_hash::FxHashMap<String, bool>,
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
    pub(super) fn error(
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

    /// How a file named `name` is compressed: with the upload's compressor, else with the
    /// policy's when its extension rules apply and the size the file is read by is within its
    /// limits (the worker that reads the file knows that size, whether or not the walk did).
    pub(super) fn compression_for(&mut self, name: &str) -> FileCompression {
        if let Some(forced) = self.forced_compressor {
            return FileCompression::Decided(forced);
        }
        let policy_compressor = self.policy_compressor;
        match policy_compressor {
            Some(c) if self.compresses_extension(name) => {
                FileCompression::IfSize(c, self.policy.compressed_sizes())
            }
            _ => FileCompression::Decided(None),
        }
    }

    /// Whether the policy compresses a file named `name`, sizes aside. The extension rules
    /// are looked up once per extension: a policy lists a few dozen extensions, and matching
    /// each file against them all cost more than the rest of the walk's own work per file. At
    /// most `EXTENSIONS_REMEMBERED` are kept.
    fn compresses_extension(&mut self, name: &str) -> bool {
        let ext = kopr_format::policy::Policy::extension(name);
        match self.extensions.get(ext) {
            Some(&b) => b,
            None => {
                let b = self.policy.compresses_extension(ext);
                if self.extensions.len() < EXTENSIONS_REMEMBERED {
                    self.extensions.insert(ext.to_string(), b);
                }
                b
            }
        }
    }

    pub(super) fn report(&mut self) {
        let p = self.progress.get();
        (self.on_progress)(&p);
    }

    /// Uploads the tree at `dir` and returns its directory object and summary.
    pub(super) fn upload_dir(
        &mut self,
        dir: &Path,
        previous: Option<&DirManifest>,
    ) -> Result<(ObjectId, DirectorySummary)> {
        let root = self.walk_dir(dir, "", previous)?;
        self.finish_pending(true)?;
        root.take()
    }

    /// Walks `dir`: records its entries, queues the files to read, walks subdirectories, and
    /// leaves the directory pending until its files are read.
    fn walk_dir(
        &mut self,
        dir: &Path,
        rel: &str,
        previous: Option<&DirManifest>,
    ) -> Result<Arc<DirSlot>> {
        let out = Arc::new(DirSlot::default());
        let mut pd = PendingDir {
            dir: dir.to_path_buf(),
            handle: None,
            entries: Vec::new(),
            summary: DirectorySummary::default(),
            files: Vec::new(),
            subdirs: Vec::new(),
            file_entries: Vec::new(),
            out: out.clone(),
            device: self
                .file_limits
                .one_file_system
                .then(|| device_of(dir))
                .flatten(),
        };
        let names = self.list_dir(dir, rel, &mut pd.summary);
        pd.entries.reserve(names.len());
        let rules_before = self.rules.len();
        for name in &self.policy.files.dot_ignore_files {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                self.rules.extend(crate::ignore::parse(rel, &text));
            }
        }
        let prev: HashMap<&str, &DirEntry> = previous
            .map(|p| p.entries.iter().map(|e| (e.name.as_str(), e)).collect())
            .unwrap_or_default();
        for (name, listed) in names {
            if self.canceled() {
                pd.summary.incomplete_reason = INCOMPLETE_CANCELED.into();
                break;
            }
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                // Not `format!`: once per entry, and its machinery cost more than the copy.
                let mut p = String::with_capacity(rel.len() + 1 + name.len());
                p.push_str(rel);
                p.push('/');
                p.push_str(&name);
                p
            };
            let previous = prev.get(name.as_str()).copied();
            self.walk_entry(&mut pd, name, &listed, child_rel, previous)?;
        }
        pd.handle = None;
        self.rules.truncate(rules_before);
        self.pending.push_back(pd);
        self.finish_pending(false)?;
        Ok(out)
    }

    /// The entries of `dir` by name, sorted; none for a cache directory, which is kept empty
    /// as Kopia does. Errors listing it are recorded in `summary`.
    fn list_dir(
        &mut self,
        dir: &Path,
        rel: &str,
        summary: &mut DirectorySummary,
    ) -> Vec<(String, fs::DirEntry)> {
        let mut names: Vec<(String, fs::DirEntry)> = Vec::new();
        let cache_dir = self.policy.files.ignore_cache_dirs.unwrap_or(true) && is_cache_dir(dir);
        match fs::read_dir(dir) {
            _ if cache_dir => {}
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => names.push((e.file_name().to_string_lossy().into_owned(), e)),
                        Err(err) => self.error(summary, rel, err, true),
                    }
                }
            }
            Err(err) => self.error(summary, rel, err, true),
        }
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        names
    }

    /// Whether the ignore rules exclude the entry at `rel` (counted in the stats if so).
    fn excluded(&mut self, rel: &str, md: &fs::Metadata) -> bool {
        if !crate::ignore::is_ignored(&self.rules, rel, md.is_dir()) {
            return false;
        }
        if md.is_dir() {
            self.stats.excluded_dir_count += 1;
        } else {
            self.stats.excluded_file_count += 1;
            self.stats.excluded_total_file_size += md.len() as i64;
        }
        true
    }

    /// Records one entry of a walked directory: walks a subdirectory, stores a symlink, reuses
    /// or queues a file; sockets, fifos and devices are not backed up. `previous` is the entry
    /// of the same name in the previous snapshot. Its metadata is read relative to the
    /// listed directory (the name alone is resolved), not through the full path; a regular
    /// file without a previous entry is handed over unread ([`Uploader::lists_unsized`]).
    fn walk_entry(
        &mut self,
        pd: &mut PendingDir,
        name: String,
        listed: &fs::DirEntry,
        rel: String,
        previous: Option<&DirEntry>,
    ) -> Result<()> {
        let path = listed.path();
        if previous.is_none() && self.lists_unsized(listed, &rel) {
            return self.walk_new_file(pd, name, path, rel);
        }
        let md = match listed.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.error(&mut pd.summary, &rel, e, false);
                return Ok(());
            }
        };
        if self.excluded(&rel, &md) || self.file_limits.leave_out(&md, pd.device) {
            return Ok(());
        }
        let meta = FileMeta::of(&md);
        pd.summary.max_mod_time = pd.summary.max_mod_time.max(meta.mtime);
        let ft = md.file_type();
        let mut entry = new_entry(name)?;
        meta.apply_to(&mut entry);
        if ft.is_dir() {
            let prev_dir = previous
                .filter(|p| p.entry_type == EntryType::Directory)
                .and_then(|p| read_object(self.repo.contents(), &p.object_id).ok())
                .and_then(|b| DirManifest::decode(&b).ok());
            let child = self.walk_dir(&path, &rel, prev_dir.as_ref())?;
            entry.entry_type = EntryType::Directory;
            pd.subdirs.push((pd.entries.len(), child));
            self.stats.total_directory_count += 1;
        } else if ft.is_symlink() {
            let target = match fs::read_link(&path) {
                Ok(t) => t,
                Err(e) => {
                    self.error(&mut pd.summary, &rel, e, false);
                    return Ok(());
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
            pd.summary.total_symlink_count += 1;
        } else if ft.is_file() {
            self.walk_file(pd, &mut entry, path, rel, md.len() as i64, previous)?;
        } else {
            return Ok(());
        }
        self.report();
        pd.entries.push(entry);
        Ok(())
    }

    /// A file of a walked directory: reused when its size and modification time match the
    /// previous snapshot's, else queued to be read.
    fn walk_file(
        &mut self,
        pd: &mut PendingDir,
        entry: &mut DirEntry,
        path: PathBuf,
        rel: String,
        size: i64,
        previous: Option<&DirEntry>,
    ) -> Result<()> {
        entry.file_size = size;
        let cached = previous.filter(|p| {
            p.entry_type == EntryType::File && p.file_size == size && p.mod_time == entry.mod_time
        });
        // Counted in entry order once the reads are done.
        pd.file_entries.push(pd.entries.len());
        if let Some(p) = cached {
            entry.object_id = p.object_id.clone();
            self.stats.cached_files += 1;
            ProgressCounters::add(&self.progress.cached_files, 1);
            ProgressCounters::add(&self.progress.cached_bytes, size as u64);
        } else {
            let compression = self.compression_for(&entry.name);
            let slot = self.read_file(path, pd.dir_handle(), compression, Some(size as u64))?;
            pd.files.push((pd.entries.len(), rel, slot));
        }
        Ok(())
    }

    /// Whether the entry `listed` at `rel`, with no entry of its name in the previous
    /// snapshot, is a regular file the walk hands over without reading its metadata: the
    /// worker that reads it reads the metadata from the open file. On a tree of small files
    /// the walk's own `statx` per file was half of the walk's work, and the walk, one thread,
    /// fell behind the workers. An entry the ignore rules exclude is stat'ed (its size is
    /// counted), and so is one whose type the listing does not give, and every one when the
    /// policy leaves out files by size or filesystem ([`FileLimits`]).
    fn lists_unsized(&self, listed: &fs::DirEntry, rel: &str) -> bool {
        !self.file_limits.need_metadata()
            && listed.file_type().is_ok_and(|t| t.is_file())
            && !crate::ignore::is_ignored(&self.rules, rel, false)
    }

    /// A file new to the snapshot, listed by name and type: queued to be read, its entry's
    /// metadata filled in from the worker's (`dir_builder`).
    fn walk_new_file(
        &mut self,
        pd: &mut PendingDir,
        name: String,
        path: PathBuf,
        rel: String,
    ) -> Result<()> {
        let compression = self.compression_for(&name);
        let slot = self.read_file(path, pd.dir_handle(), compression, None)?;
        pd.file_entries.push(pd.entries.len());
        pd.files.push((pd.entries.len(), rel, slot));
        pd.entries.push(new_entry(name)?);
        self.report();
        Ok(())
    }

    /// Hands a file to the workers. Small files go in batches (one hand-off, one wake-up for
    /// many files), a large one on its own.
    fn read_file(
        &mut self,
        path: PathBuf,
        dir: Option<Arc<fs::File>>,
        compression: FileCompression,
        size: Option<u64>,
    ) -> Result<Arc<JobSlot>> {
        // The path lives in the slot, which the walk drops last: freed by the thread that
        // allocated it (a worker freeing the walk's allocations contends for its heap lock).
        let slot = Arc::new(JobSlot::new(path));
        self.batch.push(FileJob {
            dir,
            size,
            compression,
            slot: slot.clone(),
        });
        self.batch_bytes += size.unwrap_or(0);
        self.batch_unsized += usize::from(size.is_none());
        if size.is_some_and(|s| s >= SMALL_FILE)
            || self.batch.len() >= FILES_PER_BATCH
            || self.batch_bytes >= BATCH_BYTES
            || self.batch_unsized >= self.unsized_per_batch()
        {
            self.send_batch()?;
        }
        Ok(slot)
    }

    /// How many files listed without their size go in one batch.
    fn unsized_per_batch(&self) -> usize {
        let Some(average) = self.unsized_read.average() else {
            return UNSIZED_PER_BATCH;
        };
        usize::try_from(BATCH_BYTES / average.max(1))
            .unwrap_or(usize::MAX)
            .clamp(UNSIZED_PER_BATCH, FILES_PER_BATCH)
    }

    /// Hands the files gathered so far to the workers.
    pub(super) fn send_batch(&mut self) -> Result<()> {
        self.batch_bytes = 0;
        self.batch_unsized = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.send(Job::Files(batch))
    }

    /// Queues a job for the workers.
    pub(super) fn send(&self, job: Job) -> Result<()> {
        match &self.jobs {
            Some(jobs) => jobs
                .send(job)
                .map_err(|_| RepoError::Worker("upload workers stopped".into())),
            None => Err(RepoError::Worker("upload workers stopped".into())),
        }
    }
}

/// A file entry named `name` with its metadata and object still to be filled in.
fn new_entry(name: String) -> Result<DirEntry> {
    Ok(DirEntry {
        name,
        entry_type: EntryType::File,
        permissions: Permissions(0),
        file_size: 0,
        mod_time: 0,
        user_id: 0,
        group_id: 0,
        object_id: ObjectId::direct(kopr_format::index::ContentId::new(None, &[0])?),
        dir_summary: None,
    })
}
