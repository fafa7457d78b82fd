//! Google Cloud Storage, laid out as Kopia's `gcs` backend: blob `id` is the object
//! `prefix + id` of the bucket, no sharding. Blocking HTTP (ureq + rustls) with GCS's JSON API
//! (media download with ranges, media upload, delete, paged listing), authorized with an OAuth2
//! access token obtained from service-account credentials (a JWT signed with RS256, `ring`) or
//! an `authorized_user` refresh token, renewed before it expires; without a credentials file
//! (flag, `GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's application-default file), from the
//! metadata server of the VM kopr runs on (`GCE_METADATA_HOST` overrides its address), as
//! Google's clients find their default credentials. As Google's own clients,
//! `STORAGE_EMULATOR_HOST` sends every request to an emulator without authentication.
//! Network failures, 429 and 5xx answers are [`BlobError::Transient`]; everything else is a
//! one-line error naming the fix.

mod auth;

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http;
use crate::s3::Timeouts;
use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};
use auth::Auth;

/// Google's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The variable Google's clients read to talk to an emulator (`host:port` or a URL).
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";
const SCOPE_FULL: &str = "https://www.googleapis.com/auth/devstorage.full_control";
const SCOPE_READ: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The metadata server of Google's VMs (GCE, GKE, Cloud Run), unless `GCE_METADATA_HOST`.
const METADATA_HOST: &str = "metadata.google.internal";
/// Where a VM's service account gives out tokens.
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Where and how to reach the bucket; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcsOptions {
    /// Bucket name.
    pub bucket: String,
    /// Prepended to every blob id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// A credentials JSON file.
    #[serde(
        rename = "credentialsFile",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub credentials_file: String,
    /// The credentials JSON itself (`--embed-credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<serde_json::Value>,
    /// Ask for a read-only scope.
    #[serde(rename = "readOnly", default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl fmt::Debug for GcsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsOptions")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("credentials_file", &self.credentials_file)
            .finish_non_exhaustive()
    }
}

/// Blobs as objects of a GCS bucket.
pub struct GcsStorage {
    opts: GcsOptions,
    endpoint: String,
    auth: Auth,
    token: Mutex<Option<(String, Instant)>>,
    agent: ureq::Agent,
    timeouts: Timeouts,
}

impl fmt::Debug for GcsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStorage")
            .field("opts", &self.opts)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

enum Failure {
    Status(u16, String),
    Error(BlobError),
}

impl GcsStorage {
    /// Builds the client (reads the credentials) without any request; see [`GcsStorage::connect`].
    pub fn new(opts: GcsOptions) -> Result<GcsStorage> {
        match std::env::var(EMULATOR_ENV).ok().filter(|h| !h.is_empty()) {
            Some(host) => {
                let url = if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                };
                GcsStorage::with_endpoint(opts, &url, false)
            }
            None => GcsStorage::with_endpoint(opts, DEFAULT_ENDPOINT, true),
        }
    }

    /// As [`GcsStorage::new`] against `endpoint`, authenticating only when `authenticate`.
    pub fn with_endpoint(
        opts: GcsOptions,
        endpoint: &str,
        authenticate: bool,
    ) -> Result<GcsStorage> {
        if opts.bucket.is_empty() {
            return Err(BlobError::Other("no GCS bucket given (--bucket)".into()));
        }
        let auth = if authenticate {
            Self::auth(&opts, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?
        } else {
            Auth::None
        };
        Self::with_auth(opts, endpoint, auth)
    }

    fn with_auth(opts: GcsOptions, endpoint: &str, auth: Auth) -> Result<GcsStorage> {
        let timeouts = Timeouts::from_env()?;
        Ok(GcsStorage {
            agent: http::agent(timeouts, true)?,
            timeouts,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            auth,
            token: Mutex::new(None),
            opts,
        })
    }

    /// Builds the client and checks that the bucket is reachable with these credentials.
    pub fn connect(opts: GcsOptions) -> Result<GcsStorage> {
        let st = GcsStorage::new(opts)?;
        st.probe()?;
        Ok(st)
    }

    /// Lists at most one object; transient failures are retried briefly, then reported.
    pub fn probe(&self) -> Result<()> {
        let mut delay = Duration::from_millis(200);
        for attempt in 0.. {
            match self.list_page(&self.opts.prefix, None, 1) {
                Ok(_) => return Ok(()),
                Err(BlobError::Transient(m)) if attempt >= 2 => return Err(BlobError::Other(m)),
                Err(BlobError::Transient(_)) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates the bucket (tests; Kopia never creates buckets).
    pub fn create_bucket(&self) -> Result<()> {
        let body = serde_json::json!({ "name": self.opts.bucket }).to_string();
        match self.request(
            "POST",
            "/storage/v1/b?project=kopr",
            &[("content-type", "application/json".into())],
            Some(body.as_bytes()),
        ) {
            Ok(_) | Err(Failure::Status(409, _)) => Ok(()),
            Err(f) => Err(self.error(f, "create bucket", "")),
        }
    }

    /// Replaces the network time limits.
    pub fn with_timeouts(mut self, t: Timeouts) -> Result<GcsStorage> {
        self.agent = http::agent(t, true)?;
        self.timeouts = t;
        Ok(self)
    }

    fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let url = format!("{}{path_and_query}", self.endpoint);
        let mut r = self.agent.request(method, &url);
        if let Some(t) = self.token().map_err(Failure::Error)? {
            r = r.set("authorization", &format!("Bearer {t}"));
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
                let text = http::read_doc(resp, "GCS", "error").unwrap_or_default();
                let msg = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| {
                        text.lines()
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect()
                    });
                Err(Failure::Status(status, msg))
            }
            Err(ureq::Error::Transport(t)) => Err(Failure::Error(http::transport_error(
                "GCS",
                &self.endpoint,
                &format!(
                    "{method} {}",
                    path_and_query.split('?').next().unwrap_or("")
                ),
                &t,
                self.timeouts,
            ))),
        }
    }

    fn error(&self, f: Failure, op: &str, id: &str) -> BlobError {
        let (status, msg) = match f {
            Failure::Error(e) => return e,
            Failure::Status(s, m) => (s, m),
        };
        let what = if id.is_empty() {
            format!("gs://{}/{}", self.opts.bucket, self.opts.prefix)
        } else {
            id.to_string()
        };
        let lower = msg.to_ascii_lowercase();
        match status {
            404 if id.is_empty() || lower.contains("bucket") => BlobError::Other(format!(
                "GCS bucket {:?} does not exist at {}: create it or fix --bucket",
                self.opts.bucket, self.endpoint
            )),
            404 => BlobError::NotFound(id.to_string()),
            401 => BlobError::Permission(format!(
                "GCS rejected the credentials (HTTP 401 {msg}): check --credentials-file"
            )),
            403 => BlobError::Permission(format!(
                "GCS denied {op} of {what} (HTTP 403 {msg}): the service account needs Storage Object Admin on the bucket"
            )),
            412 => BlobError::Other(format!("blob {id} already exists")),
            408 | 429 | 500..=599 => {
                BlobError::Transient(format!("GCS {op} of {what}: HTTP {status} {msg}"))
            }
            _ => BlobError::Other(format!("GCS {op} of {what} failed: HTTP {status} {msg}")),
        }
    }

    fn object_path(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(BlobError::Other("empty blob id".into()));
        }
        Ok(format!(
            "/storage/v1/b/{}/o/{}",
            enc(&self.opts.bucket),
            enc(&format!("{}{id}", self.opts.prefix))
        ))
    }

    fn list_page(
        &self,
        full_prefix: &str,
        token: Option<&str>,
        max: usize,
    ) -> Result<(Vec<BlobMetadata>, Option<String>)> {
        let mut q = format!(
            "/storage/v1/b/{}/o?maxResults={max}&prefix={}",
            enc(&self.opts.bucket),
            enc(full_prefix)
        );
        if let Some(t) = token {
            q.push_str(&format!("&pageToken={}", enc(t)));
        }
        let resp = self
            .request("GET", &q, &[], None)
            .map_err(|f| self.error(f, "list", ""))?;
        let body = http::read_doc(resp, "GCS", "list")?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            BlobError::Other(format!("GCS list of {full_prefix:?}: invalid answer: {e}"))
        })?;
        let mut out = Vec::new();
        for item in v
            .get("items")
            .and_then(|i| i.as_array())
            .into_iter()
            .flatten()
        {
            out.push(
                object_meta(item)
                    .map_err(|e| BlobError::Other(format!("GCS list of {full_prefix:?}: {e}")))?,
            );
        }
        let next = v
            .get("nextPageToken")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok((out, next))
    }
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    crate::s3::sigv4::uri_encode(s, false)
}

/// Name, size and update time of an object resource.
fn object_meta(v: &serde_json::Value) -> std::result::Result<BlobMetadata, String> {
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or("object without name")?
        .to_string();
    let length = match v.get("size") {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(n) => n.as_u64(),
        None => None,
    }
    .ok_or_else(|| format!("object {name} without a valid size"))?;
    let ts = v
        .get("updated")
        .or_else(|| v.get("timeCreated"))
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("object {name} without a valid update time"))?;
    Ok(BlobMetadata {
        id: name,
        length,
        timestamp: ts,
    })
}

impl BlobStorage for GcsStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let path = self.object_path(id)?;
        http::ranged_get(
            id,
            offset,
            length,
            &|| Ok(self.get_metadata(id)?.length),
            &mut |range| {
                let headers: Vec<(&str, String)> =
                    range.map(|r| ("range", r)).into_iter().collect();
                match self.request("GET", &format!("{path}?alt=media"), &headers, None) {
                    Ok(resp) => {
                        let status = resp.status();
                        let what = format!("get of {id}");
                        Ok(Some((
                            status,
                            http::read_body(resp, u64::MAX, "GCS", &what)?,
                        )))
                    }
                    Err(Failure::Status(416, _)) => Ok(None),
                    Err(f) => Err(self.error(f, "get", id)),
                }
            },
        )
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let path = self.object_path(id)?;
        let resp = self
            .request("GET", &path, &[], None)
            .map_err(|f| self.error(f, "stat", id))?;
        let body = http::read_doc(resp, "GCS", &format!("stat of {id}"))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| BlobError::Other(format!("GCS stat of {id}: invalid answer: {e}")))?;
        let mut m =
            object_meta(&v).map_err(|e| BlobError::Other(format!("GCS stat of {id}: {e}")))?;
        m.id = id.to_string();
        Ok(m)
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if opts.retention_mode.is_some() {
            return Err(BlobError::Other(
                "GCS storage in kopr does not support --retention-mode (object lock)".into(),
            ));
        }
        if id.is_empty() {
            return Err(BlobError::Other("empty blob id".into()));
        }
        let mut q = format!(
            "/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            enc(&self.opts.bucket),
            enc(&format!("{}{id}", self.opts.prefix))
        );
        if opts.do_not_overwrite {
            // The precondition is atomic on GCS; the look first covers servers ignoring it.
            match self.get_metadata(id) {
                Ok(_) => return Err(BlobError::Other(format!("blob {id} already exists"))),
                Err(BlobError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            q.push_str("&ifGenerationMatch=0");
        }
        self.request(
            "POST",
            &q,
            &[("content-type", "application/x-kopia".into())],
            Some(data),
        )
        .map(|_| ())
        .map_err(|f| self.error(f, "put", id))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let path = self.object_path(id)?;
        match self.request("DELETE", &path, &[], None) {
            Ok(_) => Ok(()),
            Err(f) => match self.error(f, "delete", id) {
                BlobError::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        crate::http::list_paged(
            "GCS",
            &self.opts.prefix,
            prefix,
            &mut |full, token| self.list_page(full, token, 1000),
            cb,
        )
    }

    fn display_name(&self) -> String {
        format!("gs://{}/{}", self.opts.bucket, self.opts.prefix)
    }
}

#[cfg(test)]
mod tests;
