//! `repository sync-to <storage> …`: copies the connected repository's blobs to another
//! storage, as Kopia's command does. The destination gets the source's format blob first (or
//! must already hold a repository with the same unique id); then every source blob missing
//! from it, or newer in the source (`--update`, the default) or of another length, is copied;
//! `--delete` removes destination blobs the source does not have. Reruns copy only what
//! changed. Progress goes to stderr on a terminal.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_blob::{BlobError, BlobMetadata, BlobStorage, PutOptions};
use kopr_format::repository_blob::REPOSITORY_BLOB_ID;

use super::Context;
use crate::app::{SyncStorage, SyncToArgs};
use crate::config::{ConnectionConfig, StorageConfig};
use crate::storage;
use crate::units;

/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(300);

/// The storage config of the destination flags.
fn destination(t: &SyncStorage) -> Result<StorageConfig> {
    match t {
        SyncStorage::Filesystem { fs } => storage::filesystem_config(&fs.path),
        SyncStorage::S3 { s3 } => storage::s3_config(&storage::s3_options(s3)?),
        SyncStorage::Azure { azure } => storage::azure_config(&storage::azure_options(azure)),
        SyncStorage::Gcs { gcs } => storage::gcs_config(&storage::gcs_options(gcs)?),
        SyncStorage::Rclone { rclone } => {
            storage::rclone_config(&storage::rclone_options(rclone, false)?)
        }
        SyncStorage::Webdav { webdav } => {
            storage::webdav_config(&storage::webdav_options(webdav, false)?)
        }
        SyncStorage::Sftp { sftp } => storage::sftp_config(&storage::sftp_options(sftp, false)?),
    }
}

/// A progress line on stderr, redrawn at most every [`PROGRESS_INTERVAL`], only on a terminal.
struct Progress {
    tty: bool,
    last: Mutex<(Instant, String)>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: crate::progress::enabled(),
            last: Mutex::new((Instant::now() - PROGRESS_INTERVAL, String::new())),
        }
    }

    fn show(&self, line: String) {
        if !self.tty {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let pad = last.1.len().saturating_sub(line.len());
        if last.0.elapsed() >= PROGRESS_INTERVAL {
            eprint!("\r{line}{}", " ".repeat(pad));
            let _ = std::io::stderr().flush();
            last.0 = Instant::now();
        }
        last.1 = line;
    }

    fn finish(&self) {
        if !self.tty {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            eprintln!("\r{}", last.1);
            last.1.clear();
            last.0 = Instant::now() - PROGRESS_INTERVAL;
        }
    }
}

/// The `uniqueID` of a format blob.
fn unique_id(format_blob: &[u8]) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_slice(format_blob).context("invalid JSON in kopia.repository")?;
    v.get("uniqueID")
        .and_then(|u| u.as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("kopia.repository has no unique ID"))
}

pub fn run(ctx: &Context, args: SyncToArgs) -> Result<()> {
    let dst_cfg = destination(&args.target)?;
    // The source opens as a repository first: the password and format are checked.
    let (cfg, _repo) = ctx.open_repository()?;
    let src = source_storage(&cfg)?;
    let dst =
        storage::open_or_create(&dst_cfg, true).context("cannot open the sync-to destination")?;
    eprintln!("Synchronizing repositories:");
    eprintln!("  Source:      {}", src.display_name());
    eprintln!("  Destination: {}", dst.display_name());
    if !args.delete {
        eprintln!("NOTE: By default no BLOBs are deleted, pass --delete to allow it.");
    }
    same_repository(&*src, &*dst, args.must_exist)?;
    eprintln!("Looking for BLOBs to synchronize...");
    let progress = Progress::new();
    let dst_blobs = list_destination(&*dst, &progress)?;
    let Compared {
        to_copy,
        copy_bytes,
        in_sync,
        in_sync_bytes,
        dst_blobs,
    } = compare_with_source(&*src, dst_blobs, args.update, &progress)?;
    let to_delete: Vec<BlobMetadata> = if args.delete {
        dst_blobs.into_values().collect()
    } else {
        Vec::new()
    };
    let delete_bytes: u64 = to_delete.iter().map(|m| m.length).sum();
    eprintln!(
        "  Found {} BLOBs to copy ({}), {} BLOBs to delete ({}), {} in sync ({})",
        to_copy.len(),
        units::bytes(copy_bytes as i64),
        to_delete.len(),
        units::bytes(delete_bytes as i64),
        in_sync,
        units::bytes(in_sync_bytes as i64)
    );
    if args.dry_run {
        return Ok(());
    }
    eprintln!("Copying...");
    copy_and_delete(
        &*src,
        &*dst,
        &to_copy,
        &to_delete,
        copy_bytes,
        args.parallel,
        &progress,
    )?;
    progress.finish();
    eprintln!(
        "Copied {} BLOBs ({}), deleted {}.",
        to_copy.len(),
        units::bytes(copy_bytes as i64),
        to_delete.len()
    );
    Ok(())
}

/// Lists the destination's blobs, showing the count found so far.
fn list_destination(
    dst: &dyn BlobStorage,
    progress: &Progress,
) -> Result<HashMap<String, BlobMetadata>> {
    let mut dst_blobs: HashMap<String, BlobMetadata> = HashMap::new();
    let mut dst_bytes = 0u64;
    dst.list_blobs("", &mut |m| {
        dst_bytes += m.length;
        dst_blobs.insert(m.id.clone(), m);
        progress.show(format!(
            "  Found {} BLOBs in the destination repository ({})",
            dst_blobs.len(),
            units::bytes(dst_bytes as i64)
        ));
        Ok(())
    })
    .context("error listing BLOBs in destination repository")?;
    progress.finish();
    Ok(dst_blobs)
}

/// The source's blobs compared with the destination's.
struct Compared {
    /// Blobs missing or different in the destination (newer in the source with `--update`).
    to_copy: Vec<BlobMetadata>,
    copy_bytes: u64,
    in_sync: usize,
    in_sync_bytes: u64,
    /// Destination blobs the source does not have.
    dst_blobs: HashMap<String, BlobMetadata>,
}

/// Lists the source's blobs and sorts each into copy or in sync, removing it from `dst_blobs`.
fn compare_with_source(
    src: &dyn BlobStorage,
    mut dst_blobs: HashMap<String, BlobMetadata>,
    update: bool,
    progress: &Progress,
) -> Result<Compared> {
    let (mut to_copy, mut copy_bytes) = (Vec::new(), 0u64);
    let (mut in_sync, mut in_sync_bytes) = (0usize, 0u64);
    let (mut src_count, mut src_bytes) = (0usize, 0u64);
    src.list_blobs("", &mut |m| {
        src_count += 1;
        src_bytes += m.length;
        match dst_blobs.remove(&m.id) {
            // Whole seconds: S3 and WebDAV keep no fractions, so a copy made in the same
            // second as the source blob would look older and be copied on every run.
            Some(d)
                if d.length == m.length
                    && !(update && m.timestamp.timestamp() > d.timestamp.timestamp()) =>
            {
                in_sync += 1;
                in_sync_bytes += m.length;
            }
            _ => {
                copy_bytes += m.length;
                to_copy.push(m);
            }
        }
        progress.show(format!(
            "  Found {src_count} BLOBs ({}) in the source repository, {} ({}) to copy",
            units::bytes(src_bytes as i64),
            to_copy.len(),
            units::bytes(copy_bytes as i64)
        ));
        Ok(())
    })
    .context("error listing blobs")?;
    progress.finish();
    Ok(Compared {
        to_copy,
        copy_bytes,
        in_sync,
        in_sync_bytes,
        dst_blobs,
    })
}

/// The raw storage of the connected repository (its blobs, read-only use).
fn source_storage(cfg: &ConnectionConfig) -> Result<Arc<dyn BlobStorage>> {
    storage::open(&cfg.storage)
}

/// Puts the source's format blob in an empty destination, or checks that the destination is
/// the same repository.
fn same_repository(src: &dyn BlobStorage, dst: &dyn BlobStorage, must_exist: bool) -> Result<()> {
    let format = src
        .get_blob(REPOSITORY_BLOB_ID, 0, None)
        .context("error reading format blob")?;
    let src_id = unique_id(&format).context("source repository")?;
    match dst.get_blob(REPOSITORY_BLOB_ID, 0, None) {
        Ok(d) => {
            let dst_id = unique_id(&d).context("destination repository")?;
            if dst_id != src_id {
                bail!("destination repository contains incompatible data (another repository: unique ID differs)");
            }
            Ok(())
        }
        Err(BlobError::NotFound(_)) if must_exist => {
            bail!("destination repository does not have a format blob (--must-exist)")
        }
        Err(BlobError::NotFound(_)) => dst
            .put_blob(REPOSITORY_BLOB_ID, &format, &PutOptions::default())
            .context("error saving format blob"),
        Err(e) => Err(anyhow!(e).context("error reading destination repository format blob")),
    }
}

fn copy_and_delete(
    src: &dyn BlobStorage,
    dst: &dyn BlobStorage,
    to_copy: &[BlobMetadata],
    to_delete: &[BlobMetadata],
    total: u64,
    parallel: usize,
    progress: &Progress,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let next_delete = AtomicUsize::new(0);
    let copied = AtomicUsize::new(0);
    let copied_bytes = AtomicU64::new(0);
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let started = Instant::now();
    let stop = || failed.lock().map(|f| f.is_some()).unwrap_or(true);
    let fail = |e: anyhow::Error| {
        if let Ok(mut f) = failed.lock() {
            f.get_or_insert(e);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1) {
            s.spawn(|| {
                while !stop() {
                    let Some(m) = to_copy.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let data = match src.get_blob(&m.id, 0, None) {
                        Ok(d) => d,
                        // deleted in the source since the listing
                        Err(BlobError::NotFound(_)) => continue,
                        Err(e) => {
                            fail(anyhow!(e).context(format!("error copying {}", m.id)));
                            break;
                        }
                    };
                    if let Err(e) = dst.put_blob(&m.id, &data, &PutOptions::default()) {
                        fail(anyhow!(e).context(format!("error copying {}", m.id)));
                        break;
                    }
                    let n = copied.fetch_add(1, Ordering::Relaxed) + 1;
                    let b = copied_bytes.fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let speed = b as f64 / secs;
                    let eta = if speed > 0.0 && total > b {
                        format!("{:.0}s", (total - b) as f64 / speed)
                    } else {
                        "0s".into()
                    };
                    progress.show(format!(
                        "  Copied {n} blobs ({}), Speed: {}/s, ETA: {eta}",
                        units::bytes(b as i64),
                        units::bytes(speed as i64)
                    ));
                }
                while !stop() {
                    let Some(m) = to_delete.get(next_delete.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if let Err(e) = dst.delete_blob(&m.id) {
                        fail(anyhow!(e).context(format!("error deleting {}", m.id)));
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
