//! The workers that read files into objects while the directory walk goes on.
//!
//! The walk hands every file it must read to a bounded queue and keeps walking; one worker per
//! core takes files from the queue. Each job has a [`JobSlot`] where its result lands, which
//! the walk waits on when it finishes the file's directory. A worker whose file is large
//! stores its chunks on the other workers' threads while they have nothing queued.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

use kopr_format::object_id::ObjectId;

use super::{upload_counted, ProgressCounters};
use crate::error::{RepoError, Result};
use crate::repository::Repository;
use kopr_format::compression::Compressor;

/// A file's object and the bytes read into it.
pub(super) type Uploaded = Result<(ObjectId, u64)>;

/// A file to read, and where its result goes.
pub(super) struct FileJob {
    pub path: PathBuf,
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

/// The next job of a queue shared by several workers; `None` once the queue is closed.
pub(super) fn next_job<J>(jobs: &Mutex<Receiver<J>>) -> Option<J> {
    jobs.lock().ok().and_then(|rx| rx.recv().ok())
}

/// Shared state of the workers.
pub(super) struct Workers<'a> {
    pub repo: &'a Repository,
    /// Files shorter than this are one chunk (see `upload_file`).
    pub single_chunk: usize,
    pub progress: &'a ProgressCounters,
    /// Workers waiting for a job: the spare threads a large file may borrow.
    pub idle: AtomicUsize,
    /// Set on cancellation or a fatal error: the remaining jobs end as canceled.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl Workers<'_> {
    /// One worker: takes batches of jobs until the queue is closed.
    pub(super) fn run(&self, jobs: &Mutex<Receiver<Vec<FileJob>>>) {
        loop {
            self.idle.fetch_add(1, Ordering::Relaxed);
            let batch = next_job(jobs);
            self.idle.fetch_sub(1, Ordering::Relaxed);
            let Some(batch) = batch else { break };
            for job in batch {
                let r = if (self.stop)() {
                    Err(RepoError::Canceled)
                } else {
                    // A panic must still fill the slot, or the walk would wait for it forever.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        upload_counted(
                            self.repo,
                            job.compression,
                            &job.path,
                            self.progress,
                            Some(&self.idle),
                            self.single_chunk,
                        )
                    }))
                    .unwrap_or_else(|_| {
                        Err(RepoError::Worker(format!(
                            "{}: upload worker panicked",
                            job.path.display()
                        )))
                    })
                };
                job.slot.set(r);
            }
        }
    }
}
