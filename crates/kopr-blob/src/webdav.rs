//! WebDAV storage, laid out as Kopia's `webdav` backend, which is the filesystem layout over
//! HTTP: blob `id` is the file `<shards>/<rest>.f` under the URL, sharded as `.shards` at the
//! root says (`{1,3}` for new repositories, `{3,3}` when it is missing), so one directory can
//! be served by WebDAV and opened as a filesystem repository alike. A put writes
//! `<file>-<random>` and MOVEs it over the blob (creating missing shard directories with
//! MKCOL), so readers never see part of a blob; listings walk the shard directories with
//! PROPFIND (`Depth: 1`), several directories at once. Blocking HTTP (ureq + rustls) with
//! basic authentication; network failures, 423/429 and 5xx answers are
//! [`BlobError::Transient`].

mod list;

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use list::parse_propfind;

use crate::filesystem::{ShardParameters, SHARDS_FILE};
use crate::http;
use crate::s3::Timeouts;
use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// Directories listed at once.
const LIST_THREADS: usize = 8;

/// Where and how to reach the server; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebDavOptions {
    /// URL of the repository's directory.
    pub url: String,
    /// Basic-auth user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Basic-auth password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// SHA-256 (hex) of the one server certificate trusted for `https` (Kopia's field; a
    /// self-signed server), instead of the public roots.
    #[serde(
        rename = "trustedServerCertificateFingerprint",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub trusted_server_certificate_fingerprint: String,
    /// Whether the server's PUT is atomic (then no temporary file and MOVE).
    #[serde(rename = "atomicWrites", default)]
    pub atomic_writes: bool,
    /// Shards given at creation (`null`: the `.shards` file decides).
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
}

impl fmt::Debug for WebDavOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavOptions")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Blobs as files of a WebDAV server.
pub struct WebDavStorage {
    opts: WebDavOptions,
    /// The URL without a trailing slash.
    base: String,
    /// The path part of `base` (to read PROPFIND's hrefs).
    base_path: String,
    auth: Option<String>,
    shards: ShardParameters,
    agent: ureq::Agent,
    timeouts: Timeouts,
}

impl fmt::Debug for WebDavStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavStorage")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

enum Failure {
    Status(u16, String),
    Error(BlobError),
}

impl WebDavStorage {
    /// Opens the storage at the options' URL; `create` writes `.shards` of a new repository.
    pub fn open(opts: WebDavOptions, create: bool) -> Result<WebDavStorage> {
        let url = opts.url.trim().trim_end_matches('/').to_string();
        let Some((_, rest)) = url
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
        else {
            return Err(BlobError::Other(format!(
                "invalid WebDAV --url {:?}: expected http://HOST[:PORT]/PATH or https://…",
                opts.url
            )));
        };
        let base_path = rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_default();
        let auth = (!opts.username.is_empty()).then(|| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", opts.username, opts.password))
            )
        });
        let timeouts = Timeouts::from_env()?;
        let agent = if opts.trusted_server_certificate_fingerprint.is_empty() {
            http::agent(timeouts, true)?
        } else {
            http::agent_with(
                timeouts,
                crate::tls_pin::pinned_config(&opts.trusted_server_certificate_fingerprint)?,
            )?
        };
        let mut st = WebDavStorage {
            agent,
            timeouts,
            base: url,
            base_path,
            auth,
            shards: ShardParameters::default_for(&[3, 3]),
            opts,
        };
        st.shards = st.read_shards(create)?;
        Ok(st)
    }

    /// Reads `.shards`, writing Kopia's default for a new repository when it is missing.
    fn read_shards(&self, create: bool) -> Result<ShardParameters> {
        match self.request("GET", SHARDS_FILE, &[], None) {
            Ok(resp) => {
                let body = http::read_doc(resp, "WebDAV", "get of .shards")?;
                serde_json::from_str(&body).map_err(|e| {
                    BlobError::Other(format!("invalid {SHARDS_FILE} at {}: {e}", self.base))
                })
            }
            Err(Failure::Status(404, _)) => {
                let dflt = self.opts.dir_shards.clone().unwrap_or(if create {
                    vec![1, 3]
                } else {
                    vec![3, 3]
                });
                let p = ShardParameters::default_for(&dflt);
                if create {
                    self.mkcol_all("")?;
                    let mut data =
                        serde_json::to_vec(&p).map_err(|e| BlobError::Other(e.to_string()))?;
                    data.push(b'\n');
                    self.write_file(&[], SHARDS_FILE, &data, false)?;
                }
                Ok(p)
            }
            Err(f) => Err(self.error(f, "open", SHARDS_FILE)),
        }
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{}", self.base, http::encode_path(rel))
    }

    fn request(
        &self,
        method: &str,
        rel: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let mut r = self.agent.request(method, &self.url(rel));
        if let Some(a) = &self.auth {
            r = r.set("authorization", a);
        }
        for (k, v) in headers {
            r = r.set(k, v);
        }
        let res = match body {
            Some(b) => r.send_bytes(b),
            None => r.call(),
        };
        match res {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp),
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                let status = resp.status();
                let text = http::read_doc(resp, "WebDAV", "error").unwrap_or_default();
                Err(Failure::Status(status, text))
            }
            Err(ureq::Error::Transport(t)) => Err(Failure::Error(http::transport_error(
                "WebDAV",
                &self.base,
                &format!("{method} /{rel}"),
                &t,
                self.timeouts,
            ))),
        }
    }

    fn error(&self, f: Failure, op: &str, id: &str) -> BlobError {
        let (status, text) = match f {
            Failure::Error(e) => return e,
            Failure::Status(s, t) => (s, t),
        };
        let detail = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('<'))
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        match status {
            404 => BlobError::NotFound(id.to_string()),
            401 => BlobError::Permission(format!(
                "WebDAV server {} rejected the credentials (HTTP 401): check --webdav-username and --webdav-password (KOPIA_WEBDAV_USERNAME, KOPIA_WEBDAV_PASSWORD)",
                self.base
            )),
            403 => BlobError::Permission(format!(
                "WebDAV server {} denied {op} of {id} (HTTP 403) {detail}",
                self.base
            )),
            412 => BlobError::Other(format!("blob {id} already exists")),
            423 | 429 | 500..=599 => BlobError::Transient(format!(
                "WebDAV {op} of {id} at {}: HTTP {status} {detail}",
                self.base
            )),
            _ => BlobError::Other(format!(
                "WebDAV {op} of {id} at {} failed: HTTP {status} {detail}",
                self.base
            )),
        }
    }

    /// The shard directories and file name of `id`.
    fn path_of(&self, id: &str) -> Result<(Vec<String>, String)> {
        if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(BlobError::Other(format!("invalid blob id {id:?}")));
        }
        Ok(self.shards.split(id))
    }

    fn rel(dirs: &[String], file: &str) -> String {
        let mut p = dirs.join("/");
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(file);
        p
    }

    /// Creates `dir` (relative, `a/bcd`) and its missing parents; `""` creates the root.
    fn mkcol_all(&self, dir: &str) -> Result<()> {
        let mut rels = Vec::new();
        let mut cur = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            cur.push_str(part);
            cur.push('/');
            rels.push(cur.clone());
        }
        if rels.is_empty() {
            rels.push(String::new());
        }
        for rel in rels {
            // 423: another writer is creating it right now; wait for it, briefly.
            let mut waits = 0;
            loop {
                match self.request("MKCOL", &rel, &[], None) {
                    // 405: it exists already
                    Ok(_) | Err(Failure::Status(405, _)) => break,
                    Err(Failure::Status(423, _)) if waits < 50 => {
                        waits += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(f) => return Err(self.error(f, "mkdir", &rel)),
                }
            }
        }
        Ok(())
    }

    /// Writes `file` in `dirs`: to a temporary name then moved over it (unless atomic).
    fn write_file(
        &self,
        dirs: &[String],
        file: &str,
        data: &[u8],
        no_overwrite: bool,
    ) -> Result<()> {
        let target = Self::rel(dirs, file);
        let tmp = if self.opts.atomic_writes && !no_overwrite {
            target.clone()
        } else {
            let mut r = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut r);
            format!("{target}-{}", u64::from_le_bytes(r) >> 1)
        };
        let mut made_dirs = false;
        loop {
            match self.request("PUT", &tmp, &[], Some(data)) {
                Ok(_) => break,
                // A missing shard directory: 404 or 409, or (servers that answer before
                // reading a large body) a connection closed under the upload.
                Err(Failure::Status(404 | 409, _) | Failure::Error(BlobError::Transient(_)))
                    if !made_dirs && !dirs.is_empty() =>
                {
                    self.mkcol_all(&dirs.join("/"))?;
                    made_dirs = true;
                }
                Err(f) => return Err(self.error(f, "put", file)),
            }
        }
        if tmp == target {
            return Ok(());
        }
        let headers = [
            ("destination", self.url(&target)),
            (
                "overwrite",
                if no_overwrite { "F" } else { "T" }.to_string(),
            ),
        ];
        if let Err(f) = self.request("MOVE", &tmp, &headers, None) {
            let _ = self.request("DELETE", &tmp, &[], None);
            return Err(self.error(f, "put", file));
        }
        Ok(())
    }
}

impl BlobStorage for WebDavStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let (dirs, file) = self.path_of(id)?;
        let rel = Self::rel(&dirs, &file);
        http::ranged_get(
            id,
            offset,
            length,
            &|| Ok(self.get_metadata(id)?.length),
            &mut |range| {
                let headers: Vec<(&str, String)> =
                    range.map(|r| ("range", r)).into_iter().collect();
                match self.request("GET", &rel, &headers, None) {
                    Ok(resp) => {
                        let status = resp.status();
                        let what = format!("get of {id}");
                        Ok(Some((
                            status,
                            http::read_body(resp, u64::MAX, "WebDAV", &what)?,
                        )))
                    }
                    Err(Failure::Status(416, _)) => Ok(None),
                    Err(f) => Err(self.error(f, "get", id)),
                }
            },
        )
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let (dirs, file) = self.path_of(id)?;
        let resp = self
            .request("HEAD", &Self::rel(&dirs, &file), &[], None)
            .map_err(|f| self.error(f, "stat", id))?;
        let length = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BlobError::Other(format!("WebDAV stat of {id}: no Content-Length")))?;
        let timestamp = resp
            .header("last-modified")
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        Ok(BlobMetadata {
            id: id.to_string(),
            length,
            timestamp,
        })
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if opts.retention_mode.is_some() {
            return Err(BlobError::Other(
                "WebDAV storage does not support --retention-mode (object lock)".into(),
            ));
        }
        let (dirs, file) = self.path_of(id)?;
        if opts.do_not_overwrite {
            match self.get_metadata(id) {
                Ok(_) => return Err(BlobError::Other(format!("blob {id} already exists"))),
                Err(BlobError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.write_file(&dirs, &file, data, opts.do_not_overwrite)
            .map_err(|e| match e {
                BlobError::NotFound(_) => BlobError::Other(format!(
                    "WebDAV put of {id}: the repository directory {} does not exist",
                    self.base
                )),
                e => e,
            })
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let (dirs, file) = self.path_of(id)?;
        match self.request("DELETE", &Self::rel(&dirs, &file), &[], None) {
            Ok(_) | Err(Failure::Status(404, _)) => Ok(()),
            Err(f) => Err(self.error(f, "delete", id)),
        }
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        self.walk(prefix, cb)
    }

    fn display_name(&self) -> String {
        format!("WebDAV: {}", self.opts.url)
    }
}

#[cfg(test)]
mod tests;
