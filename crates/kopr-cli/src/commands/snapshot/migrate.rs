//! `snapshot migrate --source-config FILE`: snapshots (and policies) of another repository,
//! given by its connection config, copied into the connected one, with Kopia's flags and log
//! lines. Snapshots already there (same source and start time) are skipped, so a migration
//! that was interrupted can be run again.

use super::*;
use kopr_repo::snapshot::migrate::Migrator;

/// Migrate snapshots from another repository.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Configuration file for the source repository.
    #[arg(long = "source-config", required = true)]
    pub source_config: PathBuf,
    /// List of sources to migrate.
    #[arg(long)]
    pub sources: Vec<String>,
    /// Migrate all sources.
    #[arg(long)]
    pub all: bool,
    /// Migrate policies too.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub policies: bool,
    /// Overwrite policies.
    #[arg(long = "overwrite-policies")]
    pub overwrite_policies: bool,
    /// Only migrate the latest snapshot.
    #[arg(long = "latest-only")]
    pub latest_only: bool,
    /// Number of sources to migrate in parallel (accepted; kopr migrates one at a time).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// When migrating also apply current ignore rules (not supported by kopr yet).
    #[arg(long = "apply-ignore-rules")]
    pub apply_ignore_rules: bool,
}

fn open_source(ctx: &crate::commands::Context, path: &Path) -> Result<Repository> {
    let cfg = ConnectionConfig::load(path)
        .with_context(|| format!("can't open source repository: {}", path.display()))?;
    let st = crate::storage::open(&cfg.storage).context("can't open source repository")?;
    let password = match crate::config::load_password(path) {
        Some(p) => p,
        None => ctx
            .password("Enter password of the source repository: ", false)
            .context("source repository password")?,
    };
    // Read-only: a migration never writes to its source.
    let mut cfg = cfg;
    cfg.read_only = true;
    crate::commands::open_with(st, &password, &cfg, None).context("can't open source repository")
}

fn migrate_policy(
    src: &Repository,
    dst: &Repository,
    si: &SourceInfo,
    overwrite: bool,
) -> Result<()> {
    let Some((_, p)) = kopr_repo::policy::get_defined(src, si)? else {
        return Ok(());
    };
    if kopr_repo::policy::get_defined(dst, si)?.is_some() && !overwrite {
        eprintln!("policy already set for {si}");
        return Ok(());
    }
    eprintln!("migrating policy for {si}");
    kopr_repo::policy::set(dst, si, &p).context("error setting policy")
}

/// `snapshot migrate`.
pub(super) fn migrate(
    ctx: &crate::commands::Context,
    cfg: &ConnectionConfig,
    dst: &Repository,
    a: MigrateArgs,
) -> Result<()> {
    if cfg.read_only {
        return Err(crate::commands::ReadOnlyConnection.into());
    }
    if a.apply_ignore_rules {
        bail!("--apply-ignore-rules is not supported by kopr yet");
    }
    let src = open_source(ctx, &a.source_config)?;
    let sources = sources_to_migrate(cfg, &src, &a)?;
    if a.policies {
        if a.all {
            for (si, _, _) in kopr_repo::policy::list(&src)? {
                if let Err(e) = migrate_policy(&src, dst, &si, a.overwrite_policies) {
                    eprintln!("unable to migrate policy for {si}: {e:#}");
                }
            }
        } else {
            for si in &sources {
                migrate_policy(&src, dst, si, a.overwrite_policies).with_context(|| {
                    format!("unable to migrate policies: unable to migrate policy for {si}")
                })?;
            }
        }
        dst.flush()?;
    }
    let mut m = Migrator::new(&src, dst);
    let mut failed = 0;
    for si in &sources {
        let mut snaps = snap::list_snapshots(&src, Some(si))?;
        if a.latest_only && !snaps.is_empty() {
            snaps = snaps.split_off(snaps.len() - 1);
        }
        let existing = snap::list_snapshots(dst, Some(si))?;
        for s in snaps {
            if !s.incomplete_reason.is_empty() {
                continue;
            }
            let when = ts(s.start_time);
            if existing
                .iter()
                .any(|d| d.source == s.source && d.start_time == s.start_time)
            {
                eprintln!("already migrated {} at {when}", s.source);
                continue;
            }
            eprintln!("migrating snapshot of {} at {when}", s.source);
            if let Err(e) = m.copy_snapshot(&s) {
                eprintln!(
                    "unable to migrate source: error migrating snapshot {} @ {when}: {e}",
                    s.source
                );
                failed += 1;
                break;
            }
        }
    }
    dst.flush()?;
    eprintln!("Migration finished.");
    if failed > 0 {
        bail!("{failed} sources could not be migrated");
    }
    Ok(())
}

/// The sources `--sources` names, or with `--all` every source with a snapshot in `src`.
fn sources_to_migrate(
    cfg: &ConnectionConfig,
    src: &Repository,
    a: &MigrateArgs,
) -> Result<Vec<SourceInfo>> {
    let sources: Vec<SourceInfo> = if !a.sources.is_empty() {
        a.sources
            .iter()
            .map(|s| {
                crate::commands::policy::parse_target(cfg, Some(s), false)
                    .with_context(|| format!("can't retrieve sources: unable to parse {s:?}"))
            })
            .collect::<Result<_>>()?
    } else if a.all {
        let mut v: Vec<SourceInfo> = snap::list_snapshots(src, None)?
            .into_iter()
            .map(|m| m.source)
            .collect();
        v.sort();
        v.dedup();
        v
    } else {
        bail!("can't retrieve sources: must specify either --all or --sources");
    };
    Ok(sources)
}
