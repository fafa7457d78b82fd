//! Opening an SFTP session: over kopr's own SSH client (russh: TCP connect, key exchange with
//! the host key checked against the known hosts, password or private-key authentication, the
//! `sftp` subsystem), or, with `externalSSH`, over an `ssh` command's standard input and output
//! as Kopia's `--external` does (that program then checks the host and authenticates). Every
//! failure is one line naming the fix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use tokio::process::{Child, Command};

use super::known_hosts::{KnownHosts, Verdict};
use super::SftpOptions;
use crate::BlobError;

/// Where the known hosts came from, for messages.
pub(super) fn known_hosts_source(o: &SftpOptions) -> String {
    if !o.known_hosts_data.is_empty() {
        "--known-hosts-data".into()
    } else {
        o.known_hosts_file.clone()
    }
}

/// The known hosts of the options: `knownHostsData`, else the `knownHostsFile`.
pub(super) fn load_known_hosts(o: &SftpOptions) -> Result<KnownHosts, BlobError> {
    if !o.known_hosts_data.is_empty() {
        return Ok(KnownHosts::parse(&o.known_hosts_data));
    }
    if o.known_hosts_file.is_empty() {
        return Err(BlobError::Other(
            "no known hosts for the SFTP server: use --known-hosts FILE or --known-hosts-data TEXT (e.g. from `ssh-keyscan HOST`)".into(),
        ));
    }
    let text = std::fs::read_to_string(&o.known_hosts_file).map_err(|e| {
        BlobError::Other(format!(
            "cannot read --known-hosts {}: {e}",
            o.known_hosts_file
        ))
    })?;
    Ok(KnownHosts::parse(&text))
}

/// The private key of the options: `keyData`, else the `keyfile`.
fn load_key(o: &SftpOptions) -> Result<russh::keys::PrivateKey, BlobError> {
    let (text, from) = if !o.key_data.is_empty() {
        (o.key_data.clone(), "--key-data".to_string())
    } else if !o.keyfile.is_empty() {
        let t = std::fs::read_to_string(&o.keyfile)
            .map_err(|e| BlobError::Other(format!("cannot read --keyfile {}: {e}", o.keyfile)))?;
        (t, format!("--keyfile {}", o.keyfile))
    } else {
        return Err(BlobError::Other(
            "no SFTP credentials: use --sftp-password, --keyfile or --key-data".into(),
        ));
    };
    russh::keys::decode_secret_key(&text, None).map_err(|e| {
        BlobError::Other(format!(
            "cannot use the private key of {from}: {e} (an OpenSSH or PEM private key without a passphrase is needed)"
        ))
    })
}

/// The SSH client's side of the key exchange: checks the server's key, remembers the verdict.
struct Client {
    known: KnownHosts,
    host: String,
    port: u16,
    verdict: Arc<Mutex<Option<(Verdict, PublicKey)>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let v = self.known.check(&self.host, self.port, key);
        let ok = v == Verdict::Known;
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some((v, key.clone()));
        }
        Ok(ok)
    }
}

/// A live session: the SFTP requests, and what keeps their transport open.
pub(super) struct Session {
    pub sftp: Arc<RawSftpSession>,
    /// Whether the server has `posix-rename@openssh.com` (rename over an existing file).
    pub posix_rename: bool,
    ssh: Option<Handle<Client>>,
    child: Option<Child>,
}

impl Session {
    /// Whether the transport is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.ssh.as_ref().is_some_and(|h| h.is_closed())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.sftp.close_session();
        if let Some(c) = &mut self.child {
            let _ = c.start_kill();
        }
    }
}

/// `host:port` as written in messages.
pub(super) fn server(o: &SftpOptions) -> String {
    if o.host.contains(':') {
        format!("[{}]:{}", o.host, o.port)
    } else {
        format!("{}:{}", o.host, o.port)
    }
}

/// Opens a session within `connect` (the whole handshake); SFTP requests then wait at most
/// `io` each.
pub(super) async fn open(
    o: &SftpOptions,
    connect: Duration,
    io: Duration,
) -> Result<Session, BlobError> {
    let limit = format!(
        "limits {connect:?} to connect, {io:?} per request, {} changes them",
        crate::s3::TIMEOUT_ENV
    );
    let fut = async {
        if o.external_ssh {
            open_external(o).await
        } else {
            open_internal(o).await
        }
    };
    let s = match tokio::time::timeout(connect, fut).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(BlobError::Transient(format!(
                "SFTP server {} did not answer in time (connecting; {limit})",
                server(o)
            )))
        }
    };
    s.sftp.set_timeout(io.as_secs().max(1));
    Ok(s)
}

async fn start_sftp<S>(
    stream: S,
) -> Result<(RawSftpSession, bool), russh_sftp::client::error::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let sftp = RawSftpSession::new(stream);
    let version = sftp.init().await?;
    let posix = version
        .extensions
        .get("posix-rename@openssh.com")
        .is_some_and(|v| v == "1");
    Ok((sftp, posix))
}

async fn open_internal(o: &SftpOptions) -> Result<Session, BlobError> {
    let srv = server(o);
    let known = load_known_hosts(o)?;
    let key = if o.password.is_empty() {
        Some(load_key(o)?)
    } else {
        None
    };
    let mut config = client::Config {
        // a connection nobody uses for a while is dropped; the next request reconnects
        inactivity_timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    // As OpenSSH: ask first for the key types the known hosts hold for this server.
    let recorded = known.algorithms(&o.host, o.port);
    if !recorded.is_empty() {
        let mut keys: Vec<_> = config.preferred.key.to_vec();
        keys.sort_by_key(|a| !recorded.contains(a));
        config.preferred.key = keys.into();
    }
    let verdict = Arc::new(Mutex::new(None));
    let handler = Client {
        known,
        host: o.host.clone(),
        port: o.port,
        verdict: verdict.clone(),
    };
    let mut ssh = match client::connect(Arc::new(config), (o.host.as_str(), o.port), handler).await
    {
        Ok(h) => h,
        Err(e) => {
            let seen = verdict.lock().ok().and_then(|v| v.clone());
            return Err(connect_error(o, &srv, e, seen));
        }
    };
    authenticate(&mut ssh, o, &srv, key.as_ref()).await?;
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| lost(&srv, "opening a channel", &e))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| lost(&srv, "starting sftp", &e))?;
    let (sftp, posix_rename) = start_sftp(channel.into_stream()).await.map_err(|e| {
        BlobError::Other(format!(
            "SFTP server {srv} did not start its sftp subsystem: {e} (is `Subsystem sftp` configured?)"
        ))
    })?;
    Ok(Session {
        sftp: Arc::new(sftp),
        posix_rename,
        ssh: Some(ssh),
        child: None,
    })
}

/// Logs in as `o.username` with the private key, or with the password when there is none.
async fn authenticate(
    ssh: &mut Handle<Client>,
    o: &SftpOptions,
    srv: &str,
    key: Option<&russh::keys::PrivateKey>,
) -> Result<(), BlobError> {
    let auth = match key {
        None => ssh
            .authenticate_password(o.username.clone(), o.password.clone())
            .await
            .map_err(|e| lost(srv, "authenticating", &e))?,
        Some(k) => {
            let hash = if k.algorithm().is_rsa() {
                ssh.best_supported_rsa_hash()
                    .await
                    .map_err(|e| lost(srv, "authenticating", &e))?
                    .flatten()
                    .or(Some(HashAlg::Sha256))
            } else {
                None
            };
            ssh.authenticate_publickey(
                o.username.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(k.clone()), hash),
            )
            .await
            .map_err(|e| lost(srv, "authenticating", &e))?
        }
    };
    if !matches!(auth, AuthResult::Success) {
        let fix = if key.is_none() {
            "check --sftp-password"
        } else {
            "check --keyfile/--key-data and the server's authorized_keys"
        };
        return Err(BlobError::Permission(format!(
            "SFTP server {srv} rejected the credentials of user {:?}: {fix} (and --username)",
            o.username
        )));
    }
    Ok(())
}

fn lost(srv: &str, what: &str, e: &russh::Error) -> BlobError {
    BlobError::Transient(format!(
        "connection to SFTP server {srv} lost ({what}): {e}"
    ))
}

fn connect_error(
    o: &SftpOptions,
    srv: &str,
    e: russh::Error,
    seen: Option<(Verdict, PublicKey)>,
) -> BlobError {
    let name = KnownHosts::host_name(&o.host, o.port);
    let src = known_hosts_source(o);
    let file = if o.known_hosts_data.is_empty() {
        o.known_hosts_file.as_str()
    } else {
        "KNOWN_HOSTS"
    };
    let keyscan = if o.port == 22 {
        format!("ssh-keyscan {}", o.host)
    } else {
        format!("ssh-keyscan -p {} {}", o.port, o.host)
    };
    match (&e, seen) {
        (russh::Error::UnknownKey, Some((v, key))) => {
            let fp = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
            match v {
                Verdict::Unknown | Verdict::Known => BlobError::Other(format!(
                    "the host key of SFTP server {name} ({fp}) is not in the known hosts ({src}): check that fingerprint with the server's administrator, then add the key (`{keyscan} >> {file}`) or pass it with --known-hosts-data"
                )),
                Verdict::Changed { lines, revoked: true } => BlobError::Other(format!(
                    "the host key of SFTP server {name} ({fp}) is revoked in the known hosts ({src} line {}): refusing to connect",
                    lines.first().copied().unwrap_or(0)
                )),
                Verdict::Changed { lines, .. } => BlobError::Other(format!(
                    "the host key of SFTP server {name} changed: it presented {fp}, which does not match the known hosts ({src} line {}); this may be another machine listening in between — if the change is expected, remove the old entry (`ssh-keygen -R '{name}' -f {file}`) and add the new key (`{keyscan} >> {file}`)",
                    lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        (russh::Error::IO(io), _) => match io.kind() {
            std::io::ErrorKind::TimedOut => BlobError::Transient(format!(
                "SFTP server {srv} did not answer in time (connecting): {io}"
            )),
            _ => BlobError::Transient(format!(
                "cannot reach SFTP server {srv}: {io} (check --host and --port)"
            )),
        },
        _ => BlobError::Transient(format!(
            "cannot reach SFTP server {srv}: SSH handshake failed: {e}"
        )),
    }
}

async fn open_external(o: &SftpOptions) -> Result<Session, BlobError> {
    let program = if o.ssh_command.is_empty() {
        "ssh"
    } else {
        o.ssh_command.as_str()
    };
    let mut cmd = Command::new(program);
    cmd.args(o.ssh_arguments.split(' ').filter(|a| !a.is_empty()))
        .arg(format!("{}@{}", o.username, o.host))
        .args(["-s", "sftp"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        BlobError::Other(format!(
            "cannot run --ssh-command {program:?}: {e} (install OpenSSH's client or drop --external)"
        ))
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BlobError::Other(format!("cannot talk to {program}")));
    };
    let (sftp, posix_rename) = match start_sftp(tokio::io::join(stdout, stdin)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            return Err(BlobError::Transient(format!(
                "external SSH command {program} did not start an SFTP session with {}@{} ({e}; exit {}): run it by hand with the same --ssh-args to see why",
                o.username,
                o.host,
                status.map(|s| s.to_string()).unwrap_or_default()
            )));
        }
    };
    Ok(Session {
        sftp: Arc::new(sftp),
        posix_rename,
        ssh: None,
        child: Some(child),
    })
}
