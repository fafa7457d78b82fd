//! The command tree and its flags, mirroring Kopia's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod inspect;
mod maintenance;

pub use inspect::{BlobCommand, IndexEpochCommand, ManifestCommand, SessionCommand};
pub use maintenance::{MaintenanceCommand, MaintenanceRunArgs, MaintenanceSetArgs};

/// Fast and secure backups in Kopia's repository format.
#[derive(Debug, Parser)]
#[command(name = "kopr", version, about, propagate_version = true)]
pub struct Cli {
    /// Specify the config file to use [env: KOPR_CONFIG_PATH, KOPIA_CONFIG_PATH].
    #[arg(long = "config-file", global = true)]
    pub config_file: Option<PathBuf>,
    /// Repository password [env: KOPR_PASSWORD, KOPIA_PASSWORD].
    #[arg(long, short = 'p', global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// Enable dangerous commands that could result in data loss and repository corruption
    /// [env: KOPR_DANGEROUS_COMMANDS, KOPIA_DANGEROUS_COMMANDS].
    #[arg(long = "dangerous-commands", global = true, hide = true)]
    pub dangerous_commands: Option<String>,
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

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

/// Top-level commands.
// Parsed once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Commands to manipulate repository.
    #[command(subcommand, visible_alias = "repo")]
    Repository(Box<RepositoryCommand>),
    /// Commands to manipulate content in repository.
    #[command(subcommand)]
    Content(ContentCommand),
    /// Commands to manipulate BLOBs.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Commands to manipulate content index.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Commands to manipulate snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Commands to manipulate snapshotting policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Maintenance commands.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// List a directory stored in repository object.
    #[command(visible_alias = "list")]
    Ls {
        /// Object ID or snapshot ID (optionally with /sub/path).
        object_path: String,
        /// Long output.
        #[arg(long, short = 'l')]
        long: bool,
        /// Recursive output.
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Show object IDs.
        #[arg(long = "show-object-id", short = 'o')]
        show_object_id: bool,
    },
    /// Mount a snapshot (or `all` snapshots) as a read-only filesystem (FUSE).
    Mount {
        /// Snapshot ID or object ID (optionally with /sub/path), or `all`.
        what: String,
        /// Where to mount: an existing empty directory.
        mountpoint: std::path::PathBuf,
    },
    /// Displays the contents of a repository object.
    #[command(visible_alias = "cat")]
    Show {
        /// Object ID or snapshot ID (optionally with /sub/path).
        object_path: String,
    },
    /// Commands to manipulate logs stored in the repository.
    #[command(subcommand, visible_alias = "log")]
    Logs(LogsCommand),
    /// Commands to manipulate local cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Restore a directory or file from a snapshot into the specified target path
    /// (the same as `snapshot restore`).
    Restore(crate::commands::snapshot::RestoreArgs),
    /// Displays differences between two repository objects (the same as `snapshot diff`).
    #[command(visible_alias = "compare")]
    Diff(crate::commands::snapshot::DiffArgs),
    /// Session commands.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Low-level commands to manipulate manifest items.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout,
    /// e.g. `source <(kopr completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages generated from the command line (kopr.1 and one page per subcommand,
    /// e.g. kopr-snapshot-create.1) into a directory (kopr's own).
    Man {
        /// Directory to write the pages to (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Commands to test performance of algorithms.
    #[command(subcommand)]
    Benchmark(crate::commands::benchmark::BenchmarkCommand),
    /// Commands to control HTTP API server (Kopia's JSON API and kopr's web UI).
    #[command(subcommand)]
    Server(crate::commands::server::ServerCommand),
    /// Notifications.
    #[command(subcommand, visible_alias = "notifications")]
    Notification(crate::commands::notification::NotificationCommand),
}

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

/// `snapshot …`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Creates a snapshot of local directory or file.
    Create(crate::commands::snapshot::CreateArgs),
    /// List snapshots of files and directories.
    #[command(visible_alias = "list")]
    Ls(crate::commands::snapshot::LsArgs),
    /// Restore a directory or file from a snapshot into the specified target path.
    Restore(crate::commands::snapshot::RestoreArgs),
    /// Verify snapshots: directories are read, the contents of a share of the files are read,
    /// authenticated and decoded, and those of the others must have index entries. Objects
    /// shared by several snapshots are checked once.
    Verify(crate::commands::snapshot::VerifyArgs),
    /// Displays differences between two snapshots (or directory object IDs).
    Diff(crate::commands::snapshot::DiffArgs),
    /// Remove old snapshots according to defined expiration policies.
    Expire(crate::commands::snapshot::ExpireArgs),
    /// Add or remove pins preventing snapshot deletion.
    Pin(crate::commands::snapshot::PinArgs),
    /// Explicitly delete a snapshot by providing a snapshot ID.
    Delete(crate::commands::snapshot::DeleteArgs),
    /// Estimate the snapshot size and upload time.
    Estimate(crate::commands::snapshot::EstimateArgs),
    /// Performs a copy of the history of snapshots from another user or host.
    #[command(name = "copy-history")]
    CopyHistory(crate::commands::snapshot::HistoryArgs),
    /// Performs a move of the history of snapshots from another user or host.
    #[command(name = "move-history")]
    MoveHistory(crate::commands::snapshot::HistoryArgs),
    /// Commands to fix snapshot consistency issues.
    #[command(subcommand)]
    Fix(crate::commands::snapshot::FixCommand),
    /// Migrate snapshots from another repository.
    Migrate(crate::commands::snapshot::MigrateArgs),
}

/// `repository …`
#[derive(Debug, Subcommand)]
pub enum RepositoryCommand {
    /// Create new repository in a specified location.
    #[command(subcommand)]
    Create(CreateStorage),
    /// Connect to a repository.
    #[command(subcommand)]
    Connect(ConnectStorage),
    /// Disconnect from a repository.
    Disconnect,
    /// Display the status of connected repository.
    Status(StatusArgs),
    /// Find every Kopia repository under a storage location and summarize each, read-only
    /// (kopr's own).
    Scan(crate::commands::scan::ScanArgs),
    /// Change repository password.
    ChangePassword {
        /// New password [env: KOPR_NEW_PASSWORD, KOPIA_NEW_PASSWORD].
        #[arg(long = "new-password", hide_env_values = true)]
        new_password: Option<String>,
    },
    /// Synchronizes the contents of this repository to another location.
    #[command(name = "sync-to")]
    SyncTo(SyncToArgs),
    /// Set repository parameters.
    #[command(name = "set-parameters", visible_alias = "set-params")]
    SetParameters(crate::commands::repo_admin::SetParametersArgs),
    /// Set repository client options.
    #[command(name = "set-client")]
    SetClient(crate::commands::repo_admin::SetClientArgs),
    /// Commands to manipulate throttling parameters.
    #[command(subcommand)]
    Throttle(crate::commands::repo_admin::ThrottleCommand),
    /// Validates that a repository provider is compatible with Kopia.
    #[command(name = "validate-provider")]
    ValidateProvider(crate::commands::repo_admin::ValidateProviderArgs),
    /// Upgrade repository format (needs KOPIA_UPGRADE_LOCK_ENABLED set, as in Kopia).
    #[command(subcommand)]
    Upgrade(crate::commands::repo_admin::UpgradeCommand),
}

/// `repository sync-to` flags (Kopia's) and the destination storage.
#[derive(Debug, Args)]
pub struct SyncToArgs {
    /// Whether to update blobs present in destination and source if the source is newer.
    #[arg(long, global = true, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub update: bool,
    /// Whether to delete blobs present in destination but not source.
    #[arg(long, global = true)]
    pub delete: bool,
    /// Do not perform copying.
    #[arg(long = "dry-run", short = 'n', global = true)]
    pub dry_run: bool,
    /// Copy parallelism.
    #[arg(long, global = true, default_value_t = 1)]
    pub parallel: usize,
    /// Fail if destination does not have repository format blob.
    #[arg(long = "must-exist", global = true)]
    pub must_exist: bool,
    /// Where to copy to.
    #[command(subcommand)]
    pub target: SyncStorage,
}

/// Storage kinds for `repository sync-to`.
#[derive(Debug, Subcommand)]
pub enum SyncStorage {
    /// Synchronize repository data to another repository in a filesystem.
    Filesystem {
        #[command(flatten)]
        fs: FilesystemArgs,
    },
    /// Synchronize repository data to another repository in an S3 bucket.
    S3 {
        #[command(flatten)]
        s3: S3Args,
    },
    /// Synchronize repository data to another repository in an Azure blob storage.
    Azure {
        #[command(flatten)]
        azure: AzureArgs,
    },
    /// Synchronize repository data to another repository in a Google Cloud Storage bucket.
    Gcs {
        #[command(flatten)]
        gcs: GcsArgs,
    },
    /// Synchronize repository data to another repository in an rclone-supported storage.
    Rclone {
        #[command(flatten)]
        rclone: RcloneArgs,
    },
    /// Synchronize repository data to another repository in a WebDAV storage.
    Webdav {
        #[command(flatten)]
        webdav: WebDavArgs,
    },
    /// Synchronize repository data to another repository in an SFTP storage.
    Sftp {
        #[command(flatten)]
        sftp: SftpArgs,
    },
}

/// Storage kinds for `repository create`.
#[derive(Debug, Subcommand)]
pub enum CreateStorage {
    /// Create a repository in a filesystem.
    Filesystem {
        #[command(flatten)]
        fs: FilesystemArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in an S3 bucket.
    S3 {
        #[command(flatten)]
        s3: S3Args,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in an Azure blob storage.
    Azure {
        #[command(flatten)]
        azure: AzureArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in a Google Cloud Storage bucket.
    Gcs {
        #[command(flatten)]
        gcs: GcsArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in an rclone-supported storage.
    Rclone {
        #[command(flatten)]
        rclone: RcloneArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in a WebDAV storage.
    Webdav {
        #[command(flatten)]
        webdav: WebDavArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create a repository in an SFTP storage.
    Sftp {
        #[command(flatten)]
        sftp: SftpArgs,
        #[command(flatten)]
        create: CreateArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Storage kinds for `repository connect`.
#[derive(Debug, Subcommand)]
pub enum ConnectStorage {
    /// Connect to a repository in a filesystem.
    Filesystem {
        #[command(flatten)]
        fs: FilesystemArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in an S3 bucket.
    S3 {
        #[command(flatten)]
        s3: S3Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in an Azure blob storage.
    Azure {
        #[command(flatten)]
        azure: AzureArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in a Google Cloud Storage bucket.
    Gcs {
        #[command(flatten)]
        gcs: GcsArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in an rclone-supported storage.
    Rclone {
        #[command(flatten)]
        rclone: RcloneArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in a WebDAV storage.
    Webdav {
        #[command(flatten)]
        webdav: WebDavArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Connect to a repository in an SFTP storage.
    Sftp {
        #[command(flatten)]
        sftp: SftpArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Azure blob storage flags (Kopia's names and environment variables).
#[derive(Debug, Args)]
pub struct AzureArgs {
    /// Name of the Azure blob container.
    #[arg(long)]
    pub container: String,
    /// Azure storage account name.
    #[arg(long = "storage-account", env = "AZURE_STORAGE_ACCOUNT")]
    pub storage_account: String,
    /// Azure storage account key.
    #[arg(
        long = "storage-key",
        env = "AZURE_STORAGE_KEY",
        hide_env_values = true
    )]
    pub storage_key: Option<String>,
    /// Azure storage domain (blob.core.windows.net when not given).
    #[arg(long = "storage-domain", env = "AZURE_STORAGE_DOMAIN")]
    pub storage_domain: Option<String>,
    /// Azure SAS Token.
    #[arg(
        long = "sas-token",
        env = "AZURE_STORAGE_SAS_TOKEN",
        hide_env_values = true
    )]
    pub sas_token: Option<String>,
    /// Prefix to use for objects in the bucket.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

/// Google Cloud Storage flags (Kopia's names).
#[derive(Debug, Args)]
pub struct GcsArgs {
    /// Name of the Google Cloud Storage bucket.
    #[arg(id = "gcs_bucket", long = "bucket")]
    pub bucket: String,
    /// Prefix to use for objects in the bucket.
    #[arg(id = "gcs_prefix", long = "prefix", default_value = "")]
    pub prefix: String,
    /// Use read-only GCS scope to prevent write access.
    #[arg(id = "gcs_read_only", long = "read-only")]
    pub read_only: bool,
    /// Use the provided JSON file with credentials.
    #[arg(id = "gcs_credentials_file", long = "credentials-file")]
    pub credentials_file: Option<PathBuf>,
    /// Embed GCS credentials JSON in the repository configuration.
    #[arg(id = "gcs_embed_credentials", long = "embed-credentials")]
    pub embed_credentials: bool,
}

/// rclone storage flags (Kopia's names).
#[derive(Debug, Args)]
pub struct RcloneArgs {
    /// Rclone remote:path.
    #[arg(id = "rclone_remote_path", long = "remote-path")]
    pub remote_path: String,
    /// Use flat directory structure.
    #[arg(id = "rclone_flat", long = "flat")]
    pub flat: bool,
    /// Path to rclone binary.
    #[arg(id = "rclone_exe", long = "rclone-exe")]
    pub rclone_exe: Option<String>,
    /// Pass additional parameters to rclone (repeatable).
    #[arg(id = "rclone_args", long = "rclone-args", allow_hyphen_values = true)]
    pub rclone_args: Vec<String>,
    /// Pass additional environment (key=value) to rclone (repeatable).
    #[arg(id = "rclone_env", long = "rclone-env")]
    pub rclone_env: Vec<String>,
    /// Assume provider writes are atomic (kopr's default is false: temporary file, then move).
    #[arg(id = "rclone_atomic_writes", long = "atomic-writes", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub atomic_writes: bool,
    /// Embed the provider rclone config (this file) in the repository connection.
    #[arg(id = "rclone_embed_config", long = "embed-rclone-config")]
    pub embed_rclone_config: Option<PathBuf>,
    /// Time to wait for rclone to start (e.g. 15s).
    #[arg(
        id = "rclone_startup_timeout",
        long = "rclone-startup-timeout",
        default_value = "15s"
    )]
    pub startup_timeout: String,
}

/// WebDAV storage flags (Kopia's names and environment variables).
#[derive(Debug, Args)]
pub struct WebDavArgs {
    /// URL of WebDAV server.
    #[arg(long)]
    pub url: String,
    /// Use flat directory structure.
    #[arg(long)]
    pub flat: bool,
    /// WebDAV username.
    #[arg(
        id = "webdav_username",
        long = "webdav-username",
        env = "KOPIA_WEBDAV_USERNAME"
    )]
    pub username: Option<String>,
    /// WebDAV password.
    #[arg(
        id = "webdav_password",
        long = "webdav-password",
        env = "KOPIA_WEBDAV_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Assume WebDAV provider implements atomic writes.
    #[arg(long = "atomic-writes")]
    pub atomic_writes: bool,
    /// Trust the https server's certificate with this SHA-256 fingerprint (hex) instead of the
    /// public roots (a self-signed server; stored as Kopia's trustedServerCertificateFingerprint).
    #[arg(
        id = "webdav_server_cert_fingerprint",
        long = "server-cert-fingerprint"
    )]
    pub server_cert_fingerprint: Option<String>,
}

/// SFTP storage flags (Kopia's names).
#[derive(Debug, Args)]
pub struct SftpArgs {
    /// Path to the repository in the SFTP/SSH server.
    #[arg(id = "sftp_path", long = "path")]
    pub path: String,
    /// SFTP/SSH server hostname.
    #[arg(id = "sftp_host", long = "host")]
    pub host: String,
    /// SFTP/SSH server port.
    #[arg(id = "sftp_port", long = "port", default_value_t = 22)]
    pub port: u16,
    /// SFTP/SSH server username.
    #[arg(id = "sftp_username", long = "username")]
    pub username: String,
    /// SFTP/SSH server password.
    #[arg(id = "sftp_password", long = "sftp-password", hide_env_values = true)]
    pub password: Option<String>,
    /// Path to private key file for SFTP/SSH server.
    #[arg(id = "sftp_keyfile", long = "keyfile")]
    pub keyfile: Option<PathBuf>,
    /// Private key data.
    #[arg(id = "sftp_key_data", long = "key-data")]
    pub key_data: Option<String>,
    /// Path to known_hosts file.
    #[arg(id = "sftp_known_hosts", long = "known-hosts")]
    pub known_hosts: Option<PathBuf>,
    /// known_hosts file entries.
    #[arg(id = "sftp_known_hosts_data", long = "known-hosts-data")]
    pub known_hosts_data: Option<String>,
    /// Embed key and known_hosts in the repository connection.
    #[arg(id = "sftp_embed_credentials", long = "embed-credentials")]
    pub embed_credentials: bool,
    /// Launch external passwordless SSH command.
    #[arg(id = "sftp_external", long = "external")]
    pub external: bool,
    /// SSH command.
    #[arg(id = "sftp_ssh_command", long = "ssh-command", default_value = "ssh")]
    pub ssh_command: String,
    /// Arguments to external SSH command (separated by spaces).
    #[arg(id = "sftp_ssh_args", long = "ssh-args", allow_hyphen_values = true)]
    pub ssh_args: Option<String>,
    /// Use flat directory structure.
    #[arg(id = "sftp_flat", long = "flat")]
    pub flat: bool,
}

/// S3 storage flags (Kopia's names and environment variables).
#[derive(Debug, Args)]
pub struct S3Args {
    /// Name of the S3 bucket.
    #[arg(long)]
    pub bucket: String,
    /// Endpoint to use (host[:port]).
    #[arg(long, default_value = kopr_blob::s3::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// S3 region (us-east-1 when not given) [env: AWS_REGION].
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Access key ID.
    #[arg(long = "access-key", env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: Option<String>,
    /// Secret access key.
    #[arg(
        long = "secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    #[arg(
        long = "session-token",
        env = "AWS_SESSION_TOKEN",
        hide_env_values = true
    )]
    pub session_token: Option<String>,
    /// Prefix to use for objects in the bucket (Kopia adds no separator: end it with '/').
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Disable TLS security (HTTPS).
    #[arg(long = "disable-tls")]
    pub disable_tls: bool,
    /// Disable TLS (HTTPS) certificate verification.
    #[arg(long = "disable-tls-verification")]
    pub disable_tls_verification: bool,
    /// Certificate authority in-line (base64 enc.).
    #[arg(long = "root-ca-pem-base64")]
    pub root_ca_pem_base64: Option<String>,
    /// Certificate authority file path.
    #[arg(long = "root-ca-pem-path")]
    pub root_ca_pem_path: Option<PathBuf>,
}

/// Filesystem storage flags.
#[derive(Debug, Args)]
pub struct FilesystemArgs {
    /// Path to the repository.
    #[arg(long)]
    pub path: PathBuf,
}

/// Flags of `repository create` (format choices).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Content hash algorithm.
    #[arg(long = "block-hash", default_value = kopr_format::hashing::DEFAULT_HASH)]
    pub block_hash: String,
    /// Content encryption algorithm.
    #[arg(long, default_value = kopr_format::encryption::DEFAULT_ENCRYPTION)]
    pub encryption: String,
    /// The splitter to use for new objects in the repository.
    #[arg(long = "object-splitter", default_value = kopr_format::splitter::DEFAULT_SPLITTER)]
    pub object_splitter: String,
    /// Algorithm to derive the encryption key for the format block from the repository password.
    #[arg(
        long = "format-block-key-derivation-algorithm",
        default_value = kopr_format::crypto::SCRYPT_ALGORITHM
    )]
    pub key_derivation: String,
    /// [EXPERIMENTAL] Error correction algorithm.
    #[arg(long, value_name = "ALGO", default_value = kopr_format::ecc::DEFAULT_ECC)]
    pub ecc: String,
    /// [EXPERIMENTAL] How much space overhead can be used for error correction, in percentage.
    /// Use 0 to disable ECC.
    #[arg(
        long = "ecc-overhead-percent",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub ecc_overhead_percent: i64,
    /// Set the blob retention-mode for supported storage backends (GOVERNANCE or COMPLIANCE).
    #[arg(long = "retention-mode")]
    pub retention_mode: Option<String>,
    /// Set the blob retention-period for supported storage backends (e.g. 24h, 30d).
    #[arg(long = "retention-period")]
    pub retention_period: Option<String>,
    /// Create repository, but don't connect to it.
    #[arg(long = "create-only", short = 'c')]
    pub create_only: bool,
}

/// Flags of `repository connect` (also accepted by create).
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Cache directory [env: KOPIA_CACHE_DIRECTORY].
    #[arg(long = "cache-directory")]
    pub cache_directory: Option<PathBuf>,
    /// Make repository read-only to avoid accidental changes.
    #[arg(long)]
    pub readonly: bool,
    /// Human-readable description of the repository.
    #[arg(long)]
    pub description: Option<String>,
    /// Override hostname used by this repository connection.
    #[arg(long = "override-hostname")]
    pub override_hostname: Option<String>,
    /// Override username used by this repository connection.
    #[arg(long = "override-username")]
    pub override_username: Option<String>,
}

/// `repository status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}

/// `content …`
#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Content statistics.
    Stats {
        /// Raw numbers.
        #[arg(long, short = 'r')]
        raw: bool,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// List contents.
    #[command(visible_alias = "list")]
    Ls(ContentListArgs),
    /// Show contents by ID.
    #[command(visible_alias = "cat")]
    Show {
        /// IDs of contents to show.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Pretty-print JSON content.
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Remove content (needs --dangerous-commands=enabled).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// IDs of content to remove.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Rewrite content using most recent format (needs --dangerous-commands=enabled).
    Rewrite(crate::commands::repair::RewriteArgs),
    /// Verify that each content is backed by a valid blob.
    Verify {
        /// Full verification (including download).
        #[arg(long)]
        full: bool,
        /// Download a percentage of contents [0.0 .. 100.0].
        #[arg(long = "download-percent", default_value_t = 0.0)]
        download_percent: f64,
        /// Include deleted contents.
        #[arg(long = "include-deleted")]
        include_deleted: bool,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `content ls` flags.
#[derive(Debug, Args)]
pub struct ContentListArgs {
    /// Long output.
    #[arg(long, short = 'l')]
    pub long: bool,
    /// Compression.
    #[arg(long, short = 'c')]
    pub compression: bool,
    /// Include deleted content.
    #[arg(long)]
    pub deleted: bool,
    /// Only show deleted content.
    #[arg(long = "deleted-only")]
    pub deleted_only: bool,
    /// Summarize the list.
    #[arg(long, short = 's')]
    pub summary: bool,
    /// Only contents with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}

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

/// `cache …`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Displays cache information and statistics.
    Info {
        /// Only display cache path.
        #[arg(long)]
        path: bool,
    },
    /// Clears the cache.
    Clear {
        /// Specifies the cache to clear.
        #[arg(long, value_parser = ["contents", "indexes", "metadata", "own-writes", "blob-list"])]
        partial: Option<String>,
    },
    /// Sets parameters local caching of repository data.
    Set(crate::commands::cache_set::CacheSetArgs),
    /// Synchronizes the index cache with the index blobs in storage.
    Sync {
        /// Fetch parallelism (accepted for Kopia's scripts).
        #[arg(long, default_value_t = 16)]
        parallel: usize,
    },
    /// Prefetches the provided objects into the content cache.
    Prefetch {
        /// Object ID to prefetch (snapshot ID or object ID, optionally with a path).
        #[arg(required = true)]
        objects: Vec<String>,
        /// Prefetch hint (accepted for Kopia's scripts).
        #[arg(long)]
        hint: Option<String>,
    },
}

/// `index …`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// List content indexes.
    #[command(visible_alias = "list")]
    Ls {
        /// Display index blob summary.
        #[arg(long)]
        summary: bool,
        /// Index blob sort order.
        #[arg(long, default_value = "time", value_parser = ["time", "size", "name"])]
        sort: String,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Epoch manager commands.
    #[command(subcommand)]
    Epoch(IndexEpochCommand),
    /// Inspect index blob.
    Inspect(crate::commands::repair::InspectArgs),
    /// Optimize indexes blobs (needs --dangerous-commands=enabled).
    Optimize(crate::commands::repair::OptimizeArgs),
    /// Recover index entries from pack blobs.
    Recover {
        /// Prefixes of pack blobs to recover from (default: all packs).
        #[arg(long = "blob-prefixes", value_delimiter = ',')]
        blob_prefixes: Vec<String>,
        /// Names of pack blobs to recover from (default: all packs).
        #[arg(long = "blobs", value_delimiter = ',')]
        blobs: Vec<String>,
        /// Ignore errors when recovering.
        #[arg(long = "ignore-errors")]
        ignore_errors: bool,
        /// Commit recovered content.
        #[arg(long)]
        commit: bool,
    },
}
