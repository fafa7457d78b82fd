//! `snapshot fix`: snapshots rewritten without some of their entries, as Kopia's directory
//! rewriter does. Every directory of a snapshot is read; each entry goes through a callback
//! that keeps it, replaces it or drops it; a directory whose entries changed is written again
//! (with its summary recomputed as Kopia's builder does), and so are its parents up to the
//! root. Entries that cannot be read are failed, kept, dropped, or replaced by a small stub
//! file named `.INVALID.<name>` that records what was there and why it went.

use std::collections::{HashMap, HashSet};

use kopr_format::snapshot::{
    DirEntry, DirManifest, DirectorySummary, EntryType, SnapshotManifest, DIRECTORY_STREAM,
};
use kopr_format::BlobId;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::object::{object_entries, read_object, write_object, WriterOptions};
use crate::repository::Repository;

/// What happens to an entry that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedEntry {
    /// The rewrite fails.
    Fail,
    /// A stub file replaces it.
    Stub,
    /// It stays as it is.
    Keep,
    /// It is dropped.
    Remove,
}

impl FailedEntry {
    /// Kopia's flag values: `fail`, `stub`, `keep`, `remove`.
    pub fn by_name(s: &str) -> Option<Self> {
        Some(match s {
            "fail" => FailedEntry::Fail,
            "stub" => FailedEntry::Stub,
            "keep" => FailedEntry::Keep,
            "remove" => FailedEntry::Remove,
            _ => return None,
        })
    }
}

/// The entry callback: the entry's path from the root and the entry; returns its
/// replacement, or `None` to drop it.
pub type RewriteEntry<'a> =
    dyn FnMut(&Repository, &str, &DirEntry) -> Result<Option<DirEntry>> + 'a;

/// Kopia's stub document.
#[derive(Serialize)]
struct Stub<'a> {
    info: &'a str,
    error: &'a str,
    entry: &'a DirEntry,
}

/// What replaces an entry that failed, per `how`.
pub fn on_failure(
    repo: &Repository,
    how: FailedEntry,
    input: &DirEntry,
    err: &str,
) -> Result<Option<DirEntry>> {
    match how {
        FailedEntry::Fail => Err(RepoError::Invalid(err.to_string())),
        FailedEntry::Keep => Ok(Some(input.clone())),
        FailedEntry::Remove => Ok(None),
        FailedEntry::Stub => {
            let doc = Stub {
                info: "Kopia replaced the original entry with this stub because of an error.",
                error: err,
                entry: input,
            };
            // Go's encoder with prefix "  " and indent "    ", then a newline.
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            doc.serialize(&mut ser)
                .map_err(|e| RepoError::Invalid(format!("error writing stub contents: {e}")))?;
            let text = String::from_utf8_lossy(&buf).replace('\n', "\n  ") + "\n";
            let oid = write_object(
                repo.contents(),
                text.as_bytes(),
                WriterOptions::file_data(None),
            )?;
            Ok(Some(DirEntry {
                name: format!(".INVALID.{}", input.name),
                entry_type: EntryType::File,
                permissions: input.permissions,
                file_size: text.len() as i64,
                mod_time: input.mod_time,
                user_id: input.user_id,
                group_id: input.group_id,
                object_id: oid,
                dir_summary: None,
            }))
        }
    }
}

/// Kopia's directory summary of `entries` (a directory's own count and, when empty, its own
/// time included), failed entries sorted by path, at most ten.
pub fn summarize(entries: &[DirEntry], dir: &DirEntry) -> DirectorySummary {
    let mut s = DirectorySummary::default();
    for e in entries {
        s.max_mod_time = s.max_mod_time.max(e.mod_time);
        match e.entry_type {
            EntryType::Symlink => s.total_symlink_count += 1,
            EntryType::File => {
                s.total_file_count += 1;
                s.total_file_size += e.file_size;
            }
            EntryType::Directory => {
                if let Some(c) = &e.dir_summary {
                    s.total_file_count += c.total_file_count;
                    s.total_file_size += c.total_file_size;
                    s.total_dir_count += c.total_dir_count;
                    s.total_symlink_count += c.total_symlink_count;
                    s.fatal_error_count += c.fatal_error_count;
                    s.ignored_error_count += c.ignored_error_count;
                    s.failed_entries.extend(c.failed_entries.iter().cloned());
                    s.max_mod_time = s.max_mod_time.max(c.max_mod_time);
                }
            }
            _ => {}
        }
    }
    s.total_dir_count += 1;
    if entries.is_empty() {
        s.max_mod_time = dir.mod_time;
    }
    s.incomplete_reason = dir
        .dir_summary
        .as_ref()
        .map(|d| d.incomplete_reason.clone())
        .unwrap_or_default();
    s.failed_entries
        .sort_by(|a, b| a.entry_path.cmp(&b.entry_path));
    s.failed_entries.truncate(10);
    s
}

/// Rewrites snapshots' trees through an entry callback; results are remembered by entry, so a
/// subtree shared by several snapshots is rewritten once.
pub struct DirRewriter<'a> {
    repo: &'a Repository,
    rewrite: Box<RewriteEntry<'a>>,
    on_dir_failure: FailedEntry,
    cache: HashMap<String, Option<DirEntry>>,
}

fn key(e: &DirEntry) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

impl<'a> DirRewriter<'a> {
    /// A rewriter calling `rewrite` on every entry; directories that cannot be read are
    /// handled per `on_dir_failure`.
    pub fn new(
        repo: &'a Repository,
        on_dir_failure: FailedEntry,
        rewrite: Box<RewriteEntry<'a>>,
    ) -> Self {
        DirRewriter {
            repo,
            rewrite,
            on_dir_failure,
            cache: HashMap::new(),
        }
    }

    fn replacement(&mut self, path: &str, input: &DirEntry) -> Result<Option<DirEntry>> {
        let k = key(input);
        if let Some(r) = self.cache.get(&k) {
            return Ok(r.clone());
        }
        let Some(result) = (self.rewrite)(self.repo, path, input)? else {
            return Ok(None);
        };
        let result = if result.entry_type == EntryType::Directory {
            match self.directory(path, &result)? {
                Some(r) => r,
                None => return Ok(None),
            }
        } else {
            result
        };
        self.cache.insert(k, Some(result.clone()));
        Ok(Some(result))
    }

    fn directory(&mut self, path: &str, entry: &DirEntry) -> Result<Option<DirEntry>> {
        let dm = match read_object(self.repo.contents(), &entry.object_id)
            .and_then(|b| DirManifest::decode(&b).map_err(RepoError::from))
        {
            Ok(dm) => dm,
            Err(e) => {
                let msg = format!(
                    "unable to read directory entries of {} ({path}): {e}",
                    entry.object_id
                );
                return on_failure(self.repo, self.on_dir_failure, entry, &msg);
            }
        };
        let mut entries = Vec::with_capacity(dm.entries.len());
        for child in &dm.entries {
            let child_path = if path == "." {
                child.name.clone()
            } else {
                format!("{path}/{}", child.name)
            };
            if let Some(r) = self.replacement(&child_path, child)? {
                entries.push(r);
            }
        }
        // Unchanged entries give back the very same directory.
        if entries == dm.entries {
            return Ok(Some(entry.clone()));
        }
        let summary = summarize(&entries, entry);
        DirManifest::sort_entries(&mut entries);
        let manifest = DirManifest {
            stream: DIRECTORY_STREAM.into(),
            entries,
            summary: Some(summary.clone()),
        };
        let oid = super::dir_builder::write_directory(
            self.repo.contents(),
            &manifest,
            Some(kopr_format::compression::metadata_default()),
        )?;
        let mut out = entry.clone();
        out.object_id = oid;
        out.dir_summary = Some(summary);
        Ok(Some(out))
    }

    /// Rewrites `man`'s tree; returns whether its root changed (then `man.root_entry` is
    /// the new root).
    pub fn rewrite_manifest(&mut self, man: &mut SnapshotManifest) -> Result<bool> {
        let Some(root) = man.root_entry.clone() else {
            return Ok(false);
        };
        let new = match self.replacement(".", &root)? {
            Some(r) => r,
            None => match on_failure(
                self.repo,
                self.on_dir_failure,
                &root,
                &format!("invalid root directory {}", man.id),
            )? {
                Some(r) => r,
                None => return Ok(false),
            },
        };
        if key(&new) == key(&root) {
            return Ok(false);
        }
        man.root_entry = Some(new);
        Ok(true)
    }
}

/// Kopia's check of one file for `snapshot fix invalid-files`: every chunk has a live index
/// entry whose pack exists and is long enough (`packs`: lengths of the pack blobs); with
/// `download`, the whole object is read and authenticated too.
pub fn verify_file(
    repo: &Repository,
    e: &DirEntry,
    packs: &HashMap<BlobId, u64>,
    download: bool,
) -> std::result::Result<(), String> {
    let cm = repo.contents();
    let chunks = object_entries(cm, &e.object_id).map_err(|err| err.to_string())?;
    let mut seen = HashSet::new();
    for chunk in &chunks {
        let Some(cid) = chunk.object.content_id() else {
            return Err(format!("chunk {} is not a content", chunk.object));
        };
        if !seen.insert(cid) {
            continue;
        }
        match cm.content_info(&cid) {
            Ok(Some(info)) if !info.deleted => {
                let end = u64::from(info.pack_offset) + u64::from(info.packed_length);
                match packs.get(&info.pack_blob_id) {
                    None => {
                        return Err(format!(
                            "object {} is backed by missing blob {}",
                            e.object_id, info.pack_blob_id
                        ))
                    }
                    Some(&len) if end > len => {
                        return Err(format!(
                            "object {} is backed by truncated blob {}",
                            e.object_id, info.pack_blob_id
                        ))
                    }
                    _ => {}
                }
            }
            Ok(_) => return Err(format!("content {cid} not found")),
            Err(err) => return Err(err.to_string()),
        }
    }
    if download {
        let data = read_object(cm, &e.object_id).map_err(|err| err.to_string())?;
        if data.len() as i64 != e.file_size {
            return Err(format!(
                "object {} has {} bytes, expected {}",
                e.object_id,
                data.len(),
                e.file_size
            ));
        }
    }
    Ok(())
}

/// The length of every pack blob (`p` and `q`).
pub fn pack_lengths(repo: &Repository) -> Result<HashMap<BlobId, u64>> {
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
