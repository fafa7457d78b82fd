//! kopr's server: `kopr server start` serves Kopia's JSON API (`/api/v1/...`, Kopia's routes
//! and field names, so scripts written for Kopia's server work against kopr's), kopr's own
//! JSON for content statistics, maintenance and `maintenance explain`, and a small web UI
//! embedded in the binary (plain HTML, JavaScript and CSS; no build step).
//!
//! Every route needs authentication (HTTP Basic as Kopia's, or the session cookie the login
//! form sets) unless the server is bound to loopback and started with `--insecure` and no
//! password. Repository work runs on tokio's blocking threads, on a repository opened for each
//! request through the [`Opener`] the command line hands over (so the server always sees what
//! other processes wrote). [`notification`] holds Kopia's notification profiles and templates,
//! which the command line also uses.

pub mod api;
mod assets;
pub mod auth;
pub mod notification;
pub mod tasks;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kopr_repo::Repository;

/// An error of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The flags do not make a safe server.
    #[error("{0}")]
    Config(String),
    /// Binding, TLS or serving failed.
    #[error("{0}")]
    Io(String),
}

/// Opens the connected repository (once per request).
pub type Opener =
    Arc<dyn Fn() -> Result<Repository, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// The connection's client options, as `repository status` shows them (no secrets).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// User name recorded in snapshots.
    pub username: String,
    /// Host name recorded in snapshots.
    pub hostname: String,
    /// Storage type (`filesystem`, `s3`, ...).
    pub storage_type: String,
    /// Whether the connection is read-only.
    pub read_only: bool,
    /// Connection description.
    pub description: String,
    /// The config file.
    pub config_file: String,
}

/// How the server's TLS is set up.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Plain HTTP.
    None,
    /// A self-signed certificate made at start (its SHA-256 fingerprint is printed).
    Generate,
    /// A PEM certificate chain and key.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// `kopr server start`'s options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen.
    pub address: SocketAddr,
    /// TLS.
    pub tls: Tls,
    /// `--server-username` (default `kopia`, as Kopia's).
    pub username: String,
    /// `--server-password`.
    pub password: Option<String>,
    /// `--insecure`: allows plain HTTP, and no password on loopback.
    pub insecure: bool,
    /// The connection's client options.
    pub client: ClientInfo,
}

/// Checks the flags: authentication is required unless bound to loopback with `--insecure`;
/// plain HTTP needs `--insecure`.
pub fn check_options(o: &ServerOptions) -> Result<(), ServerError> {
    if matches!(o.tls, Tls::None) && !o.insecure {
        return Err(ServerError::Config(
            "TLS is required: use --tls-generate-cert or --tls-cert-file/--tls-key-file, or --insecure for plain HTTP".into(),
        ));
    }
    match &o.password {
        Some(p) if p.is_empty() => Err(ServerError::Config(
            "--server-password must not be empty".into(),
        )),
        Some(_) => Ok(()),
        None if o.insecure && o.address.ip().is_loopback() => Ok(()),
        None => Err(ServerError::Config(
            "a password is required: use --server-password (only a loopback address with --insecure may go without)".into(),
        )),
    }
}

/// Runs the server until Ctrl-C (SIGINT) or SIGTERM. `ready` is called with the bound address
/// (the port is chosen when `address` has port 0), the URL to print and, with TLS, the SHA-256
/// fingerprint of the certificate.
pub fn run(
    opts: ServerOptions,
    opener: Opener,
    ready: impl FnOnce(SocketAddr, &str, Option<&str>) + Send + 'static,
) -> Result<(), ServerError> {
    check_options(&opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Io(format!("cannot start the server's runtime: {e}")))?;
    rt.block_on(serve(opts, opener, ready))
}

async fn serve(
    opts: ServerOptions,
    opener: Opener,
    ready: impl FnOnce(SocketAddr, &str, Option<&str>) + Send + 'static,
) -> Result<(), ServerError> {
    let listener = std::net::TcpListener::bind(opts.address)
        .map_err(|e| ServerError::Io(format!("cannot listen on {}: {e}", opts.address)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServerError::Io(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    let tls_config = tls::config(&opts.tls)?;
    let state = api::AppState::new(opts.clone(), opener, tls_config.is_some());
    let app = api::router(state);
    let handle = axum_server::Handle::new();
    {
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        });
    }
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    let fingerprint = tls_config.as_ref().map(|(_, f)| f.clone());
    ready(addr, &format!("{scheme}://{addr}/"), fingerprint.as_deref());
    let svc = app.into_make_service();
    let served = match tls_config {
        Some((cfg, _)) => {
            axum_server::from_tcp_rustls(listener, cfg)
                .handle(handle)
                .serve(svc)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(svc)
                .await
        }
    };
    served.map_err(|e| ServerError::Io(format!("server failed: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
