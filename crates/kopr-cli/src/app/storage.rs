//! The flags that say where a repository is stored, one struct per backend (Kopia's names and
//! environment variables), shared by `repository create`, `connect` and `sync-to`.

use std::path::PathBuf;

use clap::Args;

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
