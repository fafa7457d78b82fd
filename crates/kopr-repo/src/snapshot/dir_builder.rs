//! The directory builder of an upload: once a walked directory's files are read and its
//! subdirectories stored, fills in their objects and summaries, totals them, and hands the
//! directory's manifest to the workers to store, children before parents.

use std::fs;
use std::sync::Arc;

use kopr_format::compression;
use kopr_format::snapshot::{
    DirEntry, DirManifest, DirectorySummary, DIRECTORY_PREFIX, DIRECTORY_STREAM,
};

use super::file_pool::{Job, JobSlot};
use super::upload::mtime_nanos;
use super::upload_walk::{PendingDir, Uploader};
use super::INCOMPLETE_CANCELED;
use crate::error::{RepoError, Result};
use crate::object::WriterOptions;

impl Uploader<'_> {
    /// Finishes pending directories in walk order: all of them when `wait`, else those whose
    /// files are all read.
    pub(super) fn finish_pending(&mut self, wait: bool) -> Result<()> {
        if wait {
            self.send_batch()?;
        }
        while let Some(front) = self.pending.front() {
            if !wait && !front.ready() {
                break;
            }
            let Some(pd) = self.pending.pop_front() else {
                break;
            };
            self.finish_dir(pd)?;
        }
        Ok(())
    }

    /// Fills in a walked directory's read files and finished subdirectories, then writes it.
    fn finish_dir(&mut self, pd: PendingDir) -> Result<()> {
        let PendingDir {
            dir,
            mut entries,
            mut summary,
            files,
            subdirs,
            file_entries,
            out,
            ..
        } = pd;
        for (idx, child) in subdirs {
            let (oid, sub) = child.take()?;
            add_subdir(&mut summary, &sub);
            entries[idx].object_id = oid;
            entries[idx].dir_summary = Some(sub);
        }
        let mut failed = self.take_files(&mut entries, &mut summary, files)?;
        for idx in file_entries {
            if failed.contains(&idx) {
                continue;
            }
            let size = entries[idx].file_size;
            summary.total_file_count += 1;
            summary.total_file_size += size;
            self.stats.total_file_count += 1;
            self.stats.total_file_size += size;
        }
        failed.sort_unstable();
        for idx in failed.into_iter().rev() {
            entries.remove(idx);
        }
        self.report();
        // As Kopia: a directory counts itself, and an empty one takes its own mtime.
        summary.total_dir_count += 1;
        if entries.is_empty() {
            summary.max_mod_time = fs::metadata(&dir).map(|m| mtime_nanos(&m)).unwrap_or(0);
        }
        DirManifest::sort_entries(&mut entries);
        let manifest = DirManifest {
            stream: DIRECTORY_STREAM.into(),
            entries,
            summary: Some(summary.clone()),
        };
        let _ = out.summary.set(summary);
        self.send(Job::Dir { manifest, out })
    }

    /// Fills in the objects and lengths of the files read for a directory; returns the entry
    /// indexes of the files that were not (canceled, or unreadable and recorded as errors).
    fn take_files(
        &mut self,
        entries: &mut [DirEntry],
        summary: &mut DirectorySummary,
        files: Vec<(usize, String, Arc<JobSlot>)>,
    ) -> Result<Vec<usize>> {
        let mut failed = Vec::new();
        for (idx, rel_path, slot) in files {
            match slot.take() {
                Ok((oid, len)) => {
                    // The size recorded is what was read, as Kopia does for a file that
                    // changed while it was read.
                    let e = &mut entries[idx];
                    e.object_id = oid;
                    e.file_size = len as i64;
                    // A file listed without its metadata: the worker read it.
                    if let Some(m) = slot.meta.get() {
                        m.apply_to(e);
                        summary.max_mod_time = summary.max_mod_time.max(m.mtime);
                    }
                    self.stats.non_cached_files += 1;
                }
                Err(RepoError::Canceled) => {
                    summary.incomplete_reason = INCOMPLETE_CANCELED.into();
                    failed.push(idx);
                }
                // A file that cannot be read, stored or handled by a worker is an entry error;
                // a failing repository ends the snapshot.
                Err(
                    e @ (RepoError::Local { .. }
                    | RepoError::Invalid(_)
                    | RepoError::Config(_)
                    | RepoError::Worker(_)),
                ) => {
                    self.error(summary, &rel_path, e, false);
                    failed.push(idx);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(failed)
    }
}

/// Adds a finished subdirectory's totals, errors and times to its parent's summary.
/// Stores a directory object as Kopia does: `k`-prefixed contents, compressed (and its chunk
/// list, if any) with the metadata compressor.
pub(crate) fn write_directory(
    cm: &crate::content::ContentManager,
    manifest: &DirManifest,
    metadata: Option<&'static compression::Compressor>,
) -> Result<kopr_format::object_id::ObjectId> {
    crate::object::write_object(
        cm,
        &manifest.encode(),
        WriterOptions {
            prefix: Some(DIRECTORY_PREFIX),
            compression: metadata,
            metadata_compression: metadata,
            splitter: None,
        },
    )
}

fn add_subdir(summary: &mut DirectorySummary, sub: &DirectorySummary) {
    summary.total_file_size += sub.total_file_size;
    summary.total_file_count += sub.total_file_count;
    summary.total_symlink_count += sub.total_symlink_count;
    summary.total_dir_count += sub.total_dir_count;
    summary.fatal_error_count += sub.fatal_error_count;
    summary.ignored_error_count += sub.ignored_error_count;
    if !sub.incomplete_reason.is_empty() {
        summary.incomplete_reason = sub.incomplete_reason.clone();
    }
    summary.max_mod_time = summary.max_mod_time.max(sub.max_mod_time);
    for fe in &sub.failed_entries {
        if summary.failed_entries.len() < 10 {
            summary.failed_entries.push(fe.clone());
        }
    }
}
