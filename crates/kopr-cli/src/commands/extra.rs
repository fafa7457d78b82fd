//! `snapshot pin` and `cache info | clear`, kept apart from the larger command modules.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_repo::snapshot::{list_snapshots, load_snapshot};
use kopr_repo::Repository;

use super::{format_timestamp, Context};
use crate::app::CacheCommand;
use crate::config::ConnectionConfig;
use crate::units;

/// Kopia's `snapshot pin`: adds and removes pins (which keep a snapshot from expiring) on
/// snapshots given by manifest id or by root object id. As Kopia, a changed snapshot is saved
/// as a new manifest and the old one deleted, so its manifest id changes.
pub fn pin(
    cfg: &ConnectionConfig,
    repo: &Repository,
    ids: &[String],
    add: &[String],
    remove: &[String],
) -> Result<()> {
    if add.is_empty() && remove.is_empty() {
        bail!("must specify --add and/or --remove");
    }
    if cfg.read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    for id in ids {
        let manifests = match load_snapshot(repo, &id.into()) {
            Ok(m) => vec![m],
            Err(_) => {
                let found: Vec<_> = list_snapshots(repo, None)
                    .with_context(|| format!("error loading snapshot {id}"))?
                    .into_iter()
                    .filter(|m| {
                        m.root_entry
                            .as_ref()
                            .is_some_and(|r| r.object_id.to_string() == *id)
                    })
                    .collect();
                if found.is_empty() {
                    bail!("no snapshots matched {id}");
                }
                found
            }
        };
        for mut m in manifests {
            let before = m.pins.clone();
            let mut pins: std::collections::BTreeSet<String> = m.pins.drain(..).collect();
            pins.extend(add.iter().cloned());
            for r in remove {
                pins.remove(r);
            }
            m.pins = pins.into_iter().collect();
            let what = format!(
                "snapshot at {} of {}",
                format_timestamp(chrono::DateTime::from_timestamp_nanos(m.start_time)),
                m.source
            );
            let mut sorted_before = before;
            sorted_before.sort();
            if m.pins == sorted_before {
                eprintln!("No change for {what}");
                continue;
            }
            eprintln!("Updating {what}");
            let old_id = std::mem::take(&mut m.id);
            repo.manifests()
                .put(m.source.labels(), &m)
                .with_context(|| format!("error pinning {id}"))?;
            repo.manifests()
                .delete(old_id.manifest_id())
                .context("error deleting old manifest")?;
        }
    }
    repo.flush()?;
    Ok(())
}

/// `cache info | clear` on the connection's cache directory (no password needed).
pub fn cache(ctx: &Context, cmd: CacheCommand) -> Result<()> {
    let cfg = ConnectionConfig::load(&ctx.config_path)?;
    let dir = PathBuf::from(&cfg.caching.cache_directory);
    match cmd {
        CacheCommand::Info { path } => {
            if path {
                println!("{}", dir.display());
                return Ok(());
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                // kopr makes the directory when it first caches something.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    println!("{}: 0 files 0 B", dir.display());
                    return Ok(());
                }
                Err(e) => {
                    return Err(e).context("unable to scan cache directory");
                }
            };
            let mut subdirs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            subdirs.sort();
            for sub in subdirs {
                let (count, size) = scan(&sub)?;
                println!(
                    "{}: {count} files {}",
                    sub.display(),
                    units::bytes(size as i64)
                );
            }
            eprintln!("To clear caches use 'kopr cache clear'.");
            Ok(())
        }
        CacheCommand::Clear { partial } => {
            if cfg.caching.cache_directory.is_empty() {
                bail!("caching not enabled");
            }
            let target = match &partial {
                Some(p) => dir.join(p),
                None => dir.clone(),
            };
            // Only what a cache holds is removed: a cache directory pointed at a directory
            // with anything else in it (say, by --cache-directory=$HOME) is refused.
            if partial.is_none() {
                if let Some(name) = crate::config::not_a_cache(&dir) {
                    bail!(
                        "refusing to clear {}: it holds {name:?}, which is not a cache; remove it by hand",
                        dir.display()
                    );
                }
            }
            eprintln!("Clearing cache directory: {}.", target.display());
            match std::fs::remove_dir_all(&target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow!(e).context("error removing cache directory")),
            }
            create_private_dir(&target).context("error creating cache directory")
        }
        CacheCommand::Set(_) | CacheCommand::Sync { .. } | CacheCommand::Prefetch { .. } => {
            unreachable!("dispatched to cache_set")
        }
    }
}

fn scan(dir: &Path) -> Result<(u64, u64)> {
    let (mut count, mut size) = (0u64, 0u64);
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        let md = e.metadata()?;
        if md.is_dir() {
            let (c, s) = scan(&e.path())?;
            count += c;
            size += s;
        } else {
            count += 1;
            size += md.len();
        }
    }
    Ok((count, size))
}

fn create_private_dir(p: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(p)
}
