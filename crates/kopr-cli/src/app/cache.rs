//! `cache …` and `index …`: the cache and index commands' clap types.

use clap::Subcommand;

use super::IndexEpochCommand;

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
