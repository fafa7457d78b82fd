//! `snapshot migrate`: snapshots of another repository copied into this one, as Kopia's
//! command does by uploading the source snapshot's tree: every file and symlink object is read
//! from the source repository and written into this one (compressed per this repository's
//! policy), every directory is written again with the new object ids, and the manifest keeps
//! the source's start and end times and description. An object met twice (the same file in
//! several snapshots) is copied once.

use std::collections::HashMap;
use std::io::Read;

use kopr_format::compression;
use kopr_format::object_id::ObjectId;
use kopr_format::policy::Policy;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, SnapshotId, SnapshotManifest};

use crate::error::{RepoError, Result};
use crate::object::{read_object, ObjectReader, ObjectWriter, WriterOptions};
use crate::repository::Repository;

/// Copies snapshot trees from one repository into another.
pub struct Migrator<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    /// Source object → destination object, for objects already copied.
    copied: HashMap<ObjectId, ObjectId>,
    /// Objects copied and their bytes.
    pub objects: u64,
    /// Bytes of file objects read from the source.
    pub bytes: u64,
}

impl<'a> Migrator<'a> {
    /// A migrator from `src` into `dst`.
    pub fn new(src: &'a Repository, dst: &'a Repository) -> Self {
        Migrator {
            src,
            dst,
            copied: HashMap::new(),
            objects: 0,
            bytes: 0,
        }
    }

    fn copy_data(&mut self, e: &DirEntry, policy: &Policy) -> Result<ObjectId> {
        if let Some(o) = self.copied.get(&e.object_id) {
            return Ok(o.clone());
        }
        let compression = compression::resolve(policy.compressor_for(&e.name, e.file_size))?;
        let mut r = ObjectReader::open(self.src.contents(), &e.object_id)?;
        let mut w = ObjectWriter::new(self.dst.contents(), WriterOptions::file_data(compression))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|err| RepoError::Invalid(format!("{}: {err}", e.object_id)))?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
            w.write_bytes(&buf[..n])?;
        }
        let oid = w.result()?;
        self.objects += 1;
        self.copied.insert(e.object_id.clone(), oid.clone());
        Ok(oid)
    }

    /// Copies the tree below `e` (a directory, file or symlink); returns its entry in the
    /// destination.
    pub fn copy_entry(&mut self, e: &DirEntry, policy: &Policy) -> Result<DirEntry> {
        let mut out = e.clone();
        out.object_id = match e.entry_type {
            EntryType::Directory => self.copy_dir(e, policy)?,
            _ => self.copy_data(e, policy)?,
        };
        Ok(out)
    }

    fn copy_dir(&mut self, e: &DirEntry, policy: &Policy) -> Result<ObjectId> {
        if let Some(o) = self.copied.get(&e.object_id) {
            return Ok(o.clone());
        }
        let mut dm = DirManifest::decode(&read_object(self.src.contents(), &e.object_id)?)?;
        for child in &mut dm.entries {
            *child = self.copy_entry(child, policy)?;
        }
        let oid = super::dir_builder::write_directory(
            self.dst.contents(),
            &dm,
            Some(kopr_format::compression::metadata_default()),
        )?;
        self.objects += 1;
        self.copied.insert(e.object_id.clone(), oid.clone());
        Ok(oid)
    }

    /// Copies one snapshot and saves its manifest in the destination (same source, times,
    /// description and statistics); returns the new manifest. Call `flush` on the
    /// destination afterwards (the manifest is saved after its contents are flushed).
    pub fn copy_snapshot(&mut self, m: &SnapshotManifest) -> Result<SnapshotManifest> {
        let policy = crate::policy::effective(self.dst, &m.source)?;
        let mut new = m.clone();
        new.id = SnapshotId::default();
        new.root_entry = match &m.root_entry {
            Some(r) => Some(self.copy_entry(r, &policy)?),
            None => None,
        };
        new.storage_stats = None;
        self.dst.contents().flush()?;
        new.id = self.dst.manifests().put(m.source.labels(), &new)?.into();
        Ok(new)
    }
}
