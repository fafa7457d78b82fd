//! The workers that read files into objects while the directory walk goes on.
//!
//! The walk hands every file it must read, in batches, to the bounded queue of
//! `parallel::stream_counting_idle` and keeps walking; one worker per core reads them. Each
//! job has a [`JobSlot`] where its result lands, which the walk waits on when it finishes the
//! file's directory. A worker whose file is large stores its chunks on the other workers'
//! threads while they have nothing queued.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};

use kopr_format::object_id::ObjectId;

use super::local_file::LocalFile;
use super::{upload_counted, ProgressCounters};
use crate::error::{RepoError, Result};
use crate::repository::Repository;
use kopr_format::compression::Compressor;

/// A file's object and the bytes read into it.
pub(super) type Uploaded = Result<(ObjectId, u64)>;

/// A file to read, and where its result goes.
pub(super) struct FileJob {
    pub path: PathBuf,
    /// The directory the file was listed in, opened once for all its files.
    pub dir: Option<Arc<std::fs::File>>,
    /// The size the listing gave.
    pub size: u64,
    /// Shared by all the files compressed alike (no string per file).
    pub compression: Option<&'static Compressor>,
    pub slot: Arc<JobSlot>,
}

/// The result of one job, filled once by a worker.
#[derive(Default)]
pub(super) struct JobSlot {
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

/// Shared state of the workers.
pub(super) struct Workers<'a> {
    pub repo: &'a Repository,
    /// Files shorter than this are one chunk (see `upload_file`).
    pub single_chunk: usize,
    pub progress: &'a ProgressCounters,
    /// Workers waiting for a job (counted by `parallel::stream_counting_idle`): the spare
    /// threads a large file may borrow.
    pub idle: AtomicUsize,
    /// Set on cancellation or a fatal error: the remaining jobs end as canceled.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl Workers<'_> {
    /// Reads one batch of files, each into its slot (a panic while reading one file fills
    /// that file's slot with the error, and the batch goes on).
    pub(super) fn read_batch(&self, batch: &[FileJob]) {
        for job in batch {
            let r = if (self.stop)() {
                Err(RepoError::Canceled)
            } else {
                crate::parallel::guarded("upload worker", || {
                    let file = LocalFile {
                        path: &job.path,
                        dir: job.dir.as_deref(),
                        size: job.size,
                    };
                    upload_counted(
                        self.repo,
                        job.compression,
                        &file,
                        self.progress,
                        Some(&self.idle),
                        self.single_chunk,
                    )
                })
                .map_err(|e| match e {
                    // A panic names its file (formatted only then, not for every file).
                    RepoError::Worker(m) if m.starts_with("upload worker panicked") => {
                        RepoError::Worker(format!("{}: {m}", job.path.display()))
                    }
                    e => e,
                })
            };
            job.slot.set(r);
        }
    }

    /// A batch whose reader failed outside any one file: every file it did not finish fails,
    /// so the walk never waits for a slot nobody fills.
    pub(super) fn fail_unfinished(batch: &[FileJob], err: &RepoError) {
        for job in batch.iter().filter(|j| !j.slot.is_done()) {
            job.slot.set(Err(RepoError::Worker(format!(
                "{}: {err}",
                job.path.display()
            ))));
        }
    }
}
