//! The command tree and its flags, mirroring Kopia's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod cache;
mod content;
mod global;
mod inspect;
mod logs;
mod maintenance;
mod policy;
mod snapshot;
mod storage;

pub use cache::{CacheCommand, IndexCommand};
pub use content::{ContentCommand, ContentListArgs};
pub use global::GlobalArgs;
pub use inspect::{BlobCommand, IndexEpochCommand, ManifestCommand, SessionCommand};
pub use logs::{LogSelection, LogsCommand};
pub use maintenance::{MaintenanceCommand, MaintenanceRunArgs, MaintenanceSetArgs};
pub use policy::{PolicyCommand, PolicySetArgs};
pub use snapshot::SnapshotCommand;
pub use storage::{AzureArgs, FilesystemArgs, GcsArgs, RcloneArgs, S3Args, SftpArgs, WebDavArgs};

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
    /// Duration of kopia.repository format blob cache (at most 15m).
    #[arg(
        long = "repository-format-cache-duration",
        hide = true,
        value_name = "DURATION"
    )]
    pub repository_format_cache_duration: Option<String>,
    /// Disable caching of kopia.repository format blob.
    #[arg(long = "disable-repository-format-cache", hide = true)]
    pub disable_repository_format_cache: bool,
}

/// `repository status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}
