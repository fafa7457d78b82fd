//! `content …`: the content commands' clap types.

use clap::{Args, Subcommand};

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
