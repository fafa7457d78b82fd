//! The maintenance schedule blob `kopia.maintenance`: next due times and the run history of
//! every task, encrypted with a key derived from the master key.

use chrono::{DateTime, Utc};
use kopr_blob::{BlobError, PutOptions};
use kopr_format::maintenance::{
    RunInfo, Schedule, SCHEDULE_BLOB_ID, SCHEDULE_KEY_LEN, SCHEDULE_KEY_PURPOSE,
};

use crate::error::{RepoError, Result};
use crate::repository::Repository;

fn key(repo: &Repository) -> Result<Vec<u8>> {
    repo.format()
        .derive_key(SCHEDULE_KEY_PURPOSE, SCHEDULE_KEY_LEN)
}

/// The stored schedule, or an empty one when the blob does not exist yet.
pub fn get_schedule(repo: &Repository) -> Result<Schedule> {
    let data = match repo.storage().get_blob(SCHEDULE_BLOB_ID, 0, None) {
        Ok(d) => d,
        Err(BlobError::NotFound(_)) => return Ok(Schedule::default()),
        Err(e) => return Err(e.into()),
    };
    Schedule::open(&key(repo)?, &data)
        .map_err(|e| RepoError::Invalid(format!("maintenance schedule is unreadable: {e}")))
}

/// Stores the schedule.
pub fn set_schedule(repo: &Repository, s: &Schedule) -> Result<()> {
    let sealed = s.seal(&key(repo)?)?;
    repo.storage()
        .put_blob(SCHEDULE_BLOB_ID, &sealed, &PutOptions::default())?;
    Ok(())
}

/// When the schedule blob was last written, by the storage's clock.
pub fn schedule_blob_time(repo: &Repository) -> Result<DateTime<Utc>> {
    Ok(repo.storage().get_metadata(SCHEDULE_BLOB_ID)?.timestamp)
}

/// Appends a run of `task` to the stored schedule (re-read first, as other tasks wrote it).
pub fn record_run(repo: &Repository, task: &str, info: RunInfo) -> Result<()> {
    let mut s = get_schedule(repo)?;
    s.report_run(task, info);
    set_schedule(repo, &s)
}
