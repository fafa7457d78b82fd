//! `repository upgrade begin | validate | rollback`: Kopia's format upgrade under an upgrade
//! lock (as in Kopia, only with `KOPIA_UPGRADE_LOCK_ENABLED` set).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use kopr_blob::BlobStorage;
use kopr_repo::format_params::{self, LockOutcome, RawFormat, UpgradeLockIntent};

use super::{info, throttled};
use crate::commands::repository::parse_duration_nanos;
use crate::commands::Context;
use crate::config::ConnectionConfig;
use crate::{storage, units};

/// `repository upgrade …` (Kopia's; as in Kopia it needs `KOPIA_UPGRADE_LOCK_ENABLED` set).
#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Begin upgrade.
    Begin(UpgradeBeginArgs),
    /// Rollback the repository upgrade.
    Rollback {
        /// Force rollback the repository upgrade, this action can cause repository corruption.
        #[arg(long)]
        force: bool,
    },
    /// Validate the upgraded indexes.
    Validate,
}

/// `repository upgrade begin` flags (Kopia's).
#[derive(Debug, Args)]
pub struct UpgradeBeginArgs {
    /// Max time it should take all other Kopia clients to drop repository connections.
    #[arg(long = "io-drain-timeout", default_value = "15m")]
    pub io_drain_timeout: String,
    /// Force using an unsafe io-drain-timeout for the upgrade lock.
    #[arg(long = "allow-unsafe-upgrade", hide = true)]
    pub allow_unsafe_upgrade: bool,
    /// An advisory polling interval to check for the status of upgrade.
    #[arg(long = "status-poll-interval", default_value = "60s")]
    pub status_poll_interval: String,
    /// The maximum drift between repository and client clocks.
    #[arg(long = "max-permitted-clock-drift", default_value = "5m")]
    pub max_permitted_clock_drift: String,
    /// Advertise the upgrade lock and exit without actually performing the drain or upgrade.
    #[arg(long = "lock-only", hide = true)]
    pub lock_only: bool,
    /// Commit behaviour: always, or never (exit before commit); default commits when valid.
    #[arg(long = "commit-mode", hide = true, value_parser = ["always", "never"])]
    pub commit_mode: Option<String>,
}
fn require_upgrade_enabled() -> Result<()> {
    let set = ["KOPIA_UPGRADE_LOCK_ENABLED", "KOPR_UPGRADE_LOCK_ENABLED"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !set {
        bail!("please set \"KOPIA_UPGRADE_LOCK_ENABLED\" env variable to use this feature");
    }
    Ok(())
}

/// Opens the storage and the format of the connected repository, locked or not.
fn open_raw(ctx: &Context) -> Result<(ConnectionConfig, Arc<dyn BlobStorage>, RawFormat)> {
    let cfg = ConnectionConfig::load(&ctx.config_path)?;
    if cfg.read_only {
        return Err(crate::commands::ReadOnlyConnection.into());
    }
    let st = throttled(storage::open(&cfg.storage)?, cfg.throttling);
    let password = ctx.password("Enter password to open repository: ", true)?;
    let mut raw = RawFormat::open(st.as_ref(), &password).map_err(|e| match e {
        kopr_repo::RepoError::InvalidPassword => anyhow!("invalid repository password"),
        e => anyhow!(e).context("unable to open repository"),
    })?;
    // The format was read from storage; the local copies are dropped by every write.
    raw.blob_cache = cfg.format_blob_cache();
    Ok((cfg, st, raw))
}

/// Kopia's `repository upgrade begin | validate | rollback`.
pub fn upgrade(ctx: &Context, cmd: UpgradeCommand) -> Result<()> {
    require_upgrade_enabled()?;
    let clock: Arc<dyn kopr_blob::clock::Clock> = Arc::new(kopr_blob::clock::SystemClock);
    match cmd {
        UpgradeCommand::Rollback { force } => {
            if !force {
                bail!("repository upgrade lock can only be revoked unsafely; please use the --force flag");
            }
            let (_, st, raw) = open_raw(ctx)?;
            format_params::rollback_upgrade(st.as_ref(), &raw)
                .context("failed to rollback the upgrade")?;
            info("Repository upgrade lock has been revoked.");
            Ok(())
        }
        UpgradeCommand::Validate => {
            let (_, st, raw) = open_raw(ctx)?;
            validate_upgrade(st, &raw, clock)
        }
        UpgradeCommand::Begin(a) => begin_upgrade(ctx, a, clock),
    }
}

fn validate_upgrade(
    st: Arc<dyn BlobStorage>,
    raw: &RawFormat,
    clock: Arc<dyn kopr_blob::clock::Clock>,
) -> Result<()> {
    let msgs = format_params::validate_migrated_indexes(st, raw, clock)?;
    if msgs.is_empty() {
        info("index validation succeeded");
        return Ok(());
    }
    tracing::error!(target: "cli", "inconsistencies found in migrated index:");
    for m in &msgs {
        tracing::error!(target: "cli", "{m}");
    }
    bail!("repository will remain locked until index differences are resolved")
}

fn begin_upgrade(
    ctx: &Context,
    a: UpgradeBeginArgs,
    clock: Arc<dyn kopr_blob::clock::Clock>,
) -> Result<()> {
    const MIN_DRAIN_NANOS: i64 = 15 * 60 * 1_000_000_000;
    let drain = parse_duration_nanos(&a.io_drain_timeout)?;
    if drain < MIN_DRAIN_NANOS && !a.allow_unsafe_upgrade {
        bail!("minimum required io-drain-timeout is 15m0s");
    }
    let (cfg, st, mut raw) = open_raw(ctx)?;
    let owner = ctx
        .upgrade_owner_id
        .clone()
        .unwrap_or_else(|| format!("{}@{}", cfg.username, cfg.hostname));
    let intent = UpgradeLockIntent {
        owner_id: owner,
        creation_time: clock.now(),
        advance_notice_nanos: 0,
        io_drain_timeout_nanos: drain,
        status_poll_interval_nanos: parse_duration_nanos(&a.status_poll_interval)?,
        message: format!(
            "Upgrading from format version {} -> {}",
            raw.config.version,
            format_params::MAX_FORMAT_VERSION
        ),
        max_permitted_clock_drift_nanos: parse_duration_nanos(&a.max_permitted_clock_drift)?,
    };
    let lock = match format_params::place_upgrade_lock(st.as_ref(), &mut raw, intent)
        .context("error setting the upgrade lock intent")?
    {
        LockOutcome::UpToDate => {
            info("Repository format is already upto date.");
            return Ok(());
        }
        LockOutcome::Placed(l) => l,
    };
    info("Repository upgrade lock intent has been placed.");
    if a.lock_only {
        return Ok(());
    }
    // Drain: every other client notices the lock within the io-drain timeout.
    if raw.config.epoch_parameters.enabled {
        info("Repository indices have already been migrated to the epoch format, no need to drain other clients");
    } else {
        wait_for_drain(&lock, clock.as_ref())?;
        info(
            "Successfully drained all repository clients, the lock has been fully-established now.",
        );
        // The upgrade: the index as epoch 0, then the format that uses it.
        info("migrating current indices to epoch format");
        if let Some((c, _)) =
            format_params::migrate_indexes_to_epochs(st.clone(), &raw, clock.clone())?
        {
            raw.write_config(st.as_ref(), c)?;
        }
        info("Repository indices have been upgraded.");
    }
    let validated = validate_upgrade(st.clone(), &raw, clock);
    match (validated, a.commit_mode.as_deref()) {
        (Err(e), Some("always")) => tracing::error!(target: "cli", "{e}"),
        (Err(e), _) => return Err(e),
        (Ok(()), _) => {}
    }
    if a.commit_mode.as_deref() == Some("never") {
        info("Commit mode is set to 'never'.  Skipping commit.");
        return Ok(());
    }
    format_params::commit_upgrade(st.as_ref(), &mut raw).context("error finalizing upgrade")?;
    info("Repository has been successfully upgraded.");
    Ok(())
}

/// Waits until every other client has had the io-drain timeout to notice the upgrade lock.
fn wait_for_drain(lock: &UpgradeLockIntent, clock: &dyn kopr_blob::clock::Clock) -> Result<()> {
    loop {
        let now = clock.now();
        let (locked, drained) = lock.is_locked(now);
        if !locked {
            bail!("upgrade lock got revoked after the intent was placed, giving up");
        }
        if drained {
            break;
        }
        let left = lock.upgrade_time() - now;
        info(format!(
            "Waiting for {} to allow all other kopia clients to drain ...",
            units::duration(left)
        ));
        let poll = chrono::Duration::nanoseconds(lock.status_poll_interval_nanos.max(1));
        std::thread::sleep(left.min(poll).to_std().unwrap_or_default());
    }
    Ok(())
}
