//! Kopia's `rclone` backend: any remote rclone can reach (`remote:path`), through `rclone serve
//! webdav` started as a child process on a random loopback port, and the WebDAV backend over
//! it — so the layout is the WebDAV (and filesystem) one: sharded `.f` files under the remote
//! path. As Kopia: `--vfs-write-back=0s` (no write-back caching: a put is on the remote when it
//! returns), extra `--rclone-args` and `--rclone-env` passed on. The server is protected by a
//! random password given to rclone through its environment (`RCLONE_USER`, `RCLONE_PASS`, not
//! on the command line), answers only on 127.0.0.1, and is stopped when the storage is dropped
//! or, on Linux, when kopr dies (`PR_SET_PDEATHSIG`). An rclone config embedded in the
//! connection (`embeddedConfig`, Kopia's `--embed-rclone-config`) is written to a private
//! temporary file (mode 0600) given to rclone with `--config`, removed when the storage is.

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::webdav::{WebDavOptions, WebDavStorage};
use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// How long rclone may take to start serving, by default.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What to serve and how to run rclone; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcloneOptions {
    /// `remote:path` as rclone understands it.
    #[serde(rename = "remotePath")]
    pub remote_path: String,
    /// The rclone executable (`rclone` on `PATH` when empty).
    #[serde(
        rename = "rcloneExe",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub rclone_exe: String,
    /// More arguments for `rclone serve webdav`.
    #[serde(rename = "rcloneArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub rclone_args: Vec<String>,
    /// More `KEY=value` environment variables for rclone.
    #[serde(rename = "rcloneEnv", default, skip_serializing_if = "Vec::is_empty")]
    pub rclone_env: Vec<String>,
    /// How long rclone may take to start, as a Go duration (`15s`); the default when empty.
    #[serde(
        rename = "startupTimeout",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub startup_timeout: String,
    /// An rclone config embedded in the connection (rclone then reads it instead of its own).
    #[serde(
        rename = "embeddedConfig",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub embedded_config: String,
    /// Whether the remote's writes are atomic (then no temporary file and MOVE).
    #[serde(rename = "atomicWrites", default)]
    pub atomic_writes: bool,
    /// Shards given at creation (`null`: the `.shards` file decides).
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
}

impl fmt::Debug for RcloneOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneOptions")
            .field("remote_path", &self.remote_path)
            .field("rclone_exe", &self.rclone_exe)
            .field("rclone_args", &self.rclone_args)
            .finish_non_exhaustive()
    }
}

/// Blobs on an rclone remote, through a private `rclone serve webdav`.
pub struct RcloneStorage {
    opts: RcloneOptions,
    inner: WebDavStorage,
    child: Mutex<Option<Child>>,
    /// Holds the embedded config's file while rclone runs.
    _config_dir: Option<tempfile::TempDir>,
}

impl fmt::Debug for RcloneStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneStorage")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The URL in rclone's "WebDav Server started on [http://127.0.0.1:N/]" line.
fn served_url(line: &str) -> Option<String> {
    let rest = &line[line.find("Server started on")? + "Server started on".len()..];
    let start = rest.find("http://")?;
    let url: String = rest[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ']')
        .collect();
    Some(url.trim_end_matches('/').to_string())
}

/// Parses a Go duration of whole units (`15s`, `1m30s`, `500ms`, `2h`) or, as Kopia reads
/// its config, a plain number of nanoseconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if let Ok(ns) = rest.parse::<f64>() {
        return (ns >= 0.0 && ns.is_finite()).then(|| Duration::from_nanos(ns as u64));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        total += unit.checked_mul(u32::try_from(n).ok()?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// Writes an embedded rclone config to `rclone.conf` in a new private temporary directory.
fn write_config(text: &str) -> Result<tempfile::TempDir> {
    let fail = |e: std::io::Error| {
        BlobError::Other(format!(
            "cannot write the embedded rclone config to a temporary file: {e}"
        ))
    };
    let dir = tempfile::Builder::new()
        .prefix("kopr-rclone-")
        .tempdir()
        .map_err(fail)?;
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    let mut file = f.open(dir.path().join("rclone.conf")).map_err(fail)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)?;
    Ok(dir)
}

/// An rclone log line without its leading `YYYY/MM/DD HH:MM:SS ` time.
fn without_log_time(line: &str) -> &str {
    let l = line.trim();
    let b = l.as_bytes();
    let is_time = b.len() > 20
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'/',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && b[19] == b' ';
    if is_time {
        l[20..].trim_start()
    } else {
        l
    }
}

impl RcloneStorage {
    /// Starts rclone (waiting for it as long as the options' startup timeout, else
    /// [`DEFAULT_STARTUP_TIMEOUT`]) and opens the WebDAV storage it serves.
    pub fn start(opts: RcloneOptions, create: bool) -> Result<RcloneStorage> {
        let startup = if opts.startup_timeout.is_empty() {
            DEFAULT_STARTUP_TIMEOUT
        } else {
            parse_duration(&opts.startup_timeout).ok_or_else(|| {
                BlobError::Other(format!(
                    "invalid rclone startup timeout {:?}: expected e.g. 15s",
                    opts.startup_timeout
                ))
            })?
        };
        // Kopia writes `0s` when none was chosen.
        let startup = if startup.is_zero() {
            DEFAULT_STARTUP_TIMEOUT
        } else {
            startup
        };
        RcloneStorage::open(opts, create, startup)
    }

    /// Starts rclone and opens the WebDAV storage it serves; `create` writes `.shards`.
    pub fn open(opts: RcloneOptions, create: bool, startup: Duration) -> Result<RcloneStorage> {
        if opts.remote_path.is_empty() {
            return Err(BlobError::Other(
                "no rclone remote given (--remote-path)".into(),
            ));
        }
        let config_dir = if opts.embedded_config.is_empty() {
            None
        } else {
            Some(write_config(&opts.embedded_config)?)
        };
        let exe = if opts.rclone_exe.is_empty() {
            "rclone"
        } else {
            &opts.rclone_exe
        };
        let mut pw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut pw);
        let password = hex::encode(pw);
        let mut cmd = serve_command(&opts, exe, config_dir.as_ref(), &password)?;
        let mut child = cmd.spawn().map_err(|e| {
            BlobError::Other(format!(
                "cannot run rclone ({exe}): {e}: install rclone or give its path with --rclone-exe"
            ))
        })?;
        let url = served_url_of(&mut child, startup)?;
        let inner = WebDavStorage::open(
            WebDavOptions {
                url,
                username: "kopr".into(),
                password,
                atomic_writes: opts.atomic_writes,
                dir_shards: opts.dir_shards.clone(),
                ..Default::default()
            },
            create,
        );
        let inner = match inner {
            Ok(i) => i,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(RcloneStorage {
            opts,
            inner,
            child: Mutex::new(Some(child)),
            _config_dir: config_dir,
        })
    }
}

/// The `rclone serve webdav` command serving `opts`' remote on a loopback port with
/// `password`, killed with kopr on Linux.
fn serve_command(
    opts: &RcloneOptions,
    exe: &str,
    config_dir: Option<&tempfile::TempDir>,
    password: &str,
) -> Result<Command> {
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "webdav", &opts.remote_path])
        .args(["--addr", "127.0.0.1:0", "--vfs-write-back=0s"])
        .args(&opts.rclone_args)
        .args(config_dir.iter().flat_map(|d| {
            [
                OsString::from("--config"),
                d.path().join("rclone.conf").into(),
            ]
        }))
        .env("RCLONE_USER", "kopr")
        .env("RCLONE_PASS", password)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for kv in &opts.rclone_env {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(BlobError::Other(format!(
                "invalid --rclone-env {kv:?}: expected KEY=value"
            )));
        };
        cmd.env(k, v);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    Ok(cmd)
}

/// Waits up to `startup` for the URL rclone prints once it serves; on failure the child is
/// killed and the error carries rclone's last line.
fn served_url_of(child: &mut Child, startup: Duration) -> Result<String> {
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        return Err(BlobError::Other("rclone's output is not readable".into()));
    };
    let (tx, rx) = mpsc::channel::<std::result::Result<String, String>>();
    std::thread::spawn(move || {
        let mut last = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(url) = served_url(&line) {
                    let _ = tx.send(Ok(url));
                    sent = true;
                } else if !line.trim().is_empty() {
                    last = line;
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(last));
        }
    });
    match rx.recv_timeout(startup) {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(last)) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(BlobError::Other(format!(
                "rclone serve webdav failed to start: {}",
                without_log_time(&last)
            )))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(BlobError::Other(format!(
                "rclone serve webdav did not start within {startup:?} (--rclone-startup-timeout)"
            )))
        }
    }
}

impl Drop for RcloneStorage {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or(None);
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl BlobStorage for RcloneStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.inner.get_blob(id, offset, length)
    }
    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        self.inner.get_metadata(id)
    }
    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        self.inner.put_blob(id, data, opts)
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        self.inner.delete_blob(id)
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        self.inner.list_blobs(prefix, cb)
    }
    fn display_name(&self) -> String {
        format!("RClone {}", self.opts.remote_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_dropped_from_rclone_messages() {
        assert_eq!(
            without_log_time("2026/11/30 07:56:20 Failed to create file system"),
            "Failed to create file system"
        );
        assert_eq!(without_log_time("  plain message "), "plain message");
        assert_eq!(without_log_time("2026/11/30"), "2026/11/30");
    }

    #[test]
    fn reads_the_served_url_of_old_and_new_rclone() {
        assert_eq!(
            served_url("2026/11/30 06:14:11 NOTICE: Local file system at /tmp/rc: WebDav Server started on http://127.0.0.1:41195/").as_deref(),
            Some("http://127.0.0.1:41195")
        );
        assert_eq!(
            served_url(
                "NOTICE: Local file system at /x: WebDav Server started on [http://127.0.0.1:4/]"
            )
            .as_deref(),
            Some("http://127.0.0.1:4")
        );
        assert_eq!(
            served_url("NOTICE: Serving remote control on http://x/"),
            None
        );
    }

    fn rclone() -> Option<String> {
        let exe = std::env::var("KOPR_RCLONE").unwrap_or_else(|_| "rclone".into());
        if Command::new(&exe)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            Some(exe)
        } else {
            kopr_testkit::env::skip(
                "rclone tests",
                "rclone not found: set KOPR_RCLONE or install Debian's rclone",
            );
            None
        }
    }

    #[test]
    fn conformance_through_rclone_on_a_local_remote() {
        let Some(exe) = rclone() else { return };
        let dir = tempfile::tempdir().unwrap();
        let opts = RcloneOptions {
            remote_path: dir.path().join("repo").to_string_lossy().into_owned(),
            rclone_exe: exe,
            rclone_args: vec!["--config=/dev/null".into()],
            ..Default::default()
        };
        let st = RcloneStorage::open(opts, true, DEFAULT_STARTUP_TIMEOUT).unwrap();
        crate::conformance::run(&st);
        // the remote holds Kopia's sharded layout
        st.put_blob(
            "p0123456789abcdef0123456789abcdef",
            b"x",
            &PutOptions::default(),
        )
        .unwrap();
        assert!(dir
            .path()
            .join("repo/p/012/3456789abcdef0123456789abcdef.f")
            .is_file());
        assert!(dir.path().join("repo/.shards").is_file());
    }

    #[test]
    fn a_remote_rclone_cannot_serve_is_one_clear_line() {
        let Some(exe) = rclone() else { return };
        let opts = RcloneOptions {
            remote_path: "nosuchremote:path".into(),
            rclone_exe: exe,
            rclone_args: vec!["--config=/dev/null".into()],
            ..Default::default()
        };
        let e = RcloneStorage::open(opts, true, DEFAULT_STARTUP_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("failed to start") && e.contains("nosuchremote"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = RcloneStorage::open(
            RcloneOptions {
                remote_path: "/tmp".into(),
                rclone_exe: "/nonexistent/rclone".into(),
                ..Default::default()
            },
            false,
            DEFAULT_STARTUP_TIMEOUT,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rclone-exe"), "{e}");
    }
}
