//! The one walker of snapshot trees, in the shape of restic's `walker`: it reads directory
//! objects and hands every entry, parents before children, to a [`TreeVisitor`], which may
//! skip a directory's subtree. GC's reachability, verify, storage statistics, content users
//! and the CLI's `ls` walk through it; `diff` (two trees side by side) reads directories with
//! [`read_dir`]. [`resolve`] finds the entry an `ID[/path]` reference names.

use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, Permissions};

use crate::error::{RepoError, Result};
use crate::object::read_object;
use crate::repository::Repository;

/// What the walk does after a visited entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Go on; for a directory, read it and visit its children.
    Descend,
    /// Go on without reading this directory's children.
    Skip,
}

/// The callbacks of [`walk_tree`].
pub trait TreeVisitor {
    /// Called for every entry, parents before children, with its path: the root's as given to
    /// [`walk_tree`], a child's as `parent/name`. An error ends the walk.
    fn visit(&mut self, path: &str, entry: &DirEntry) -> Result<Visit>;

    /// Reads the children of a directory the walk descends into; by default its object,
    /// decoded. An error goes to [`TreeVisitor::dir_error`].
    fn read_dir(
        &mut self,
        repo: &Repository,
        _path: &str,
        entry: &DirEntry,
    ) -> Result<Vec<DirEntry>> {
        read_dir(repo, &entry.object_id)
    }

    /// A directory whose children could not be read: by default the walk ends with the error;
    /// `Ok` goes on without them.
    fn dir_error(&mut self, _path: &str, _entry: &DirEntry, err: RepoError) -> Result<()> {
        Err(err)
    }
}

/// A closure as a [`TreeVisitor`] with the default directory reading.
pub struct VisitFn<F>(pub F);

impl<F: FnMut(&str, &DirEntry) -> Result<Visit>> TreeVisitor for VisitFn<F> {
    fn visit(&mut self, path: &str, entry: &DirEntry) -> Result<Visit> {
        (self.0)(path, entry)
    }
}

/// Walks the tree of `root` (depth first, children in stored order), calling `visitor` for
/// every entry; directories are read only when the visitor descends into them.
pub fn walk_tree(
    repo: &Repository,
    root: &DirEntry,
    root_path: &str,
    visitor: &mut dyn TreeVisitor,
) -> Result<()> {
    if visitor.visit(root_path, root)? == Visit::Skip || root.entry_type != EntryType::Directory {
        return Ok(());
    }
    let children = match visitor.read_dir(repo, root_path, root) {
        Ok(c) => c,
        Err(err) => return visitor.dir_error(root_path, root, err),
    };
    for child in &children {
        walk_tree(repo, child, &format!("{root_path}/{}", child.name), visitor)?;
    }
    Ok(())
}

/// The entries of the directory object `oid`.
pub fn read_dir(repo: &Repository, oid: &ObjectId) -> Result<Vec<DirEntry>> {
    Ok(DirManifest::decode(&read_object(repo.contents(), oid)?)?.entries)
}

/// Resolves `ID[/sub/path]`, where ID is a snapshot manifest id or an object id, to the entry
/// it names (an object id's entry has only its id and type).
pub fn resolve(repo: &Repository, spec: &str) -> Result<DirEntry> {
    let (head, rest) = spec.split_once('/').unwrap_or((spec, ""));
    let mut entry = match super::load_snapshot(repo, &head.into()) {
        Ok(m) => m
            .root_entry
            .ok_or_else(|| RepoError::Invalid(format!("snapshot {head} has no root")))?,
        Err(_) => object_entry(repo, head)?,
    };
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        if entry.entry_type != EntryType::Directory {
            return Err(RepoError::NotFound(format!(
                "{part}: parent is not a directory"
            )));
        }
        entry = read_dir(repo, &entry.object_id)?
            .into_iter()
            .find(|e| e.name == part)
            .ok_or_else(|| RepoError::NotFound(format!("{part} not found in {spec}")))?;
    }
    Ok(entry)
}

/// An entry for a bare object id: a directory when its content is a directory's (`k`) or its
/// bytes decode as one.
fn object_entry(repo: &Repository, head: &str) -> Result<DirEntry> {
    let oid: ObjectId = head.parse().map_err(|e| {
        RepoError::NotFound(format!(
            "{head:?} is neither a snapshot ID nor an object ID: {e}"
        ))
    })?;
    let is_dir = oid.content_id().and_then(|c| c.prefix()) == Some(b'k')
        || read_object(repo.contents(), &oid)
            .ok()
            .is_some_and(|b| DirManifest::decode(&b).is_ok());
    Ok(DirEntry {
        name: String::new(),
        entry_type: if is_dir {
            EntryType::Directory
        } else {
            EntryType::File
        },
        permissions: Permissions(0),
        file_size: 0,
        mod_time: 0,
        user_id: 0,
        group_id: 0,
        object_id: oid,
        dir_summary: None,
    })
}
