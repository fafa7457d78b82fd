//! `server start`: parses the flags and hands the connected repository to kopr-server, which
//! serves Kopia's JSON API and kopr's web UI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use clap::{Args, Subcommand};
use kopr_server::{ClientInfo, ServerOptions, Tls};

use super::{open_with, Context};
use crate::config::{self, ConnectionConfig};
use crate::storage;

/// `server …`
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Start the server: Kopia's JSON API and kopr's web UI over the connected repository.
    Start(StartArgs),
}

/// `server start` flags (Kopia's names).
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Server address (host:port; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:51515")]
    pub address: String,
    /// Generate a self-signed TLS certificate at start.
    #[arg(long = "tls-generate-cert", conflicts_with_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_generate_cert: bool,
    /// TLS certificate chain (PEM).
    #[arg(long = "tls-cert-file", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long = "tls-key-file", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// User name for HTTP Basic authentication and the login form.
    #[arg(long = "server-username", default_value = "kopia")]
    pub server_username: String,
    /// Password for HTTP Basic authentication and the login form.
    #[arg(
        long = "server-password",
        env = "KOPIA_SERVER_PASSWORD",
        hide_env_values = true
    )]
    pub server_password: Option<String>,
    /// Allow plain HTTP, and no password on a loopback address.
    #[arg(long)]
    pub insecure: bool,
}

/// Runs a `server` subcommand.
pub fn run(ctx: &Context, cmd: ServerCommand) -> Result<()> {
    match cmd {
        ServerCommand::Start(a) => start(ctx, a),
    }
}

fn start(ctx: &Context, a: StartArgs) -> Result<()> {
    let address: SocketAddr = a
        .address
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .map_err(|_| {
            anyhow!(
                "invalid --address {:?}: use host:port, e.g. 127.0.0.1:51515",
                a.address
            )
        })?;
    let tls = match (a.tls_generate_cert, a.tls_cert_file, a.tls_key_file) {
        (true, _, _) => Tls::Generate,
        (false, Some(cert), Some(key)) => Tls::Files { cert, key },
        _ => Tls::None,
    };
    let cfg = ConnectionConfig::load(&ctx.config_path)?;
    let opts = ServerOptions {
        address,
        tls,
        username: a.server_username,
        password: a.server_password,
        insecure: a.insecure,
        client: ClientInfo {
            username: cfg.username.clone(),
            hostname: cfg.hostname.clone(),
            storage_type: cfg.storage.kind.clone(),
            read_only: cfg.read_only,
            description: cfg.description.clone(),
            config_file: ctx.config_path.to_string_lossy().into_owned(),
        },
    };
    kopr_server::check_options(&opts)?;
    let password = ctx.password("Enter password to open repository: ", true)?;
    let config_path = ctx.config_path.clone();
    let open = move || -> Result<kopr_repo::Repository> {
        let st = storage::open(&cfg.storage)?;
        let cache = config::FileKeyCache::new(&config_path);
        open_with(st, &password, &cfg, Some(&cache))
    };
    // Refuse to start on a repository that does not open.
    open().context("cannot open the connected repository")?;
    let opener: kopr_server::Opener = Arc::new(move || open().map_err(Into::into));
    kopr_server::run(opts, opener, |_, url, fingerprint| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Some(f) = fingerprint {
            let _ = writeln!(out, "SERVER CERT SHA256: {f}");
        }
        let _ = writeln!(out, "SERVER ADDRESS: {url}");
        let _ = out.flush();
    })?;
    Ok(())
}
