//! Content verification (`content verify`): every index entry's pack must exist and hold it,
//! and, for a chosen share of contents, its bytes must authenticate and decode. Damaged
//! contents are traced to the snapshots and paths that use them.

use std::collections::{HashMap, HashSet};

use kopr_format::index::{ContentId, IndexEntry};
use kopr_format::pack::{PACK_PREFIX_DATA, PACK_PREFIX_METADATA};
use kopr_format::snapshot::DirEntry;
use kopr_format::BlobId;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::repository::Repository;
use crate::snapshot::{list_snapshots, object_content_ids, walk_tree, TreeVisitor, Visit};

/// One damaged content.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContentProblem {
    /// The content.
    pub content_id: String,
    /// Its pack.
    pub pack_blob_id: BlobId,
    /// What is wrong.
    pub problem: String,
    /// `snapshot-id path` of every file or directory that needs it.
    pub used_by: Vec<String>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentVerifyReport {
    /// Contents checked.
    pub verified: u64,
    /// Of those, downloaded and decoded.
    pub downloaded: u64,
    /// Damaged contents.
    pub problems: Vec<ContentProblem>,
}

/// Whether the `n`-th content is among `percent` percent, spread evenly.
fn chosen(n: u64, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    if percent <= 0.0 {
        return false;
    }
    let step = 100.0 / percent;
    ((n as f64) / step).floor() != (((n + 1) as f64) / step).floor()
}

/// Verifies every content (deleted ones too when asked), downloading `download_percent` of
/// them, and traces problems to snapshots.
pub fn verify_contents(
    repo: &Repository,
    download_percent: f64,
    include_deleted: bool,
) -> Result<ContentVerifyReport> {
    let mut blobs: HashMap<BlobId, u64> = HashMap::new();
    for p in [PACK_PREFIX_DATA, PACK_PREFIX_METADATA] {
        for bm in repo.storage().list_all(p)? {
            blobs.insert(BlobId::from(bm.id), bm.length);
        }
    }
    let mut report = ContentVerifyReport::default();
    let mut bad: Vec<(IndexEntry, String)> = Vec::new();
    let mut n = 0u64;
    repo.contents()
        .for_each_committed(include_deleted, &mut |e| {
            report.verified += 1;
            let end = u64::from(e.pack_offset) + u64::from(e.packed_length);
            match blobs.get(&e.pack_blob_id) {
                None => bad.push((e.clone(), "pack blob is missing".into())),
                Some(&len) if end > len => bad.push((
                    e.clone(),
                    format!("pack blob is {len} bytes, content ends at {end}"),
                )),
                Some(_) => {
                    if chosen(n, download_percent) {
                        report.downloaded += 1;
                        if let Err(err) = repo.contents().get_content(&e.content_id) {
                            bad.push((e.clone(), err.to_string()));
                        }
                    }
                    n += 1;
                }
            }
            Ok(())
        })?;
    if bad.is_empty() {
        return Ok(report);
    }
    let ids: HashSet<ContentId> = bad.iter().map(|(e, _)| e.content_id).collect();
    let users = trace_users(repo, &ids)?;
    report.problems = bad
        .into_iter()
        .map(|(e, problem)| ContentProblem {
            content_id: e.content_id.to_string(),
            pack_blob_id: e.pack_blob_id,
            problem,
            used_by: users.get(&e.content_id).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(report)
}

/// For each of `ids`, the `snapshot-id path` of the entries that use it.
pub fn trace_users(
    repo: &Repository,
    ids: &HashSet<ContentId>,
) -> Result<HashMap<ContentId, Vec<String>>> {
    let mut out: HashMap<ContentId, Vec<String>> = HashMap::new();
    for m in list_snapshots(repo, None)? {
        let Some(root) = &m.root_entry else { continue };
        let mut users = Users {
            repo,
            ids,
            snapshot: &m.id,
            out: &mut out,
        };
        walk_tree(repo, root, "", &mut users)?;
    }
    Ok(out)
}

/// The visitor of [`trace_users`]: records which of `ids` each entry uses; unreadable objects
/// and directories are skipped (they are reported by their own contents).
struct Users<'a> {
    repo: &'a Repository,
    ids: &'a HashSet<ContentId>,
    snapshot: &'a str,
    out: &'a mut HashMap<ContentId, Vec<String>>,
}

impl TreeVisitor for Users<'_> {
    fn visit(&mut self, path: &str, e: &DirEntry) -> Result<Visit> {
        let Ok(cids) = object_content_ids(self.repo, &e.object_id) else {
            return Ok(Visit::Skip);
        };
        for c in cids.iter().filter(|c| self.ids.contains(c)) {
            let shown = if path.is_empty() { "/" } else { path };
            self.out
                .entry(*c)
                .or_default()
                .push(format!("{} {}", self.snapshot, shown));
        }
        Ok(Visit::Descend)
    }

    fn dir_error(&mut self, _: &str, _: &DirEntry, _: RepoError) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn percentages_pick_that_share_evenly() {
        let count = |p: f64| (0..1000).filter(|&n| chosen(n, p)).count();
        assert_eq!(count(100.0), 1000);
        assert_eq!(count(0.0), 0);
        assert_eq!(count(10.0), 100);
        assert_eq!(count(25.0), 250);
    }
}
