//! Verifying snapshots: re-reading every content below a root (or, for a share of the files,
//! checking that their contents are indexed and their packs long enough), on worker threads.

use std::collections::HashMap;
use std::sync::Arc;

use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType};
use kopr_format::BlobId;

use super::walk::{walk_tree, TreeVisitor, Visit};
use crate::error::{RepoError, Result};
use crate::object::read_object;
use crate::repository::Repository;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects (files, directories, symlinks) checked.
    pub objects: u64,
    /// Contents read and authenticated.
    pub contents: u64,
    /// Bytes read.
    pub bytes: u64,
    /// `path: error` for every damaged entry.
    pub errors: Vec<String>,
}

/// Re-reads every content below `root`, authenticating and decompressing it.
pub fn verify(repo: &Repository, root: &DirEntry, root_path: &str) -> VerifyReport {
    verify_with(
        repo,
        root,
        root_path,
        &VerifyOptions::default(),
        &mut std::collections::HashSet::new(),
    )
}

/// How [`verify_with`] checks files.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Percentage of files (picked at random) whose contents are read, authenticated and
    /// decoded; the others are checked for index entries of all their contents, as Kopia's
    /// `--verify-files-percent` does. Directories are always read.
    pub files_percent: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            files_percent: 100.0,
        }
    }
}

/// [`verify`] with options; objects in `seen` (filled as it goes) are not checked again, so
/// that the snapshots of one source, which share most objects, are verified in one pass's time.
pub fn verify_with(
    repo: &Repository,
    root: &DirEntry,
    root_path: &str,
    opts: &VerifyOptions,
    seen: &mut std::collections::HashSet<ObjectId>,
) -> VerifyReport {
    let workers = crate::parallelism();
    // What the walk found, in walk order: its own findings and the files' slots.
    let mut order: Vec<Result<VerifyReport, VerifySlot>> = Vec::new();
    // Files not read are checked against the pack blobs, as Kopia does: listed once.
    let packs = if opts.files_percent < 100.0 {
        pack_blob_lengths(repo)
            .map_err(|err| {
                order.push(Ok(VerifyReport {
                    errors: vec![format!("cannot list pack blobs: {err}")],
                    ..Default::default()
                }))
            })
            .ok()
    } else {
        None
    };
    let packs = packs.as_ref();
    let fill = |slot: &VerifySlot, r: VerifyReport| {
        if let Ok(mut g) = slot.lock() {
            *g = Some(r);
        }
    };
    crate::parallel::stream(
        "verification worker",
        workers,
        workers * 4,
        |(e, path, slot): &(DirEntry, String, VerifySlot)| {
            let mut r = VerifyReport::default();
            let read =
                opts.files_percent >= 100.0 || rand::random::<f64>() * 100.0 < opts.files_percent;
            if read {
                check_object(repo, e, path, &mut r);
            } else {
                check_presence(repo, e, path, packs, &mut r);
            }
            fill(slot, r);
        },
        |(_, path, slot), err| {
            let r = VerifyReport {
                errors: vec![format!("{path}: {err}")],
                ..Default::default()
            };
            fill(slot, r);
        },
        |files| {
            let mut walk = VerifyWalk {
                repo,
                files,
                order: &mut order,
                seen,
            };
            // The visitor records every error in the report: the walk itself does not fail.
            let _ = walk_tree(repo, root, root_path, &mut walk);
        },
    );
    merge(order)
}

/// The findings of the walk and of the workers, in walk order, as one report.
fn merge(order: Vec<Result<VerifyReport, VerifySlot>>) -> VerifyReport {
    let mut report = VerifyReport::default();
    for item in order {
        let part = match item {
            Ok(r) => r,
            Err(slot) => slot
                .lock()
                .ok()
                .and_then(|mut g| g.take())
                .unwrap_or_else(|| VerifyReport {
                    errors: vec!["verification worker failed".into()],
                    ..Default::default()
                }),
        };
        report.objects += part.objects;
        report.contents += part.contents;
        report.bytes += part.bytes;
        report.errors.extend(part.errors);
    }
    report
}

/// Where a worker leaves the findings of one file.
type VerifySlot = Arc<std::sync::Mutex<Option<VerifyReport>>>;

/// The walk of [`verify`]: reads directories itself and hands files to the workers.
struct VerifyWalk<'a> {
    repo: &'a Repository,
    files: std::sync::mpsc::SyncSender<(DirEntry, String, VerifySlot)>,
    order: &'a mut Vec<Result<VerifyReport, VerifySlot>>,
    seen: &'a mut std::collections::HashSet<ObjectId>,
}

impl TreeVisitor for VerifyWalk<'_> {
    fn visit(&mut self, path: &str, e: &DirEntry) -> Result<Visit> {
        if !self.seen.insert(e.object_id.clone()) {
            return Ok(Visit::Skip); // verified already, under this or another snapshot
        }
        if e.entry_type == EntryType::Directory {
            return Ok(Visit::Descend);
        }
        let slot = Arc::new(std::sync::Mutex::new(None));
        if self
            .files
            .send((e.clone(), path.to_string(), slot.clone()))
            .is_err()
        {
            let mut r = VerifyReport::default();
            check_object(self.repo, e, path, &mut r);
            self.order.push(Ok(r));
        } else {
            self.order.push(Err(slot));
        }
        Ok(Visit::Skip)
    }

    /// Reads a directory through [`check_object`], so that its contents are counted and its
    /// damage recorded; a damaged directory has no children to visit.
    fn read_dir(&mut self, repo: &Repository, path: &str, e: &DirEntry) -> Result<Vec<DirEntry>> {
        let mut r = VerifyReport::default();
        let children =
            match check_object(repo, e, path, &mut r).map(|bytes| DirManifest::decode(&bytes)) {
                Some(Ok(dm)) => dm.entries,
                Some(Err(err)) => {
                    r.errors.push(format!("{path}: {err}"));
                    Vec::new()
                }
                None => Vec::new(),
            };
        self.order.push(Ok(r));
        Ok(children)
    }
}

/// The length of every pack blob (`p` and `q`).
fn pack_blob_lengths(repo: &Repository) -> Result<HashMap<BlobId, u64>> {
    let mut out = HashMap::new();
    for prefix in [
        kopr_format::pack::PACK_PREFIX_DATA,
        kopr_format::pack::PACK_PREFIX_METADATA,
    ] {
        for bm in repo.storage().list_all(prefix)? {
            out.insert(BlobId::from(bm.id), bm.length);
        }
    }
    Ok(out)
}

/// Checks that every chunk of `e`'s object has a live index entry and, given the pack blobs'
/// lengths, that its pack exists and is long enough to hold it, without reading it.
fn check_presence(
    repo: &Repository,
    e: &DirEntry,
    path: &str,
    packs: Option<&HashMap<BlobId, u64>>,
    report: &mut VerifyReport,
) {
    let cm = repo.contents();
    report.objects += 1;
    let entries = match crate::object::object_entries(cm, &e.object_id) {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(format!("{path}: {err}"));
            return;
        }
    };
    for chunk in &entries {
        let Some(cid) = chunk.object.content_id() else {
            report
                .errors
                .push(format!("{path}: chunk {} is not a content", chunk.object));
            continue;
        };
        match cm.content_info(&cid) {
            Ok(Some(info)) if !info.deleted => {
                report.contents += 1;
                let end = u64::from(info.pack_offset) + u64::from(info.packed_length);
                match packs.map(|p| p.get(&info.pack_blob_id)) {
                    Some(None) => report.errors.push(format!(
                        "{path}: object {} is backed by missing blob {}",
                        e.object_id, info.pack_blob_id
                    )),
                    Some(Some(&len)) if end > len => report.errors.push(format!(
                        "{path}: content {cid} of object {} ends at byte {end} of blob {}, which has {len} bytes",
                        e.object_id, info.pack_blob_id
                    )),
                    _ => {}
                }
            }
            Ok(_) => report.errors.push(format!(
                "{path}: {}",
                RepoError::ContentNotFound(cid.to_string())
            )),
            Err(err) => report.errors.push(format!("{path}: {err}")),
        }
    }
}

/// Reads every chunk of `e`'s object, counting and recording damage in `report`; returns the
/// object's bytes for a directory (empty for other entries), `None` when its chunk list is
/// unreadable.
fn check_object(
    repo: &Repository,
    e: &DirEntry,
    path: &str,
    report: &mut VerifyReport,
) -> Option<Vec<u8>> {
    let cm = repo.contents();
    report.objects += 1;
    let entries = match crate::object::object_entries(cm, &e.object_id) {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(format!("{path}: {err}"));
            return None;
        }
    };
    let mut dir_bytes = Vec::new();
    for chunk in &entries {
        match read_object(cm, &chunk.object) {
            Ok(b) => {
                report.contents += 1;
                report.bytes += b.len() as u64;
                if b.len() as u64 != chunk.length {
                    report.errors.push(format!(
                        "{path}: chunk {} has {} bytes, expected {}",
                        chunk.object,
                        b.len(),
                        chunk.length
                    ));
                }
                if e.entry_type == EntryType::Directory {
                    dir_bytes.extend_from_slice(&b);
                }
            }
            Err(err) => report.errors.push(format!("{path}: {err}")),
        }
    }
    Some(dir_bytes)
}
