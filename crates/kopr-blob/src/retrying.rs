//! Retries transient storage errors with exponential backoff; permanent errors and
//! "not found" are returned at once.

use std::sync::Arc;
use std::time::Duration;

use crate::{BlobMetadata, BlobStorage, PutOptions, Result};

/// Storage that retries another storage's transient failures.
#[derive(Debug)]
pub struct RetryingStorage {
    inner: Arc<dyn BlobStorage>,
    attempts: u32,
    base_delay: Duration,
}

impl RetryingStorage {
    /// Retries up to `attempts` times in all, waiting `base_delay`, then twice as long, ...
    pub fn new(inner: Arc<dyn BlobStorage>, attempts: u32, base_delay: Duration) -> Self {
        RetryingStorage {
            inner,
            attempts: attempts.max(1),
            base_delay,
        }
    }

    fn retry<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut delay = self.base_delay;
        let mut attempt = 1;
        loop {
            match f() {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl BlobStorage for RetryingStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.retry(|| self.inner.get_blob(id, offset, length))
    }
    fn read_blob_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        self.retry(|| self.inner.read_blob_into(id, offset, out))
    }
    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        self.retry(|| self.inner.get_metadata(id))
    }
    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        self.retry(|| self.inner.put_blob(id, data, opts))
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        self.retry(|| self.inner.delete_blob(id))
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        // Collect first so a retried listing never reports a blob twice.
        let all = self.retry(|| self.inner.list_all(prefix))?;
        for m in all {
            cb(m)?;
        }
        Ok(())
    }
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
    fn extend_retention(&self, id: &str, mode: &str, period: std::time::Duration) -> Result<()> {
        self.retry(|| self.inner.extend_retention(id, mode, period))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultyStorage, Op, Rule};
    use crate::memory::MemoryStorage;
    use crate::BlobError;

    fn setup() -> (Arc<FaultyStorage>, RetryingStorage) {
        let f = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new())));
        let r = RetryingStorage::new(f.clone(), 4, Duration::from_millis(1));
        (f, r)
    }

    #[test]
    fn succeeds_after_transient_failures() {
        let (f, r) = setup();
        f.add_rule(Rule::new(Op::Put, "a", 1, Fault::Transient));
        f.add_rule(Rule::new(Op::Put, "a", 2, Fault::Transient));
        r.put_blob("a", b"x", &PutOptions::default()).unwrap();
        assert_eq!(f.calls(Op::Put), 3);
        assert_eq!(r.get_blob("a", 0, None).unwrap(), b"x");
    }

    #[test]
    fn gives_up_after_the_limit_and_never_retries_permanent_errors() {
        let (f, r) = setup();
        f.add_rule(Rule::new(Op::Get, "a", 0, Fault::Transient));
        assert!(r.get_blob("a", 0, None).unwrap_err().is_transient());
        assert_eq!(f.calls(Op::Get), 4);
        f.clear();
        f.add_rule(Rule::new(Op::Delete, "b", 0, Fault::Permanent));
        assert!(r.delete_blob("b").is_err());
        assert_eq!(f.calls(Op::Delete), 1);
        assert!(matches!(
            r.get_blob("missing", 0, None),
            Err(BlobError::NotFound(_))
        ));
        assert_eq!(f.calls(Op::Get), 5);
    }

    #[test]
    fn a_storage_that_never_answers_is_given_up_on_in_bounded_time() {
        let (f, r) = setup();
        f.put_blob("a", b"x", &PutOptions::default()).unwrap();
        f.set_op_timeout(Some(Duration::from_millis(20)));
        f.add_rule(Rule::new(Op::Get, "a", 0, Fault::Delay(Duration::MAX)));
        let t = std::time::Instant::now();
        let e = r.get_blob("a", 0, None).unwrap_err();
        assert!(
            e.is_transient() && e.to_string().contains("timed out"),
            "{e}"
        );
        assert_eq!(
            f.calls(Op::Get),
            4,
            "every attempt timed out, then it gave up"
        );
        // 4 timeouts and 3 short backoffs, far from the hour the storage would stall
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // once the storage answers again, so does the retrying layer
        f.clear();
        assert_eq!(r.get_blob("a", 0, None).unwrap(), b"x");
    }
}
