//! Snapshot manifests: listing the snapshots of a source and loading one by manifest id.
//!
//! This module depends on the manifest store only, so that policies (retention reads the
//! snapshots of a source) do not depend on the upload, which itself reads policies.

use kopr_format::snapshot::{SnapshotManifest, SourceInfo};

use crate::error::{RepoError, Result};
use crate::repository::Repository;

/// Snapshots of `source`, oldest first.
pub fn list_snapshots(
    repo: &Repository,
    source: Option<&SourceInfo>,
) -> Result<Vec<SnapshotManifest>> {
    let labels = match source {
        Some(s) => s.labels(),
        None => [("type".to_string(), "snapshot".to_string())].into(),
    };
    let mut out = Vec::new();
    for e in repo.manifests().find(repo.contents(), &labels)? {
        let mut m: SnapshotManifest = serde_json::from_str(e.data.get()).map_err(|err| {
            RepoError::Invalid(format!("snapshot manifest {} is malformed: {err}", e.id))
        })?;
        m.id = e.id;
        out.push(m);
    }
    out.sort_by_key(|m| m.start_time);
    Ok(out)
}

/// Loads one snapshot by manifest id.
pub fn load_snapshot(repo: &Repository, id: &str) -> Result<SnapshotManifest> {
    let (e, mut m): (_, SnapshotManifest) = repo.manifests().get(repo.contents(), id)?;
    if e.labels.get("type").map(String::as_str) != Some("snapshot") {
        return Err(RepoError::Invalid(format!(
            "manifest {id} is not a snapshot"
        )));
    }
    m.id = e.id;
    Ok(m)
}
