//! The one worker-pool helper: run a job per item on N threads, a panicking job becoming a
//! [`RepoError::Worker`] error, no new job started once a job failed or the caller's stop
//! condition holds.
//!
//! [`map`] takes a list of items and returns their results in order (the object writer's
//! chunks, maintenance's pack rewrites, the restore's reads of a batch); [`stream`] runs the
//! jobs a producer on the calling thread sends while it goes on (the snapshot verify walk), and
//! [`stream_counting_idle`] also counts the workers waiting for a job, whom a job may lend work
//! to (the snapshot upload: batches of files, a large file's chunks stored on idle workers).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

use crate::error::{RepoError, Result};

/// Runs `job` on a panic guard: a panic becomes [`RepoError::Worker`] naming `what`.
pub(crate) fn guarded<R>(what: &str, job: impl FnOnce() -> Result<R>) -> Result<R> {
    catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        Err(RepoError::Worker(format!("{what} panicked: {msg}")))
    })
}

/// Starts a scoped thread named `what` (as `top -H`, `perf` and tests see it; the kernel keeps
/// 15 bytes of it). Like [`std::thread::Scope::spawn`], it panics when no thread can be made.
fn spawn_named<'scope, 'env, F>(s: &'scope std::thread::Scope<'scope, 'env>, what: &str, f: F)
where
    F: FnOnce() + Send + 'scope,
{
    if let Err(e) = std::thread::Builder::new()
        .name(what.to_string())
        .spawn_scoped(s, f)
    {
        panic!("failed to start a {what} thread: {e}");
    }
}

/// Runs `job` on every item on up to `workers` threads, items taken in order by whichever
/// thread is free, and returns the results in the items' order, or the first error in that
/// order. After a job fails, or once `stop` says so, no item is started any more
/// ([`RepoError::Canceled`] when only `stop` ended it). With one item or one worker, the jobs
/// run on the calling thread.
pub(crate) fn map<T: Sync, R: Send>(
    what: &str,
    workers: usize,
    items: &[T],
    stop: &(dyn Fn() -> bool + Sync),
    job: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let failed = AtomicBool::new(false);
    // `None`: not started.
    let run = |item: &T| -> Option<Result<R>> {
        if failed.load(Ordering::Relaxed) || stop() {
            return None;
        }
        let r = guarded(what, || job(item));
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        Some(r)
    };
    let workers = workers.min(items.len());
    let results: Vec<Option<Result<R>>> = if workers <= 1 {
        items.iter().map(run).collect()
    } else {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                spawn_named(s, what, || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = run(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = r;
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|slot| slot.into_inner().ok().flatten())
            .collect()
    };
    let mut out = Vec::with_capacity(results.len());
    let mut skipped = false;
    for r in results {
        match r {
            Some(r) => out.push(r?),
            None => skipped = true,
        }
    }
    if skipped {
        return Err(RepoError::Canceled);
    }
    Ok(out)
}

/// Runs `produce` on the calling thread with the sending end of a queue of `depth` jobs, while
/// `workers` threads run `job` on each job sent; returns what `produce` returns once every job
/// sent has run. A job that panics is handed to `panicked` with the error, so that whoever
/// waits for its result learns of it. The queue closes when `produce` returns.
pub(crate) fn stream<J: Send, R>(
    what: &str,
    workers: usize,
    depth: usize,
    job: impl Fn(&J) + Sync,
    panicked: impl Fn(&J, RepoError) + Sync,
    produce: impl FnOnce(SyncSender<J>) -> R,
) -> R {
    stream_counting_idle(
        what,
        workers,
        depth,
        &AtomicUsize::new(0),
        job,
        panicked,
        produce,
    )
}

/// [`stream`], with `idle` counting the workers waiting for a job while they wait: the spare
/// threads a job may lend work to (the snapshot upload stores a large file's chunks on them).
pub(crate) fn stream_counting_idle<J: Send, R>(
    what: &str,
    workers: usize,
    depth: usize,
    idle: &AtomicUsize,
    job: impl Fn(&J) + Sync,
    panicked: impl Fn(&J, RepoError) + Sync,
    produce: impl FnOnce(SyncSender<J>) -> R,
) -> R {
    let (tx, rx) = sync_channel::<J>(depth);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            spawn_named(s, what, || loop {
                idle.fetch_add(1, Ordering::Relaxed);
                let next = rx.lock().ok().and_then(|rx| rx.recv().ok());
                idle.fetch_sub(1, Ordering::Relaxed);
                let Some(j) = next else { break };
                if let Err(err) = guarded(what, || {
                    job(&j);
                    Ok(())
                }) {
                    panicked(&j, err);
                }
            });
        }
        produce(tx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_turns_a_panic_into_an_error() {
        let items: Vec<u32> = (0..50).collect();
        let got = map("squarer", 4, &items, &|| false, |&n| Ok(n * n)).expect("no failure");
        assert_eq!(got, items.iter().map(|n| n * n).collect::<Vec<_>>());

        let ran = AtomicUsize::new(0);
        let out = map("picky", 1, &[1u32, 2, 3], &|| false, |&n| {
            ran.fetch_add(1, Ordering::Relaxed);
            if n == 2 {
                panic!("two");
            }
            Ok(n)
        });
        assert!(matches!(&out, Err(RepoError::Worker(m)) if m == "picky panicked: two"));
        // After a failure the rest is not started.
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn map_reports_the_first_error_in_item_order() {
        let out = map("worker", 4, &[1u32, 2, 3, 4], &|| false, |&n| {
            if n >= 3 {
                Err(RepoError::Invalid(format!("bad {n}")))
            } else {
                Ok(n)
            }
        });
        assert!(matches!(&out, Err(RepoError::Invalid(m)) if m == "bad 3" || m == "bad 4"));
    }

    #[test]
    fn map_stops_on_request() {
        let out = map("worker", 3, &[1u32, 2, 3], &|| true, |&n| Ok(n));
        assert!(matches!(out, Err(RepoError::Canceled)));
    }

    #[test]
    fn stream_runs_every_job_sent_and_reports_panics() {
        let sum = AtomicUsize::new(0);
        let panics = AtomicUsize::new(0);
        let sent = stream(
            "adder",
            3,
            2,
            |&n: &usize| {
                if n == 7 {
                    panic!("seven");
                }
                sum.fetch_add(n, Ordering::Relaxed);
            },
            |&n, err| {
                assert_eq!(n, 7);
                assert!(matches!(err, RepoError::Worker(_)));
                panics.fetch_add(1, Ordering::Relaxed);
            },
            |tx| {
                for n in 0..10 {
                    tx.send(n).expect("workers are running");
                }
                10
            },
        );
        assert_eq!(sent, 10);
        assert_eq!(sum.load(Ordering::Relaxed), 45 - 7);
        assert_eq!(panics.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stream_counts_the_workers_waiting_for_a_job() {
        let idle = AtomicUsize::new(0);
        let seen = AtomicUsize::new(usize::MAX);
        stream_counting_idle(
            "counter",
            3,
            1,
            &idle,
            |_: &u32| seen.store(idle.load(Ordering::SeqCst), Ordering::SeqCst),
            |_, _| {},
            |tx| {
                // Every worker waits before the first job is sent…
                while idle.load(Ordering::SeqCst) < 3 {
                    std::thread::yield_now();
                }
                tx.send(1).expect("workers are running");
                // The queue stays open until the job has looked (closing it wakes the others,
                // who then stop waiting).
                while seen.load(Ordering::SeqCst) == usize::MAX {
                    std::thread::yield_now();
                }
            },
        );
        // …and the one running it is not counted while it runs.
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        assert_eq!(
            idle.load(Ordering::SeqCst),
            0,
            "all gone after the queue closed"
        );
    }
}
