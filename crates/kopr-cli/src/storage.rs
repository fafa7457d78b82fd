//! Building blob storage from a connection's storage config.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use serde_json::json;

use crate::config::StorageConfig;

/// The storage config of a filesystem repository at `path`.
pub fn filesystem_config(path: &Path) -> Result<StorageConfig> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(StorageConfig {
        kind: "filesystem".into(),
        config: json!({ "path": abs.to_string_lossy() }),
    })
}

/// Opens the storage a config describes; `create` makes a missing filesystem directory.
pub fn open_or_create(cfg: &StorageConfig, create: bool) -> Result<Arc<dyn BlobStorage>> {
    match cfg.kind.as_str() {
        "filesystem" => {
            let Some(path) = cfg.config.get("path").and_then(|p| p.as_str()) else {
                bail!("invalid filesystem storage config: no path");
            };
            let st = if create {
                FilesystemStorage::create(path)
            } else {
                FilesystemStorage::open(path)
            }
            .with_context(|| format!("cannot open filesystem storage at {path}"))?;
            Ok(Arc::new(st))
        }
        other => bail!("unsupported storage type: {other}"),
    }
}

/// Opens existing storage.
pub fn open(cfg: &StorageConfig) -> Result<Arc<dyn BlobStorage>> {
    open_or_create(cfg, false)
}
