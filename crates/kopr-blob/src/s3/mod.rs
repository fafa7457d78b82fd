//! S3 storage (AWS and S3-compatible servers), laid out as Kopia's `s3` backend: the object
//! key of a blob is `prefix + blob id`, with no sharding. Blocking HTTP (ureq + rustls), hand
//! signed with SigV4. Network failures, throttling and 5xx answers are
//! [`BlobError::Transient`], so [`crate::retrying::RetryingStorage`] retries them; everything
//! else is a one-line error that says what to change.

mod list;
mod multipart;
mod options;
pub mod proxy;
mod request;
mod retention;
pub mod sigv4;
pub mod tls;
mod transport;
pub mod xml;

use options::env_or;
pub use options::{S3Options, Timeouts, TIMEOUT_ENV};
use request::{Failure, Req};
use transport::{build_agent, split_host_port};

use std::fmt;
use std::io::Read;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{checked_range, BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// AWS's global endpoint, Kopia's default.
pub const DEFAULT_ENDPOINT: &str = "s3.amazonaws.com";
/// The region requests are signed for when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Blobs larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 64 << 20;
/// Part size of multipart uploads.
const PART_SIZE: usize = 16 << 20;
/// S3's smallest part (but the last).
const MIN_PART_SIZE: usize = 5 << 20;
/// Largest error document or listing page read into memory.
const MAX_DOC: u64 = 16 << 20;

/// Blobs as objects of an S3 bucket.
pub struct S3Storage {
    opts: S3Options,
    access_key: String,
    secret_key: String,
    session_token: String,
    agent: ureq::Agent,
    proxy: Option<String>,
    timeouts: Timeouts,
    scheme: &'static str,
    endpoint: String,
    virtual_host: bool,
    region: RwLock<String>,
    list_page_size: usize,
    parallel_list: bool,
    multipart_threshold: usize,
    part_size: usize,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Builds the client without any request; see [`S3Storage::connect`].
    pub fn new(opts: S3Options) -> Result<S3Storage> {
        let opts = opts.normalized();
        if opts.bucket.is_empty() {
            return Err(BlobError::Other("no S3 bucket given (--bucket)".into()));
        }
        let access_key = env_or(&opts.access_key_id, "AWS_ACCESS_KEY_ID");
        let secret_key = env_or(&opts.secret_access_key, "AWS_SECRET_ACCESS_KEY");
        // A token from the environment belongs to the environment's keys only.
        let session_token = if opts.access_key_id.is_empty() {
            env_or(&opts.session_token, "AWS_SESSION_TOKEN")
        } else {
            opts.session_token.clone()
        };
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(BlobError::Other(
                "no S3 credentials: use --access-key and --secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into(),
            ));
        }
        let mut region = env_or(&opts.region, "AWS_REGION");
        if region.is_empty() {
            region = DEFAULT_REGION.to_string();
        }
        let mut endpoint = if opts.endpoint.is_empty() {
            DEFAULT_ENDPOINT.to_string()
        } else {
            opts.endpoint.clone()
        };
        if endpoint == DEFAULT_ENDPOINT && region != DEFAULT_REGION {
            endpoint = format!("s3.{region}.amazonaws.com");
        }
        let host = split_host_port(&endpoint, 0).0;
        let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
        let dns_bucket = opts
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && (opts.do_not_use_tls || !opts.bucket.contains('.'));
        let scheme = if opts.do_not_use_tls { "http" } else { "https" };
        let (host, port) = split_host_port(&endpoint, if opts.do_not_use_tls { 80 } else { 443 });
        let proxy = proxy::from_env(scheme, &host, port, |k| std::env::var(k).ok());
        let timeouts = Timeouts::from_env()?;
        let agent = build_agent(&opts, proxy.as_deref(), timeouts)?;
        Ok(S3Storage {
            scheme,
            proxy,
            timeouts,
            virtual_host: aws && dns_bucket,
            endpoint,
            access_key,
            secret_key,
            session_token,
            agent,
            region: RwLock::new(region),
            list_page_size: 1000,
            parallel_list: true,
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            opts,
        })
    }

    /// Builds the client and checks that the bucket is reachable with these credentials.
    pub fn connect(opts: S3Options) -> Result<S3Storage> {
        let st = S3Storage::new(opts)?;
        st.probe()?;
        Ok(st)
    }

    /// Lists at most one object of the prefix: proves endpoint, TLS, credentials and bucket.
    /// Transient failures are retried briefly, then reported as permanent.
    pub fn probe(&self) -> Result<()> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            let req = Req::new("GET", None)
                .query("list-type", "2")
                .query("max-keys", "1")
                .query("prefix", self.opts.prefix.clone());
            match self.execute(&req) {
                Ok(_) => return Ok(()),
                Err(f) => match self.error(f, "list", "") {
                    BlobError::Transient(m) if attempt >= 2 => return Err(BlobError::Other(m)),
                    BlobError::Transient(_) => {
                        std::thread::sleep(delay);
                        delay *= 2;
                        attempt += 1;
                    }
                    e => return Err(e),
                },
            }
        }
    }

    /// Creates the bucket (tests and first-time setups; Kopia never creates buckets).
    pub fn create_bucket(&self) -> Result<()> {
        let mut req = Req::new("PUT", None);
        req.body = Some(&[]);
        self.execute(&req)
            .map(|_| ())
            .map_err(|f| self.error(f, "create bucket", ""))
    }

    /// Lists with pages of `n` keys (tests of pagination).
    pub fn with_list_page_size(mut self, n: usize) -> S3Storage {
        self.list_page_size = n.clamp(1, 1000);
        self
    }

    /// Sends every request through the HTTP proxy at `url` (tests; users set `HTTPS_PROXY`).
    pub fn with_proxy(mut self, url: &str) -> Result<S3Storage> {
        self.agent = build_agent(&self.opts, Some(url), self.timeouts)?;
        self.proxy = Some(url.to_string());
        Ok(self)
    }

    /// Replaces the network time limits (by default [`Timeouts::from_env`]).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<S3Storage> {
        self.agent = build_agent(&self.opts, self.proxy.as_deref(), timeouts)?;
        self.timeouts = timeouts;
        Ok(self)
    }

    /// The network time limits in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Uploads blobs larger than `threshold` in parts of `part_size` (at least 5 MiB).
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> S3Storage {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(MIN_PART_SIZE);
        self
    }

    /// Lists long prefixes one page after another instead of in parallel key ranges.
    pub fn with_sequential_listing(mut self) -> S3Storage {
        self.parallel_list = false;
        self
    }

    /// The options, normalized.
    pub fn options(&self) -> &S3Options {
        &self.opts
    }

    fn key(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(BlobError::Other("empty blob id".into()));
        }
        Ok(format!("{}{id}", self.opts.prefix))
    }

    fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.endpoint)
    }

    /// Host header and encoded path of an object (or of the bucket when `key` is `None`).
    fn location(&self, key: Option<&str>) -> (String, String) {
        let k = key.map(|k| sigv4::uri_encode(k, true));
        if self.virtual_host {
            let host = format!("{}.{}", self.opts.bucket, self.endpoint);
            (host, format!("/{}", k.unwrap_or_default()))
        } else {
            let b = sigv4::uri_encode(&self.opts.bucket, false);
            let path = match k {
                Some(k) => format!("/{b}/{k}"),
                None => format!("/{b}"),
            };
            (self.endpoint.clone(), path)
        }
    }

    fn current_region(&self) -> String {
        self.region
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A 416 answer: nothing at or after `offset`, fine only for an open range at the very end.
    fn nothing_after(
        &self,
        id: &str,
        content_range: Option<String>,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Vec<u8>> {
        let actual = match content_range.as_deref().and_then(total_from_content_range) {
            Some(n) => n,
            None => self.get_metadata(id)?.length,
        };
        checked_range(id, actual, offset, length)?;
        Ok(Vec::new())
    }

    /// Reads `out.len()` bytes at `offset` straight into `out` (`None`) when the server answers
    /// with exactly that part; else the bytes as [`BlobStorage::get_blob`] reads and checks
    /// them: an empty read (a range check only), the whole object, a shorter part.
    fn read_ranged_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<Option<Vec<u8>>> {
        let len = out.len() as u64;
        // (a range past u64 gets get_blob's error)
        let range = match len {
            0 => None,
            _ => range_header(id, offset, Some(len)).ok().flatten(),
        };
        let Some(range) = range else {
            return self.get_blob(id, offset, Some(len)).map(Some);
        };
        let key = self.key(id)?;
        let req = Req::new("GET", Some(&key)).header("range", range.as_str());
        let resp = match self.execute(&req) {
            Ok(r) => r,
            Err(Failure::Status {
                status: 416,
                content_range,
                ..
            }) => {
                return self
                    .nothing_after(id, content_range, offset, Some(len))
                    .map(Some)
            }
            Err(f) => return Err(self.error(f, "get", id)),
        };
        let content_length: Option<u64> =
            resp.header("content-length").and_then(|v| v.parse().ok());
        if resp.status() != 206 || content_length != Some(len) {
            return self
                .read_object(resp, id, offset, Some(len), true)
                .map(Some);
        }
        // No zeroing, no second copy.
        resp.into_reader()
            .read_exact(out)
            .map_err(|e| self.read_failure("get", id, e))?;
        Ok(None)
    }

    /// Reads the body of a GET answer and checks it is the length asked (or announced).
    fn read_object(
        &self,
        resp: ureq::Response,
        id: &str,
        offset: u64,
        length: Option<u64>,
        ranged: bool,
    ) -> Result<Vec<u8>> {
        let status = resp.status();
        let total = resp
            .header("content-range")
            .and_then(total_from_content_range);
        let content_length: Option<u64> =
            resp.header("content-length").and_then(|v| v.parse().ok());
        let limit = length.or(content_length).unwrap_or(u64::MAX);
        let mut buf = Vec::with_capacity(limit.min(64 << 20) as usize);
        resp.into_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| self.read_failure("get", id, e))?;
        if let Some(n) = content_length {
            if buf.len() as u64 != n {
                return Err(BlobError::Transient(format!(
                    "S3 get of {id}: got {} of {n} bytes",
                    buf.len()
                )));
            }
        }
        if ranged && status == 200 {
            // The server ignored the range and sent the whole object.
            let r = checked_range(id, buf.len() as u64, offset, length)?;
            return Ok(buf[r].to_vec());
        }
        if let Some(l) = length {
            if buf.len() as u64 != l {
                return Err(BlobError::InvalidRange {
                    id: id.to_string(),
                    offset,
                    length: l,
                    actual: total.unwrap_or(offset + buf.len() as u64),
                });
            }
        }
        Ok(buf)
    }
}

/// The `range` header of a read of `length` bytes (or to the end) at `offset`; `None` for the
/// whole object.
fn range_header(id: &str, offset: u64, length: Option<u64>) -> Result<Option<String>> {
    if offset == 0 && length.is_none() {
        return Ok(None);
    }
    Ok(Some(match length {
        Some(l) => {
            // (no range is empty: an empty read asks for none)
            let last = l
                .checked_sub(1)
                .and_then(|m| offset.checked_add(m))
                .ok_or_else(|| BlobError::InvalidRange {
                    id: id.to_string(),
                    offset,
                    length: l,
                    actual: 0,
                })?;
            format!("bytes={offset}-{last}")
        }
        None => format!("bytes={offset}-"),
    }))
}

/// `bytes a-b/total` → total.
fn total_from_content_range(cr: &str) -> Option<u64> {
    cr.rsplit('/').next()?.trim().parse().ok()
}

impl BlobStorage for S3Storage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let key = self.key(id)?;
        if length == Some(0) {
            let m = self.get_metadata(id)?;
            checked_range(id, m.length, offset, Some(0))?;
            return Ok(Vec::new());
        }
        let mut req = Req::new("GET", Some(&key));
        let range = range_header(id, offset, length)?;
        if let Some(range) = &range {
            req = req.header("range", range.as_str());
        }
        let resp = match self.execute(&req) {
            Ok(r) => r,
            Err(Failure::Status {
                status: 416,
                content_range,
                ..
            }) => return self.nothing_after(id, content_range, offset, length),
            Err(f) => return Err(self.error(f, "get", id)),
        };
        self.read_object(resp, id, offset, length, range.is_some())
    }

    fn read_blob_into(&self, id: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        match self.read_ranged_into(id, offset, out)? {
            None => Ok(()),
            Some(bytes) => crate::fill_exactly(&format!("S3 get of {id}"), &bytes, out),
        }
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let key = self.key(id)?;
        let resp = self
            .execute(&Req::new("HEAD", Some(&key)))
            .map_err(|f| self.error(f, "stat", id))?;
        let length = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BlobError::Other(format!("S3 stat of {id}: no Content-Length")))?;
        let timestamp = resp
            .header("last-modified")
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| BlobError::Other(format!("S3 stat of {id}: no valid Last-Modified")))?;
        Ok(BlobMetadata {
            id: id.to_string(),
            length,
            timestamp,
        })
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        let key = self.key(id)?;
        let mut req = Req::new("PUT", Some(&key));
        req.body = Some(data);
        if opts.do_not_overwrite {
            match self.get_metadata(id) {
                Ok(_) => return Err(BlobError::Other(format!("blob {id} already exists"))),
                Err(BlobError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            req = req.header("if-none-match", "*");
        }
        if data.len() > self.multipart_threshold && opts.retention_mode.is_none() {
            return self.put_multipart(id, &key, data);
        }
        if let (Some(mode), Some(period)) = (&opts.retention_mode, opts.retention_period) {
            let until = Utc::now()
                + chrono::Duration::from_std(period).map_err(|e| {
                    BlobError::Other(format!("invalid retention period {period:?}: {e}"))
                })?;
            let digest = <sha2::Sha256 as sha2::Digest>::digest(data);
            req = req
                .header("x-amz-object-lock-mode", mode.clone())
                .header(
                    "x-amz-object-lock-retain-until-date",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .header(
                    "x-amz-checksum-sha256",
                    base64::engine::general_purpose::STANDARD.encode(digest),
                );
        }
        self.execute(&req)
            .map(|_| ())
            .map_err(|f| self.error(f, "put", id))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let key = self.key(id)?;
        match self.execute(&Req::new("DELETE", Some(&key))) {
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
        self.list(prefix, cb)
    }

    fn display_name(&self) -> String {
        format!("s3://{}/{}", self.opts.bucket, self.opts.prefix)
    }

    fn extend_retention(&self, id: &str, mode: &str, period: std::time::Duration) -> Result<()> {
        let key = self.key(id)?;
        let until = Utc::now()
            + chrono::Duration::from_std(period).map_err(|e| {
                BlobError::Other(format!("invalid retention period {period:?}: {e}"))
            })?;
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let digest = <sha2::Sha256 as sha2::Digest>::digest(body.as_bytes());
        let mut req = Req::new("PUT", Some(&key))
            .query("retention", "")
            .header("x-amz-sdk-checksum-algorithm", "SHA256")
            .header(
                "x-amz-checksum-sha256",
                base64::engine::general_purpose::STANDARD.encode(digest),
            );
        req.body = Some(body.as_bytes());
        self.execute(&req)
            .map(|_| ())
            .map_err(|f| self.error(f, "extend retention of", id))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_payload;
