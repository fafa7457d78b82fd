//! `logs …`: the repository log commands' clap types.

use clap::{Args, Subcommand};

/// `logs …`
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// List logs.
    #[command(visible_alias = "ls")]
    List {
        #[command(flatten)]
        sel: LogSelection,
    },
    /// Show contents of the log. When no flags or arguments are specified, only the last log
    /// is shown.
    #[command(visible_alias = "cat")]
    Show {
        /// Log Session ID to show.
        ids: Vec<String>,
        #[command(flatten)]
        sel: LogSelection,
    },
    /// Clean up logs.
    Cleanup {
        /// Maximal age.
        #[arg(long = "max-age", default_value = "720h")]
        max_age: String,
        /// Maximal number of files to keep.
        #[arg(long = "max-count", default_value_t = 10000)]
        max_count: i64,
        /// Maximal total size in MiB.
        #[arg(long = "max-total-size-mb", default_value_t = 1024)]
        max_total_size_mb: i64,
        /// Do not delete.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

/// Which log sessions `logs list | show` take.
#[derive(Debug, Args)]
pub struct LogSelection {
    /// Show all logs.
    #[arg(long)]
    pub all: bool,
    /// Include last N logs, by default the last one is shown.
    #[arg(long, short = 'n', default_value_t = 0)]
    pub latest: usize,
    /// Include logs younger than X (e.g. '1h').
    #[arg(long = "younger-than")]
    pub younger_than: Option<String>,
    /// Include logs older than X (e.g. '1h').
    #[arg(long = "older-than")]
    pub older_than: Option<String>,
}

impl LogSelection {
    /// Whether any selection flag was given.
    pub fn any(&self) -> bool {
        self.all || self.latest > 0 || self.younger_than.is_some() || self.older_than.is_some()
    }
}
