//! The log a command writes into the repository, as Kopia's `repodiag` log manager does: JSON
//! lines gzipped into segments, each segment encrypted like an index blob and stored as
//! `_log_<local time>_<random>_<segment start>_<segment end>_<segment number>_<hash>`, where the
//! times are Unix seconds and `<local time>_<random>` names the log session (one process).
//! A segment is written when it passes 4 MiB compressed, and the last one when the log is
//! closed. `logs list | show | cleanup` (kopr's and Kopia's) read them back.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use kopr_blob::clock::Clock;
use kopr_blob::{BlobStorage, PutOptions};
use kopr_format::blob_crypto;

use crate::error::{RepoError, Result};
use crate::format_manager::FormatManager;

/// The prefix of log blobs (Kopia's `LogBlobPrefix`).
pub const LOG_BLOB_PREFIX: &str = "_log_";

/// Kopia's segment size: a segment is written once its compressed size passes this.
pub const DEFAULT_SEGMENT_BYTES: usize = 4 << 20;

/// One segment being filled.
struct Segment {
    gz: GzEncoder<Vec<u8>>,
    start: i64,
    entries: usize,
}

/// Appends log entries and writes them as `_log` blobs.
pub struct RepoLog {
    storage: Arc<dyn BlobStorage>,
    format: Arc<FormatManager>,
    clock: Arc<dyn Clock>,
    prefix: String,
    segment_bytes: usize,
    state: Mutex<State>,
}

struct State {
    current: Option<Segment>,
    next_segment: u64,
    written: Vec<String>,
}

impl std::fmt::Debug for RepoLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoLog")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RepoLog {
    /// A new log session of this process, named after the local time and two random bytes.
    pub fn new(
        storage: Arc<dyn BlobStorage>,
        format: Arc<FormatManager>,
        clock: Arc<dyn Clock>,
    ) -> RepoLog {
        let local = clock.now().with_timezone(&chrono::Local);
        let rnd: [u8; 2] = rand::random();
        let prefix = format!(
            "{LOG_BLOB_PREFIX}{}_{}",
            local.format("%Y%m%d%H%M%S"),
            hex::encode(rnd)
        );
        RepoLog {
            storage,
            format,
            clock,
            prefix,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            state: Mutex::new(State {
                current: None,
                next_segment: 0,
                written: Vec::new(),
            }),
        }
    }

    /// The same log with another segment size (tests).
    pub fn with_segment_bytes(mut self, n: usize) -> RepoLog {
        self.segment_bytes = n.max(1);
        self
    }

    /// The session id `logs list` shows (`<local time>_<random>`).
    pub fn session_id(&self) -> &str {
        &self.prefix[LOG_BLOB_PREFIX.len()..]
    }

    /// Appends one entry (a JSON line, newline included). A segment that already passed the
    /// size is written first, as Kopia does before adding an entry.
    pub fn append(&self, line: &[u8]) -> Result<()> {
        let now = self.clock.now();
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let full = st
            .current
            .as_ref()
            .is_some_and(|s| s.gz.get_ref().len() > self.segment_bytes);
        if full {
            if let Some(seg) = st.current.take() {
                self.write_segment(&mut st, seg, now)?;
            }
        }
        let seg = st.current.get_or_insert_with(|| Segment {
            gz: GzEncoder::new(Vec::new(), flate2::Compression::default()),
            start: now.timestamp(),
            entries: 0,
        });
        seg.gz.write_all(line).map_err(gzip_error)?;
        seg.entries += 1;
        Ok(())
    }

    /// Writes the segment being filled, if it has entries, and returns the ids of every blob
    /// this log wrote.
    pub fn close(&self) -> Result<Vec<String>> {
        let now = self.clock.now();
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if let Some(seg) = st.current.take() {
            if seg.entries > 0 {
                self.write_segment(&mut st, seg, now)?;
            }
        }
        Ok(st.written.clone())
    }

    fn write_segment(&self, st: &mut State, seg: Segment, now: DateTime<Utc>) -> Result<()> {
        let data = seg.gz.finish().map_err(gzip_error)?;
        st.next_segment += 1;
        let prefix = format!(
            "{}_{}_{}_{}_",
            self.prefix,
            seg.start,
            now.timestamp(),
            st.next_segment
        );
        let (id, encrypted) = blob_crypto::encrypt_blob(
            &self.format.hasher,
            &self.format.encryptor,
            &data,
            &prefix,
            "",
        )?;
        self.storage
            .put_blob(&id, &encrypted, &PutOptions::default())?;
        st.written.push(id);
        Ok(())
    }
}

fn poisoned() -> RepoError {
    RepoError::Invalid("repository log lock poisoned".into())
}

fn gzip_error(e: std::io::Error) -> RepoError {
    RepoError::Invalid(format!("cannot compress repository log: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use chrono::TimeZone;
    use kopr_blob::clock::ManualClock;
    use kopr_blob::memory::MemoryStorage;

    use super::*;
    use crate::format_manager::CreateOptions;

    fn repo() -> (Arc<dyn BlobStorage>, Arc<FormatManager>) {
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
            ..CreateOptions::default()
        };
        crate::format_manager::initialize(&*st, &opts, "pw").unwrap();
        let fm = Arc::new(FormatManager::open(&*st, "pw").unwrap());
        (st, fm)
    }

    fn read_back(st: &dyn BlobStorage, fm: &FormatManager, id: &str) -> String {
        let data = st.get_blob(id, 0, None).unwrap();
        let plain = blob_crypto::decrypt_blob(&fm.encryptor, &data, id).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&plain[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn segments_are_kopias_encrypted_gzip_blobs_in_order() {
        let (st, fm) = repo();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 30, 3, 52, 9).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let log = RepoLog::new(st.clone(), fm.clone(), clock.clone()).with_segment_bytes(20_000);
        // Random hex does not compress below half, so 50 lines of 4 KB make several segments
        // (the compressor keeps up to its window before output grows).
        let lines: Vec<String> = (0..50)
            .map(|i| {
                let noise: [u8; 2048] = std::array::from_fn(|_| rand::random());
                format!("{{\"m\":\"entry {i}\",\"x\":\"{}\"}}\n", hex::encode(noise))
            })
            .collect();
        for (i, l) in lines.iter().enumerate() {
            if i == 25 {
                clock.advance(std::time::Duration::from_secs(3));
            }
            log.append(l.as_bytes()).unwrap();
        }
        let ids = log.close().unwrap();
        assert!(
            ids.len() > 1,
            "a 20 KB segment size splits the log: {ids:?}"
        );
        let mut all = String::new();
        for (n, id) in ids.iter().enumerate() {
            // _log_<local time>_<4 hex>_<start>_<end>_<segment>_<32 hex>
            let parts: Vec<&str> = id.split('_').collect();
            assert_eq!(parts.len(), 8, "{id}");
            assert_eq!(format!("_log_{}_{}", parts[2], parts[3]), log.prefix);
            assert_eq!(parts[3].len(), 4);
            assert_eq!(parts[6], (n + 1).to_string());
            let (start, end): (i64, i64) = (parts[4].parse().unwrap(), parts[5].parse().unwrap());
            assert!(start <= end && start >= t0.timestamp() && end <= t0.timestamp() + 3);
            assert_eq!(parts[7].len(), 32);
            all.push_str(&read_back(&*st, &fm, id));
        }
        assert_eq!(all, lines.concat());
        // The ids are what the storage holds under Kopia's prefix.
        let mut listed: Vec<String> = st
            .list_all(LOG_BLOB_PREFIX)
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want);
    }

    #[test]
    fn an_empty_log_writes_nothing() {
        let (st, fm) = repo();
        let log = RepoLog::new(st.clone(), fm, Arc::new(kopr_blob::clock::SystemClock));
        assert!(log.close().unwrap().is_empty());
        assert!(st.list_all(LOG_BLOB_PREFIX).unwrap().is_empty());
    }
}
