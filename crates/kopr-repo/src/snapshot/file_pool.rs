//! The workers that read files into objects, and write directory objects, while the directory
//! walk goes on.
//!
//! The walk hands every file it must read, in batches, to the bounded queue of
//! `parallel::stream_counting_idle` and keeps walking; one worker per core reads them. Each
//! job has a [`JobSlot`] where its result lands, which the walk waits on when it finishes the
//! file's directory. A worker whose file is large stores its chunks on the other workers'
//! threads while they have nothing queued. A finished directory's manifest comes through the
//! same queue: encoding, compressing and storing it was most of the walk's own work on a tree
//! of small files, and the walk is the one thread that does not scale with the cores.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::DirManifest;

use super::local_file::{FileMeta, LocalFile};
use super::upload::{counted_done, upload_counted, FileRead, ObjectSettings};
use super::upload_walk::DirSlot;
use super::ProgressCounters;
use crate::error::{RepoError, Result};
use crate::repository::Repository;
use kopr_format::compression::Compressor;
use kopr_format::policy::CompressedSizes;

/// Bytes of short files a worker keeps before storing them (see [`Workers::read_batch`]).
const KEPT_BYTES: usize = 4 << 20;

thread_local! {
    /// Each worker's buffer of kept files, reused batch after batch.
    static KEPT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Short files read whole and not stored yet: their bytes one after another, and each one's
/// job (its index in the batch), range and compressor.
struct Kept {
    data: Vec<u8>,
    files: Vec<(usize, std::ops::Range<usize>, Option<&'static Compressor>)>,
}

/// A worker's error for `job`: a panic names its file (formatted only then, not for every
/// file).
fn named(job: &FileJob, e: RepoError) -> RepoError {
    match e {
        RepoError::Worker(m) if m.starts_with("upload worker panicked") => {
            RepoError::Worker(format!("{}: {m}", job.slot.path.display()))
        }
        e => e,
    }
}

/// A file's object and the bytes read into it.
pub(super) type Uploaded = Result<(ObjectId, u64)>;

/// A file to read, and where its result goes.
pub(super) struct FileJob {
    /// The directory the file was listed in, opened once for all its files.
    pub dir: Option<Arc<std::fs::File>>,
    /// The size the listing gave; none for a file listed by name and type only, whose
    /// metadata the worker reads from the open file (into the slot's `meta`).
    pub size: Option<u64>,
    pub compression: FileCompression,
    pub slot: Arc<JobSlot>,
}

/// How a file is compressed: as the walk decided (the upload's compressor, or none), or with
/// the policy's compressor if the size the file is read by is within the policy's limits.
#[derive(Clone, Copy)]
pub(super) enum FileCompression {
    /// Shared by all the files compressed alike (no string per file).
    Decided(Option<&'static Compressor>),
    /// This compressor if the file's size is within these limits, else none.
    IfSize(&'static Compressor, CompressedSizes),
}

impl FileCompression {
    /// The compressor of a file of `size` bytes.
    pub(super) fn of_size(self, size: u64) -> Option<&'static Compressor> {
        match self {
            FileCompression::Decided(c) => c,
            FileCompression::IfSize(c, sizes) => sizes
                .contain(i64::try_from(size).unwrap_or(i64::MAX))
                .then_some(c),
        }
    }
}

/// What the walk hands to the workers.
pub(super) enum Job {
    /// Files to read, each into its slot.
    Files(Vec<FileJob>),
    /// A finished directory to store; its object lands in `out` (with a length of 0).
    Dir {
        manifest: DirManifest,
        out: Arc<DirSlot>,
    },
}

/// The result of one job, filled once by a worker.
#[derive(Default)]
pub(super) struct JobSlot {
    /// The file read (empty for a directory's object).
    pub path: PathBuf,
    /// The metadata of a file the walk listed without it, read by the worker (set before the
    /// result).
    pub meta: OnceLock<FileMeta>,
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<Uploaded>,
    /// Whether the walk waits for the result: only then does `set` wake it (a wake-up is a
    /// system call even with nobody waiting, and most results are there before they are
    /// asked for).
    waited: bool,
}

impl JobSlot {
    /// The slot of the file at `path`.
    pub(super) fn new(path: PathBuf) -> JobSlot {
        JobSlot {
            path,
            ..JobSlot::default()
        }
    }

    /// Stores the result and wakes the waiter, if any.
    pub(super) fn set(&self, r: Uploaded) {
        let waited = match self.state.lock() {
            Ok(mut g) => {
                g.result = Some(r);
                g.waited
            }
            Err(_) => true,
        };
        if waited {
            self.done.notify_all();
        }
    }

    /// Whether the result is there.
    pub(super) fn is_done(&self) -> bool {
        self.state
            .lock()
            .map(|g| g.result.is_some())
            .unwrap_or(true)
    }

    /// Waits for the result and takes it.
    pub(super) fn take(&self) -> Uploaded {
        let lost = || Err(RepoError::Worker("upload worker failed".into()));
        let Ok(mut g) = self.state.lock() else {
            return lost();
        };
        loop {
            if let Some(r) = g.result.take() {
                return r;
            }
            g.waited = true;
            g = match self.done.wait(g) {
                Ok(g) => g,
                Err(_) => return lost(),
            };
        }
    }
}

/// What the workers read of the files the walk listed without their size: the walk sizes its
/// batches of such files by their average (the first ones listed are batched a few at a time).
#[derive(Default)]
pub(super) struct UnsizedReads {
    bytes: AtomicU64,
    files: AtomicU64,
}

impl UnsizedReads {
    fn add(&self, len: u64) {
        self.bytes.fetch_add(len, Ordering::Relaxed);
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    /// The average size of those read so far, if any.
    pub(super) fn average(&self) -> Option<u64> {
        let files = self.files.load(Ordering::Relaxed);
        (files > 0).then(|| self.bytes.load(Ordering::Relaxed) / files)
    }
}

/// Shared state of the workers.
pub(super) struct Workers<'a> {
    pub repo: &'a Repository,
    /// Where the workers count what they read of files listed without their size.
    pub unsized_read: &'a UnsizedReads,
    /// How files and directories are written.
    pub objects: ObjectSettings,
    pub progress: &'a ProgressCounters,
    /// Workers waiting for a job (counted by `parallel::stream_counting_idle`): the spare
    /// threads a large file may borrow.
    pub idle: AtomicUsize,
    /// Set on cancellation or a fatal error: the remaining jobs end as canceled.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl Workers<'_> {
    /// Runs one job of the walk's.
    pub(super) fn run(&self, job: &Job) {
        match job {
            Job::Files(batch) => self.read_batch(batch),
            // Written even after a cancellation: the directories of an incomplete snapshot
            // are stored too, as when the walk wrote them itself.
            Job::Dir { manifest, out } => out.object.set(
                super::dir_builder::write_directory(
                    self.repo.contents(),
                    manifest,
                    self.objects.metadata,
                )
                .map(|oid| (oid, 0)),
            ),
        }
    }

    /// Reads one batch of files, each into its slot (a panic while reading one file fills
    /// that file's slot with the error, and the batch goes on).
    ///
    /// Files short enough to be one chunk are read whole and kept, then stored together (at
    /// the end of the batch, or once [`KEPT_BYTES`] are kept), so that their contents are
    /// hashed side by side (`ContentManager::content_ids_for`).
    pub(super) fn read_batch(&self, batch: &[FileJob]) {
        let mut kept = Kept {
            data: KEPT.with(|k| k.take()),
            files: Vec::new(),
        };
        for (i, job) in batch.iter().enumerate() {
            if (self.stop)() {
                job.slot.set(Err(RepoError::Canceled));
                continue;
            }
            let start = kept.data.len();
            let r = crate::parallel::guarded("upload worker", || {
                let file = LocalFile {
                    path: &job.slot.path,
                    dir: job.dir.as_deref(),
                    size: job.size.unwrap_or(0),
                    meta: job.size.is_none().then_some(&job.slot.meta),
                };
                upload_counted(
                    self.repo,
                    job.compression,
                    &file,
                    self.progress,
                    Some(&self.idle),
                    self.objects,
                    Some(&mut kept.data),
                )
            });
            if job.size.is_none() {
                match &r {
                    Ok(FileRead::Stored(_, len)) => self.unsized_read.add(*len),
                    Ok(FileRead::Kept(len, _)) => self.unsized_read.add(*len as u64),
                    Err(_) => {}
                }
            }
            match r {
                Ok(FileRead::Stored(oid, len)) => job.slot.set(Ok((oid, len))),
                Ok(FileRead::Kept(len, compression)) => {
                    kept.files.push((i, start..start + len, compression))
                }
                Err(e) => {
                    kept.data.truncate(start);
                    job.slot.set(Err(named(job, e)));
                }
            }
            if kept.data.len() >= KEPT_BYTES {
                self.store_kept(batch, &mut kept);
            }
        }
        self.store_kept(batch, &mut kept);
        KEPT.with(|k| k.set(kept.data));
    }

    /// Stores the kept files, each as one chunk, and fills their slots.
    fn store_kept(&self, batch: &[FileJob], kept: &mut Kept) {
        if kept.files.is_empty() {
            return;
        }
        let each_fails = |e: &dyn Fn() -> RepoError| kept.files.iter().map(|_| Err(e())).collect();
        let stored: Vec<Result<ObjectId>> = if (self.stop)() {
            each_fails(&|| RepoError::Canceled)
        } else {
            crate::parallel::guarded("upload worker", || {
                let chunks: Vec<(&[u8], Option<&'static Compressor>)> = kept
                    .files
                    .iter()
                    .map(|(_, r, c)| (&kept.data[r.clone()], *c))
                    .collect();
                Ok(crate::object::write_single_chunks(
                    self.repo.contents(),
                    &chunks,
                ))
            })
            .unwrap_or_else(|panicked| each_fails(&|| RepoError::Worker(panicked.to_string())))
        };
        let mut results = stored.into_iter();
        for (i, range, _) in kept.files.drain(..) {
            let job = &batch[i];
            let r = results
                .next()
                .unwrap_or_else(|| Err(RepoError::Worker("a kept file was not stored".into())));
            counted_done(self.progress, r.is_ok());
            job.slot.set(
                r.map(|oid| (oid, range.len() as u64))
                    .map_err(|e| named(job, e)),
            );
        }
        kept.data.clear();
    }

    /// A job whose worker failed outside any one file: every file it did not finish (or the
    /// directory it did not store) fails, so the walk never waits for a slot nobody fills.
    pub(super) fn fail_unfinished(job: &Job, err: &RepoError) {
        match job {
            Job::Files(batch) => {
                for job in batch.iter().filter(|j| !j.slot.is_done()) {
                    job.slot.set(Err(RepoError::Worker(format!(
                        "{}: {err}",
                        job.slot.path.display()
                    ))));
                }
            }
            Job::Dir { out, .. } if !out.object.is_done() => out.object.set(Err(
                RepoError::Worker(format!("storing a directory failed: {err}")),
            )),
            Job::Dir { .. } => {}
        }
    }
}
