//! The maintenance parameters manifest (`type: maintenance`): owner, cycles, log retention.

use std::collections::BTreeMap;

use kopr_format::maintenance::MaintenanceParams;

use crate::error::{RepoError, Result};
use crate::repository::Repository;

/// Labels of the maintenance parameters manifest.
pub fn manifest_labels() -> BTreeMap<String, String> {
    kopr_format::labels::of_type(kopr_format::labels::MAINTENANCE)
}

/// The stored parameters, or Kopia's defaults when none are stored.
pub fn get_params(repo: &Repository) -> Result<MaintenanceParams> {
    let found = repo.manifests().find(&manifest_labels())?;
    let Some(latest) = found.last() else {
        return Ok(MaintenanceParams::kopia_default());
    };
    serde_json::from_str(latest.data.get()).map_err(|e| {
        RepoError::Invalid(format!(
            "maintenance parameters manifest {} is malformed: {e}",
            latest.id
        ))
    })
}

/// Replaces the stored parameters (the caller flushes).
pub fn set_params(repo: &Repository, params: &MaintenanceParams) -> Result<()> {
    let old = repo.manifests().find(&manifest_labels())?;
    for e in old {
        repo.manifests().delete(&e.id)?;
    }
    repo.manifests().put(manifest_labels(), params)?;
    Ok(())
}

/// `user@host` of the repository's writer identity.
pub fn this_user(repo: &Repository) -> String {
    let id = &repo.options().identity;
    format!("{}@{}", id.user, id.host)
}
