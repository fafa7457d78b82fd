//! Test hooks: deterministic crash points for the crash tests, read from the environment
//! only (nothing changes when the variables are unset).
//!
//! - `KOPR_TEST_CRASH_AFTER_BLOB_WRITES=N`: the process aborts (SIGABRT, as a kill) right after
//!   its Nth successful blob write, after printing `test hook: abort after blob write N: ID`.
//! - `KOPR_TEST_SIGINT_AFTER_BLOB_WRITES=N`: the process sends itself SIGINT (as Ctrl-C)
//!   right after its Nth successful blob write, once.
//!
//! - `KOPR_TEST_LIST_LAG=N`: newly written blobs stay out of listings until N more blobs were
//!   written (an eventually consistent listing, for `repository validate-provider`).
//!
//! `KOPR_TEST_CRASH_BEFORE_TASK` (maintenance) lives with the maintenance command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kopr_blob::{BlobMetadata, BlobStorage, PutOptions, Result};

/// What to do after the Nth write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Interrupt,
}

/// Storage that counts writes and acts after the Nth.
#[derive(Debug)]
struct CountingStorage {
    inner: Arc<dyn BlobStorage>,
    at: u64,
    action: Action,
    puts: AtomicU64,
}

/// Wraps `st` when a hook variable is set; returns it unchanged otherwise.
pub fn wrap(st: Arc<dyn BlobStorage>) -> Arc<dyn BlobStorage> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
    };
    let st = match var("KOPR_TEST_LIST_LAG") {
        Some(n) => {
            let faulty = kopr_blob::fault::FaultyStorage::new(st);
            faulty.set_list_lag(n as usize);
            Arc::new(faulty) as Arc<dyn BlobStorage>
        }
        None => st,
    };
    let (at, action) = if let Some(n) = var("KOPR_TEST_CRASH_AFTER_BLOB_WRITES") {
        (n, Action::Abort)
    } else if let Some(n) = var("KOPR_TEST_SIGINT_AFTER_BLOB_WRITES") {
        (n, Action::Interrupt)
    } else {
        return st;
    };
    Arc::new(CountingStorage {
        inner: st,
        at,
        action,
        puts: AtomicU64::new(0),
    })
}

impl BlobStorage for CountingStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.inner.get_blob(id, offset, length)
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        self.inner.get_metadata(id)
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        self.inner.put_blob(id, data, opts)?;
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at {
            match self.action {
                Action::Abort => {
                    eprintln!("test hook: abort after blob write {n}: {id}");
                    std::process::abort();
                }
                Action::Interrupt => {
                    eprintln!("test hook: SIGINT after blob write {n}: {id}");
                    // SAFETY: kill(2) on our own pid with a valid signal number.
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGINT);
                    }
                }
            }
        }
        Ok(())
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.inner.delete_blob(id)
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        self.inner.list_blobs(prefix, cb)
    }

    fn display_name(&self) -> String {
        self.inner.display_name()
    }

    fn extend_retention(&self, id: &str, mode: &str, period: Duration) -> Result<()> {
        self.inner.extend_retention(id, mode, period)
    }
}
