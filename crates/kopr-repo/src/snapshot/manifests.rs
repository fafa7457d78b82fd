//! Snapshot manifests: listing the snapshots of a source and loading one by manifest id.
//!
//! This module depends on the manifest store only, so that policies (retention reads the
//! snapshots of a source) do not depend on the upload, which itself reads policies.

use std::collections::BTreeMap;

use kopr_format::labels;
use kopr_format::snapshot::{SnapshotId, SnapshotManifest, SourceInfo};

use crate::error::{RepoError, Result};
use crate::repository::Repository;

/// Snapshots of `source`, oldest first.
pub fn list_snapshots(
    repo: &Repository,
    source: Option<&SourceInfo>,
) -> Result<Vec<SnapshotManifest>> {
    let labels = snapshot_labels(source);
    let mut out = Vec::new();
    for e in repo.manifests().find(&labels)? {
        let mut m: SnapshotManifest = serde_json::from_str(e.data.get()).map_err(|err| {
            RepoError::Invalid(format!("snapshot manifest {} is malformed: {err}", e.id))
        })?;
        m.id = e.id.into();
        out.push(m);
    }
    out.sort_by_key(|m| m.start_time);
    Ok(out)
}

/// Loads one snapshot by manifest id.
pub fn load_snapshot(repo: &Repository, id: &SnapshotId) -> Result<SnapshotManifest> {
    let (e, mut m): (_, SnapshotManifest) = repo.manifests().get(id.manifest_id())?;
    if !is_snapshot(&e.labels) {
        return Err(RepoError::Invalid(format!(
            "manifest {id} is not a snapshot"
        )));
    }
    m.id = e.id.into();
    Ok(m)
}

/// The labels that find snapshot manifests: of `source`, or of every source.
pub fn snapshot_labels(source: Option<&SourceInfo>) -> BTreeMap<String, String> {
    match source {
        Some(s) => s.labels(),
        None => labels::of_type(labels::SNAPSHOT),
    }
}

/// Whether a manifest's labels are a snapshot's.
pub fn is_snapshot(labels: &BTreeMap<String, String>) -> bool {
    labels::type_of(labels) == Some(labels::SNAPSHOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_labels_are_found_again() {
        let all = snapshot_labels(None);
        assert_eq!(all.len(), 1);
        assert!(is_snapshot(&all));
        let source = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/p".into(),
        };
        let one = snapshot_labels(Some(&source));
        assert!(is_snapshot(&one));
        assert_eq!(one.get("hostname").map(String::as_str), Some("h"));
        let policy: BTreeMap<String, String> = [("type".to_string(), "policy".to_string())].into();
        assert!(!is_snapshot(&policy));
    }
}
