//! Kopia's checks of a storage provider's semantics (`repository validate-provider`), over
//! several equivalent connections to the same storage, in Kopia's order: listing of an empty
//! prefix, not-found answers for a missing blob (whole, ranged, metadata), read-after-write of a
//! 5 MB blob, conditional create, listing by prefix right after the write, range reads, full
//! read, metadata (length, timestamp within the permitted clock drift), then concurrent writers
//! and readers on every connection. kopr adds two checks Kopia leaves to its cleanup: every
//! concurrently written blob is listed, and deleted blobs are gone (read, metadata, listing).
//! Everything is written under a random `z…` prefix and deleted at the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::{Rng, RngCore, SeedableRng};

use crate::{BlobError, BlobStorage, PutOptions};

mod concurrency;
use concurrency::concurrency_test;

/// Kopia's options (`DefaultOptions`).
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    /// Largest accepted difference between a new blob's timestamp and the local clock.
    pub max_clock_drift: Duration,
    /// How long the concurrency test runs (every worker does at least one round).
    pub concurrency_test_duration: Duration,
    /// PutBlob workers.
    pub put_blob_workers: usize,
    /// GetBlob workers.
    pub get_blob_workers: usize,
    /// GetMetadata workers.
    pub get_metadata_workers: usize,
    /// Largest blob the concurrency test writes.
    pub max_blob_length: usize,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            max_clock_drift: Duration::from_secs(180),
            concurrency_test_duration: Duration::from_secs(30),
            put_blob_workers: 3,
            get_blob_workers: 3,
            get_metadata_workers: 3,
            max_blob_length: 10_000_000,
        }
    }
}

/// A semantic the provider got wrong (or a storage error on the way).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

type VResult<T> = std::result::Result<T, ValidationError>;

fn err<T>(msg: impl Into<String>) -> VResult<T> {
    Err(ValidationError(msg.into()))
}

fn ctx<T>(r: crate::Result<T>, what: &str) -> VResult<T> {
    r.map_err(|e| ValidationError(format!("{what}: {e}")))
}

/// Equivalent connections, one picked at random per call.
struct Connections<'a>(&'a [Arc<dyn BlobStorage>]);

impl Connections<'_> {
    fn pick(&self) -> &dyn BlobStorage {
        let i = rand::thread_rng().gen_range(0..self.0.len());
        &*self.0[i]
    }
}

fn verify_blob_count(st: &dyn BlobStorage, prefix: &str, want: usize) -> VResult<()> {
    let got = ctx(st.list_all(prefix), "error listing blobs")?;
    if got.len() != want {
        return err(format!(
            "unexpected number of blobs returned for prefix {prefix}: {}, wanted {want}",
            got.len()
        ));
    }
    Ok(())
}

fn is_not_found<T>(r: &crate::Result<T>) -> bool {
    matches!(r, Err(BlobError::NotFound(_)))
}

fn describe<T: std::fmt::Debug>(r: &crate::Result<T>) -> String {
    match r {
        Ok(_) => "no error".into(),
        Err(e) => e.to_string(),
    }
}

/// Runs the checks; `log` gets Kopia's progress lines. Needs at least one connection.
pub fn validate_provider(
    connections: &[Arc<dyn BlobStorage>],
    opt: &ValidationOptions,
    now: &dyn Fn() -> DateTime<Utc>,
    log: &(dyn Fn(&str) + Sync),
) -> VResult<()> {
    let Some(first) = connections.first() else {
        return err("no storage connection to validate");
    };
    let st = Connections(connections);
    let mut rnd = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut rnd);
    let uber = format!("z{}", hex::encode(rnd));
    let written = Mutex::new(Vec::new());
    let result = run_checks(&st, &uber, opt, now, log, &written);
    log("Cleaning up temporary data...");
    // What the listing shows and what was written: a lagging listing may hide some.
    let mut doomed = written.into_inner().unwrap_or_default();
    if let Ok(all) = first.list_all(&uber) {
        doomed.extend(all.into_iter().map(|b| b.id));
    }
    doomed.sort();
    doomed.dedup();
    for id in doomed {
        let _ = first.delete_blob(&id);
    }
    result
}

fn run_checks(
    st: &Connections<'_>,
    uber: &str,
    opt: &ValidationOptions,
    now: &dyn Fn() -> DateTime<Utc>,
    log: &(dyn Fn(&str) + Sync),
    written_ids: &Mutex<Vec<String>>,
) -> VResult<()> {
    let prefix1 = format!("{uber}a");
    let prefix2 = format!("{uber}b");
    let b1 = format!("{prefix1}1");

    log("Validating blob list responses");
    verify_blob_count(st.pick(), uber, 0)
        .map_err(|e| ValidationError(format!("invalid blob count: {e}")))?;

    check_missing(st, &b1, log)?;

    let data: Vec<u8> = [1u8, 2, 3, 4, 5].repeat(1_000_000);
    log(&format!("Writing blob ({} bytes)", data.len()));
    if let Ok(mut w) = written_ids.lock() {
        w.push(b1.clone());
    }
    ctx(
        st.pick().put_blob(&b1, &data, &PutOptions::default()),
        "error writing blob #1",
    )?;

    log("Validating conditional creates...");
    let _ = st.pick().put_blob(
        &b1,
        &[99],
        &PutOptions {
            do_not_overwrite: true,
            ..PutOptions::default()
        },
    );
    // Refused or unsupported are both fine; replacing the blob is not.
    let len = ctx(st.pick().get_metadata(&b1), "error getting metadata")?.length;
    if len != data.len() as u64 {
        return err("PutBlob with do-not-overwrite replaced an existing blob");
    }

    log("Validating list responses...");
    verify_blob_count(st.pick(), uber, 1)
        .map_err(|e| ValidationError(format!("invalid uber blob count: {e}")))?;
    verify_blob_count(st.pick(), &prefix1, 1)
        .map_err(|e| ValidationError(format!("invalid blob count with prefix 1: {e}")))?;
    verify_blob_count(st.pick(), &prefix2, 0)
        .map_err(|e| ValidationError(format!("invalid blob count with prefix 2: {e}")))?;

    check_reads(st, &b1, &data, opt, now, log)?;

    log(&format!(
        "Running concurrency test for {:?}...",
        opt.concurrency_test_duration
    ));
    let written = concurrency_test(st, &prefix2, opt, written_ids)
        .map_err(|e| ValidationError(format!("error validating concurrency: {e}")))?;

    log("Validating listing of concurrently written blobs...");
    let listed = ctx(st.pick().list_all(&prefix2), "error listing blobs")?;
    for (id, len) in &written {
        match listed.iter().find(|b| &b.id == id) {
            None => return err(format!("blob {id} was written but is not listed")),
            Some(b) if b.length != *len as u64 => {
                return err(format!(
                    "blob {id} is listed with length {}, wanted {len}",
                    b.length
                ))
            }
            Some(_) => {}
        }
    }

    check_deletion(st, uber, &b1, &written, log)?;
    log("All good.");
    Ok(())
}

/// Reads of a blob that does not exist fail with "not found".
fn check_missing(st: &Connections<'_>, b1: &str, log: &(dyn Fn(&str) + Sync)) -> VResult<()> {
    log("Validating non-existent blob responses");
    let r = st.pick().get_blob(b1, 0, None);
    if !is_not_found(&r) {
        return err(format!(
            "got unexpected error when reading non-existent blob: {}",
            describe(&r)
        ));
    }
    let r = st.pick().get_blob(b1, 0, Some(5));
    if !is_not_found(&r) {
        return err(format!(
            "got unexpected error when reading non-existent partial blob: {}",
            describe(&r)
        ));
    }
    let r = st.pick().get_metadata(b1);
    if !is_not_found(&r) {
        return err(format!(
            "got unexpected error when getting metadata for non-existent blob: {}",
            describe(&r)
        ));
    }
    Ok(())
}

/// Partial and full reads of `b1` give back `data`, and its metadata its length and a time
/// close to the local clock.
fn check_reads(
    st: &Connections<'_>,
    b1: &str,
    data: &[u8],
    opt: &ValidationOptions,
    now: &dyn Fn() -> DateTime<Utc>,
    log: &(dyn Fn(&str) + Sync),
) -> VResult<()> {
    log("Validating partial reads...");
    for (offset, length) in [
        (0u64, 10u64),
        (1, 10),
        (2, 1),
        (5, 0),
        (data.len() as u64 - 5, 5),
    ] {
        let got = ctx(
            st.pick().get_blob(b1, offset, Some(length)),
            &format!("got unexpected error when reading partial blob @{offset}+{length}"),
        )?;
        let want = &data[offset as usize..(offset + length) as usize];
        if got != want {
            return err(format!(
                "got unexpected data after reading partial blob @{offset}+{length}: {}, wanted {}",
                hex::encode(&got[..got.len().min(32)]),
                hex::encode(&want[..want.len().min(32)])
            ));
        }
    }

    log("Validating full reads...");
    let got = ctx(
        st.pick().get_blob(b1, 0, None),
        "got unexpected error when reading partial blob",
    )?;
    if got != data {
        return err(format!(
            "got unexpected data after reading blob: {} bytes, wanted {}",
            got.len(),
            data.len()
        ));
    }

    log("Validating metadata...");
    let bm = ctx(
        st.pick().get_metadata(b1),
        "got unexpected error when getting metadata for blob",
    )?;
    if bm.length != data.len() as u64 {
        return err(format!(
            "invalid length returned by GetMetadata(): {}, wanted {}",
            bm.length,
            data.len()
        ));
    }
    let t = now();
    let drift = (t - bm.timestamp).abs();
    if drift > chrono::Duration::from_std(opt.max_clock_drift).unwrap_or(chrono::Duration::MAX) {
        return err(format!(
            "newly-written blob has a timestamp very different from local clock: {}, expected {}. Max difference allowed is {:?}",
            bm.timestamp, t, opt.max_clock_drift
        ));
    }
    Ok(())
}

/// Deleted blobs read as "not found" and are no longer listed.
fn check_deletion(
    st: &Connections<'_>,
    uber: &str,
    b1: &str,
    written: &[(String, usize)],
    log: &(dyn Fn(&str) + Sync),
) -> VResult<()> {
    log("Validating deletion...");
    ctx(st.pick().delete_blob(b1), "error deleting blob")?;
    for (id, _) in written {
        ctx(st.pick().delete_blob(id), "error deleting blob")?;
    }
    let r = st.pick().get_blob(b1, 0, None);
    if !is_not_found(&r) {
        return err(format!(
            "got unexpected result when reading a deleted blob: {}",
            describe(&r)
        ));
    }
    let r = st.pick().get_metadata(b1);
    if !is_not_found(&r) {
        return err(format!(
            "got unexpected result when getting metadata of a deleted blob: {}",
            describe(&r)
        ));
    }
    verify_blob_count(st.pick(), uber, 0)
        .map_err(|e| ValidationError(format!("deleted blobs are still listed: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultyStorage;
    use crate::memory::MemoryStorage;

    fn quick() -> ValidationOptions {
        ValidationOptions {
            concurrency_test_duration: Duration::ZERO,
            max_blob_length: 100_000,
            ..ValidationOptions::default()
        }
    }

    fn run(conns: &[Arc<dyn BlobStorage>]) -> (VResult<()>, Vec<String>) {
        let lines = Mutex::new(Vec::new());
        let r = validate_provider(conns, &quick(), &Utc::now, &|l: &str| {
            lines.lock().unwrap().push(l.to_string())
        });
        (r, lines.into_inner().unwrap())
    }

    #[test]
    fn a_well_behaved_storage_passes_every_check_and_is_left_clean() {
        let mem: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::default());
        mem.put_blob("kopia.repository", b"{}", &PutOptions::default())
            .unwrap();
        let (r, lines) = run(&[mem.clone(), mem.clone(), mem.clone()]);
        r.unwrap();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("Cleaning up temporary data...")
        );
        assert!(lines.iter().any(|l| l == "All good."));
        let left: Vec<String> = mem
            .list_all("")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(left, vec!["kopia.repository".to_string()]);

        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn BlobStorage> =
            Arc::new(crate::filesystem::FilesystemStorage::create(dir.path()).unwrap());
        run(&[fs.clone(), fs]).0.unwrap();
    }

    #[test]
    fn a_storage_whose_listing_lags_fails() {
        let faulty = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::default())));
        // A new blob appears in listings only after two more writes.
        faulty.set_list_lag(2);
        let conn: Arc<dyn BlobStorage> = faulty.clone();
        let (r, lines) = run(&[conn]);
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with(
                "invalid uber blob count: unexpected number of blobs returned for prefix z"
            ),
            "{e}"
        );
        assert!(e.ends_with(": 0, wanted 1"), "{e}");
        assert!(!lines.iter().any(|l| l == "All good."));
        assert!(faulty.hidden_by_lag() > 0);
        // The cleanup deletes what it wrote even though the listing does not show it.
        faulty.set_list_lag(0);
        assert!(faulty.list_all("").unwrap().is_empty());
    }

    #[test]
    fn wrong_not_found_answers_and_corrupted_range_reads_fail() {
        // Reads of missing blobs that do not say "not found".
        let faulty = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::default())));
        faulty.add_rule(crate::fault::Rule::new(
            crate::fault::Op::Get,
            "z",
            1,
            crate::fault::Fault::Permanent,
        ));
        let e = run(&[faulty]).0.unwrap_err().to_string();
        assert!(
            e.starts_with("got unexpected error when reading non-existent blob"),
            "{e}"
        );
        // Range reads that return the wrong bytes.
        let faulty = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::default())));
        faulty.add_rule(crate::fault::Rule::new(
            crate::fault::Op::Get,
            "z",
            5,
            crate::fault::Fault::FlipByte(0),
        ));
        let e = run(&[faulty]).0.unwrap_err().to_string();
        assert!(
            e.starts_with("got unexpected data after reading partial blob @0+10"),
            "{e}"
        );
    }
}
