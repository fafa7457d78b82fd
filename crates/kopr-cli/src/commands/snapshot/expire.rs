//! `snapshot expire | delete | pin`.

use super::*;

/// Remove old snapshots according to defined expiration policies.
#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Sources (paths) to apply retention to.
    pub paths: Vec<PathBuf>,
    /// Expire all sources.
    #[arg(long)]
    pub all: bool,
    /// Whether to actually delete snapshots.
    #[arg(long)]
    pub delete: bool,
}

/// Add or remove pins preventing snapshot deletion.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Snapshot ID or root object ID.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Add pins.
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove pins.
    #[arg(long)]
    pub remove: Vec<String>,
}

/// Explicitly delete a snapshot by providing a snapshot ID.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Snapshot IDs to be deleted.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Confirm deletion.
    #[arg(long)]
    pub delete: bool,
}

/// `snapshot expire`.
pub(super) fn expire(cfg: &ConnectionConfig, repo: &Repository, a: ExpireArgs) -> Result<()> {
    let ExpireArgs { paths, all, delete } = a;
    let sources: Vec<SourceInfo> = if all {
        let mut v: Vec<SourceInfo> = snap::list_snapshots(repo, None)?
            .into_iter()
            .map(|m| m.source)
            .collect();
        v.sort();
        v.dedup();
        v
    } else if paths.is_empty() {
        bail!("specify paths to expire or --all");
    } else {
        paths
            .iter()
            .map(|p| source_for(cfg, p))
            .collect::<Result<_>>()?
    };
    for si in sources {
        let expired = kopr_repo::policy::expire(repo, &si, delete)?;
        if expired.is_empty() {
            println!("{si}: nothing to expire");
            continue;
        }
        let verb = if delete { "Deleted" } else { "Would delete" };
        println!("{si}: {verb} {} snapshots:", expired.len());
        for m in &expired {
            println!("  {} {}", ts(m.start_time), m.id);
        }
        if !delete {
            println!("(pass --delete to actually delete)");
        }
    }
    Ok(())
}

/// `snapshot pin`.
pub(super) fn pin(cfg: &ConnectionConfig, repo: &Repository, a: PinArgs) -> Result<()> {
    let PinArgs { ids, add, remove } = a;
    super::super::extra::pin(cfg, repo, &ids, &add, &remove)
}

/// `snapshot delete`.
pub(super) fn delete(repo: &Repository, a: DeleteArgs) -> Result<()> {
    let DeleteArgs { ids, delete } = a;
    for id in &ids {
        let m = snap::load_snapshot(repo, &id.into())
            .with_context(|| format!("snapshot {id} not found"))?;
        if !delete {
            println!(
                "Would delete snapshot {id} of {} at {} (pass --delete to confirm)",
                m.source,
                ts(m.start_time)
            );
            continue;
        }
        repo.manifests().delete(m.id.manifest_id())?;
        println!(
            "Deleted snapshot {id} of {} at {}",
            m.source,
            ts(m.start_time)
        );
    }
    repo.flush()?;
    Ok(())
}
