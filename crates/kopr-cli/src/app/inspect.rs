//! The low-level inspection commands: `manifest …`, `blob …`, `session …`, `index epoch …`.

use clap::Subcommand;

/// `manifest …`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// List manifest items.
    #[command(visible_alias = "ls")]
    List {
        /// List of key:value pairs.
        #[arg(long)]
        filter: Vec<String>,
        /// List of keys to sort by.
        #[arg(long)]
        sort: Vec<String>,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show manifest items.
    Show {
        /// List of items.
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Remove manifest items.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// Items to remove.
        #[arg(required = true)]
        items: Vec<String>,
    },
}

/// `blob …`
#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// List BLOBs.
    #[command(visible_alias = "list")]
    Ls {
        /// Blob ID prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Minimum size.
        #[arg(long = "min-size")]
        min_size: Option<u64>,
        /// Maximum size.
        #[arg(long = "max-size")]
        max_size: Option<u64>,
        /// Only list data blobs.
        #[arg(long = "data-only")]
        data_only: bool,
        /// Output result in JSON format to stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show contents of BLOBs.
    #[command(visible_alias = "cat")]
    Show {
        /// Decrypt blob if possible (index, log, session, compaction-log and cleanup blobs).
        #[arg(long)]
        decrypt: bool,
        /// Blob IDs.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete blobs by ID (needs --dangerous-commands=enabled).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// Blob IDs.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Garbage-collect unused blobs (needs --dangerous-commands=enabled).
    Gc {
        /// Whether to delete unused blobs ("yes" deletes, anything else lists).
        #[arg(long, default_value = "")]
        delete: String,
        /// Number of parallel blob scans (accepted for Kopia's scripts; kopr lists serially).
        #[arg(long, default_value_t = 16)]
        parallel: usize,
        /// Only GC blobs with given prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Safety level: full (default) or none.
        #[arg(long, default_value = "full", value_parser = ["full", "none"])]
        safety: String,
    },
    /// Blob statistics.
    Stats {
        /// Blob name prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Raw numbers.
        #[arg(long, short = 'r')]
        raw: bool,
    },
}

/// `session …`
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions.
    #[command(visible_alias = "ls")]
    List,
}

/// `index epoch …`
#[derive(Debug, Subcommand)]
pub enum IndexEpochCommand {
    /// List the status of epochs.
    List,
}
