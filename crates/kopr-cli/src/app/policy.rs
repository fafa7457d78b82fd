//! `policy …`: the policy commands' clap types.

use clap::{Args, Subcommand};

/// `policy …`
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set snapshot policy for a single directory, user@host or a global policy.
    Set(PolicySetArgs),
    /// Show snapshot policy.
    #[command(visible_alias = "get")]
    Show {
        /// Target: a path, user@host[:path], @host.
        target: Option<String>,
        /// Show the global policy.
        #[arg(long)]
        global: bool,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// List policies.
    #[command(visible_alias = "ls")]
    List {
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Edit policy.
    Edit(crate::commands::policy::PolicyTargets),
    /// Remove policy.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete(crate::commands::policy::PolicyDeleteArgs),
    /// Exports the policies to the specified file, or to stdout if none is specified.
    Export(crate::commands::policy::PolicyExportArgs),
    /// Imports policies from a specified file, or stdin if no file is specified.
    Import(crate::commands::policy::PolicyImportArgs),
}

/// `policy set` flags (Kopia's names).
#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// Target: a path, user@host[:path], @host.
    pub target: Option<String>,
    /// Set the global policy.
    #[arg(long)]
    pub global: bool,
    /// Number of most recent backups to keep per source (or 'inherit').
    #[arg(long = "keep-latest")]
    pub keep_latest: Option<String>,
    /// Number of most-recent hourly backups to keep per source (or 'inherit').
    #[arg(long = "keep-hourly")]
    pub keep_hourly: Option<String>,
    /// Number of most-recent daily backups to keep per source (or 'inherit').
    #[arg(long = "keep-daily")]
    pub keep_daily: Option<String>,
    /// Number of most-recent weekly backups to keep per source (or 'inherit').
    #[arg(long = "keep-weekly")]
    pub keep_weekly: Option<String>,
    /// Number of most-recent monthly backups to keep per source (or 'inherit').
    #[arg(long = "keep-monthly")]
    pub keep_monthly: Option<String>,
    /// Number of most-recent annual backups to keep per source (or 'inherit').
    #[arg(long = "keep-annual")]
    pub keep_annual: Option<String>,
    /// Compression algorithm ('none' or a compressor name, 'inherit' to clear).
    #[arg(long)]
    pub compression: Option<String>,
    /// Add extensions that are never compressed (e.g. .zip).
    #[arg(long = "add-never-compress")]
    pub add_never_compress: Vec<String>,
    /// Add extensions that are the only ones compressed.
    #[arg(long = "add-only-compress")]
    pub add_only_compress: Vec<String>,
    /// Minimum file size to compress.
    #[arg(long = "compression-min-size")]
    pub compression_min_size: Option<i64>,
    /// Add ignore rules (gitignore syntax).
    #[arg(long = "add-ignore")]
    pub add_ignore: Vec<String>,
    /// Remove ignore rules.
    #[arg(long = "remove-ignore")]
    pub remove_ignore: Vec<String>,
    /// Add names of per-directory ignore files.
    #[arg(long = "add-dot-ignore")]
    pub add_dot_ignore: Vec<String>,
    /// Ignore cache directories, those holding a CACHEDIR.TAG ('true', 'false', 'inherit').
    #[arg(long = "ignore-cache-dirs", value_parser = ["true", "false", "inherit"])]
    pub ignore_cache_dirs: Option<String>,
    /// Ignore errors reading files while traversing ('true', 'false', 'inherit').
    #[arg(long = "ignore-file-errors", value_parser = ["true", "false", "inherit"])]
    pub ignore_file_errors: Option<String>,
    /// Ignore errors reading directories while traversing ('true', 'false', 'inherit').
    #[arg(long = "ignore-dir-errors", value_parser = ["true", "false", "inherit"])]
    pub ignore_dir_errors: Option<String>,
    /// Every other section of Kopia's policy.
    #[command(flatten)]
    pub more: crate::commands::policy_set::PolicySetMoreArgs,
}
