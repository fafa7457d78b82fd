//! Storage statistics of snapshots, as Kopia's `storageStats`: what each snapshot added to the
//! repository and the running total.

use std::collections::HashSet;

use kopr_format::index::ContentId;
use kopr_format::snapshot::{DirEntry, EntryType, SnapshotManifest};

use super::object_content_ids;
use super::walk::{walk_tree, Visit, VisitFn};
use crate::error::Result;
use crate::repository::Repository;

/// Storage used by snapshots, as in Kopia's `storageStats` (`newData`, `runningTotal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageUsage {
    /// Bytes of new file objects.
    #[serde(rename = "objectBytes")]
    pub object_bytes: i64,
    /// Original bytes of new file contents.
    #[serde(rename = "originalContentBytes")]
    pub original_content_bytes: i64,
    /// Packed bytes of new file contents.
    #[serde(rename = "packedContentBytes")]
    pub packed_content_bytes: i64,
    /// New file objects.
    #[serde(rename = "fileObjects")]
    pub file_objects: i32,
    /// New directory objects.
    #[serde(rename = "dirObjects")]
    pub dir_objects: i32,
    /// New contents.
    #[serde(rename = "contents")]
    pub contents: i32,
}

/// For each snapshot (oldest first), the storage it added and the running total.
pub fn storage_stats(
    repo: &Repository,
    snaps: &[SnapshotManifest],
) -> Result<Vec<(StorageUsage, StorageUsage)>> {
    let mut seen_objects = HashSet::new();
    let mut seen_contents = HashSet::new();
    let mut total = StorageUsage::default();
    let mut out = Vec::with_capacity(snaps.len());
    for m in snaps {
        let mut new = StorageUsage::default();
        if let Some(root) = &m.root_entry {
            walk_tree(
                repo,
                root,
                "",
                &mut VisitFn(|_: &str, e: &DirEntry| -> Result<Visit> {
                    if !seen_objects.insert(e.object_id.clone()) {
                        return Ok(Visit::Skip);
                    }
                    count_object(repo, e, &mut seen_contents, &mut new)?;
                    Ok(Visit::Descend)
                }),
            )?;
        }
        total.object_bytes += new.object_bytes;
        total.original_content_bytes += new.original_content_bytes;
        total.packed_content_bytes += new.packed_content_bytes;
        total.file_objects += new.file_objects;
        total.dir_objects += new.dir_objects;
        total.contents += new.contents;
        out.push((new, total));
    }
    Ok(out)
}

/// Counts an object not seen before in `new`, with its contents not seen before.
fn count_object(
    repo: &Repository,
    e: &DirEntry,
    seen_contents: &mut HashSet<ContentId>,
    new: &mut StorageUsage,
) -> Result<()> {
    let is_dir = e.entry_type == EntryType::Directory;
    if is_dir {
        new.dir_objects += 1;
    } else {
        new.file_objects += 1;
        new.object_bytes += e.file_size;
    }
    for cid in object_content_ids(repo, &e.object_id)? {
        if !seen_contents.insert(cid) {
            continue;
        }
        new.contents += 1;
        if !is_dir {
            if let Some(info) = repo.contents().content_info(&cid)? {
                new.original_content_bytes += i64::from(info.original_length);
                new.packed_content_bytes += i64::from(info.packed_length);
            }
        }
    }
    Ok(())
}
