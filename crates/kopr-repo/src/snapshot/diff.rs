//! Differences between two snapshot trees, skipping identical subtrees by object id.

use std::collections::BTreeMap;

use kopr_format::snapshot::{DirEntry, EntryType};

use super::walk::read_dir;
use crate::error::Result;
use crate::repository::Repository;

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Present only in the second tree.
    Added(String, EntryType),
    /// Present only in the first tree.
    Removed(String, EntryType),
    /// Present in both with different contents or metadata.
    Modified(String, EntryType),
}

/// Differences between two directory entries' trees; identical subtrees are skipped by id.
pub fn diff(repo: &Repository, a: &DirEntry, b: &DirEntry) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_dirs(repo, a, b, ".", &mut out)?;
    Ok(out)
}

fn diff_dirs(
    repo: &Repository,
    a: &DirEntry,
    b: &DirEntry,
    path: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a.object_id == b.object_id {
        return Ok(());
    }
    let load = |e: &DirEntry| -> Result<BTreeMap<String, DirEntry>> {
        Ok(read_dir(repo, &e.object_id)?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect())
    };
    let (left, right) = (load(a)?, load(b)?);
    for (name, l) in &left {
        let p = format!("{path}/{name}");
        match right.get(name) {
            None => out.push(Change::Removed(p, l.entry_type)),
            Some(r)
                if l.entry_type == EntryType::Directory && r.entry_type == EntryType::Directory =>
            {
                diff_dirs(repo, l, r, &p, out)?;
            }
            Some(r) => {
                if l.object_id != r.object_id
                    || l.entry_type != r.entry_type
                    || l.permissions != r.permissions
                {
                    out.push(Change::Modified(p, r.entry_type));
                }
            }
        }
    }
    for (name, r) in &right {
        if !left.contains_key(name) {
            out.push(Change::Added(format!("{path}/{name}"), r.entry_type));
        }
    }
    Ok(())
}
