//! Kopia's global flags for logging, progress and credentials.

use std::path::PathBuf;

use clap::Args;

/// Kopia's global flags for logging, progress and credentials. Each also reads `KOPR_<NAME>`
/// and then Kopia's `KOPIA_<NAME>` from the environment.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Console log level: debug, info, warning, error [env: KOPR_LOG_LEVEL, KOPIA_LOG_LEVEL].
    #[arg(long = "log-level", global = true, value_name = "LEVEL", value_parser = crate::logging::LEVELS)]
    pub log_level: Option<String>,
    /// File log level (default debug) [env: KOPR_FILE_LOG_LEVEL, KOPIA_FILE_LOG_LEVEL].
    #[arg(long = "file-log-level", global = true, value_name = "LEVEL", value_parser = crate::logging::LEVELS)]
    pub file_log_level: Option<String>,
    /// Override log file [env: KOPR_LOG_FILE, KOPIA_LOG_FILE].
    #[arg(long = "log-file", global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Directory where log files should be written (default: the per-user cache)
    /// [env: KOPR_LOG_DIR, KOPIA_LOG_DIR].
    #[arg(long = "log-dir", global = true, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Disable file-based logging.
    #[arg(long = "disable-file-logging", global = true)]
    pub disable_file_logging: bool,
    /// Maximum number of log files to retain [env: KOPIA_LOG_DIR_MAX_FILES].
    #[arg(long = "log-dir-max-files", global = true, hide = true)]
    pub log_dir_max_files: Option<usize>,
    /// Maximum age of log files to retain [env: KOPIA_LOG_DIR_MAX_AGE].
    #[arg(long = "log-dir-max-age", global = true, hide = true)]
    pub log_dir_max_age: Option<String>,
    /// Maximum total size of log files to retain [env: KOPIA_LOG_DIR_MAX_SIZE_MB].
    #[arg(long = "log-dir-max-total-size-mb", global = true, hide = true)]
    pub log_dir_max_total_size_mb: Option<f64>,
    /// Maximum size of a single log file segment [env: KOPIA_LOG_FILE_MAX_SEGMENT_SIZE].
    #[arg(long = "max-log-file-segment-size", global = true, hide = true)]
    pub max_log_file_segment_size: Option<u64>,
    /// Enable progress output (default: on a terminal).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub progress: Option<bool>,
    /// Disable progress output.
    #[arg(long = "no-progress", global = true, conflicts_with = "progress")]
    pub no_progress: bool,
    /// Persist credentials (default true) [env: KOPR_PERSIST_CREDENTIALS_ON_CONNECT,
    /// KOPIA_PERSIST_CREDENTIALS_ON_CONNECT].
    #[arg(long = "persist-credentials", global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub persist_credentials: Option<bool>,
    /// Do not persist credentials.
    #[arg(
        long = "no-persist-credentials",
        global = true,
        conflicts_with = "persist_credentials"
    )]
    pub no_persist_credentials: bool,
    /// Use the operating system's keyring for storing passwords [env: KOPR_USE_KEYRING,
    /// KOPIA_USE_KEYRING]; kopr has no keyring support, so asking for it is an error.
    #[arg(long = "use-keyring", global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub use_keyring: Option<bool>,
    /// Do not use the keyring.
    #[arg(long = "no-use-keyring", global = true, conflicts_with = "use_keyring")]
    pub no_use_keyring: bool,
    /// Repository format upgrade owner-id (default: user@host of the connection)
    /// [env: KOPR_REPO_UPGRADE_OWNER_ID, KOPIA_REPO_UPGRADE_OWNER_ID].
    #[arg(long = "upgrade-owner-id", global = true, hide = true)]
    pub upgrade_owner_id: Option<String>,
    /// Disable repository log [env: KOPR_DISABLE_REPOSITORY_LOG, KOPIA_DISABLE_REPOSITORY_LOG].
    #[arg(long = "disable-repository-log", global = true, hide = true)]
    pub disable_repository_log: bool,
}
