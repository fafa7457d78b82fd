//! `maintenance …`: its subcommands and their flags.

use clap::{Args, Subcommand};

/// `maintenance …`
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Display maintenance information.
    #[command(visible_alias = "status")]
    Info {
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Set maintenance parameters.
    Set(MaintenanceSetArgs),
    /// Run repository maintenance.
    Run(MaintenanceRunArgs),
    /// Explain what keeps deleted data in storage, and when it will leave.
    Explain {
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
        /// Safety level to explain: full or none.
        #[arg(long, default_value = "full", value_parser = ["full", "none"])]
        safety: String,
    },
}

/// `maintenance run` flags.
#[derive(Debug, Args)]
pub struct MaintenanceRunArgs {
    /// Full maintenance.
    #[arg(long)]
    pub full: bool,
    /// Run the cycle that is due, if any (as snapshots do).
    #[arg(long, conflicts_with = "full")]
    pub auto: bool,
    /// Run maintenance even if not owned (unsafe).
    #[arg(long)]
    pub force: bool,
    /// Safety level: full (default) or none (emergencies only).
    #[arg(long, default_value = "full", value_parser = ["full", "none"])]
    pub safety: String,
}

/// `maintenance set` flags (Kopia's names).
#[derive(Debug, Args)]
pub struct MaintenanceSetArgs {
    /// Set maintenance owner user@hostname (`me` for this user).
    #[arg(long)]
    pub owner: Option<String>,
    /// Enable or disable quick maintenance.
    #[arg(long = "enable-quick", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub enable_quick: Option<bool>,
    /// Disable quick maintenance.
    #[arg(long = "no-enable-quick", conflicts_with = "enable_quick")]
    pub no_enable_quick: bool,
    /// Enable or disable full maintenance.
    #[arg(long = "enable-full", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub enable_full: Option<bool>,
    /// Disable full maintenance.
    #[arg(long = "no-enable-full", conflicts_with = "enable_full")]
    pub no_enable_full: bool,
    /// Set quick maintenance interval (e.g. 1h).
    #[arg(long = "quick-interval")]
    pub quick_interval: Option<String>,
    /// Set full maintenance interval (e.g. 24h).
    #[arg(long = "full-interval")]
    pub full_interval: Option<String>,
    /// Pause quick maintenance for a specified duration.
    #[arg(long = "pause-quick")]
    pub pause_quick: Option<String>,
    /// Pause full maintenance for a specified duration.
    #[arg(long = "pause-full")]
    pub pause_full: Option<String>,
    /// Set maximum number of log sessions to retain.
    #[arg(long = "max-retained-log-count")]
    pub max_retained_log_count: Option<i64>,
    /// Set maximum age of log sessions to retain.
    #[arg(long = "max-retained-log-age")]
    pub max_retained_log_age: Option<String>,
    /// Set maximum total size of log sessions.
    #[arg(long = "max-retained-log-size-mb")]
    pub max_retained_log_size_mb: Option<i64>,
    /// Extend retention period of locked objects as part of full maintenance.
    #[arg(long = "extend-object-locks", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub extend_object_locks: Option<bool>,
    /// Override list parallelism.
    #[arg(long = "list-parallelism")]
    pub list_parallelism: Option<i64>,
    /// kopr only: full maintenance empties packs more than this percent unused (100: never).
    #[arg(long = "max-unused-percent", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_unused_percent: Option<u32>,
}
