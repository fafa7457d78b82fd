//! `snapshot …`: the snapshot commands' clap types (their flags live beside the code in
//! `commands::snapshot`).

use clap::Subcommand;

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
