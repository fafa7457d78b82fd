//! Sending one signed S3 request (SigV4 headers, a retry in the bucket's own region) and naming
//! a failed one as a [`BlobError`] that says what to change.

use std::io::Read;

use chrono::Utc;

use super::transport::{status_failure, transport_failure};
use super::{sigv4, S3Storage, MAX_DOC, TIMEOUT_ENV};
use crate::{BlobError, Result};

/// A failed request, before it is named for an operation.
#[derive(Debug)]
pub(super) enum Failure {
    Status {
        status: u16,
        code: String,
        message: String,
        region: String,
        content_range: Option<String>,
    },
    Tls(String),
    Unreachable(String),
    Timeout(String),
    Dns(String),
    Other(String),
}

/// One request to send.
pub(super) struct Req<'a> {
    pub(super) method: &'static str,
    pub(super) key: Option<&'a str>,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<&'a [u8]>,
}

impl<'a> Req<'a> {
    pub(super) fn new(method: &'static str, key: Option<&'a str>) -> Self {
        Req {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub(super) fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    pub(super) fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }
}

/// The `x-amz-content-sha256` of a request. A body sent over a connection that protects it
/// (see [`S3Storage::body_protected_by_tls`]) goes as `UNSIGNED-PAYLOAD`, as the AWS SDKs,
/// OpenDAL and minio-go send it over TLS: hashing every uploaded pack cost a SHA-256 pass over
/// all the data written. Otherwise the body's SHA-256 is signed, so that nothing on the way can
/// change it.
pub(super) fn payload_hash(body: Option<&[u8]>, protected: bool) -> String {
    match body {
        None => sigv4::EMPTY_SHA256.to_string(),
        Some(_) if protected => sigv4::UNSIGNED_PAYLOAD.to_string(),
        Some(b) => sigv4::sha256_hex(b),
    }
}

impl S3Storage {
    pub(super) fn execute(&self, req: &Req) -> std::result::Result<ureq::Response, Failure> {
        let mut retried = false;
        loop {
            let region = self.current_region();
            match self.execute_once(req, &region) {
                // The bucket lives elsewhere: sign for its region and try once more.
                Err(Failure::Status { region: r, .. })
                    if !retried && !r.is_empty() && r != region =>
                {
                    if let Ok(mut w) = self.region.write() {
                        *w = r;
                    }
                    retried = true;
                }
                other => return other,
            }
        }
    }

    fn execute_once(
        &self,
        req: &Req,
        region: &str,
    ) -> std::result::Result<ureq::Response, Failure> {
        let (url, headers) = self.signed(req, region);
        let mut r = self.agent.request(req.method, &url);
        for (k, v) in &headers {
            r = r.set(k, v);
        }
        let res = match req.body {
            Some(b) => r.send_bytes(b),
            None => r.call(),
        };
        match res {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp),
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => Err(status_failure(resp)),
            Err(ureq::Error::Transport(t)) => Err(transport_failure(&t)),
        }
    }

    /// The URL and headers (with `authorization`) of `req` signed for `region`.
    pub(super) fn signed(&self, req: &Req, region: &str) -> (String, Vec<(String, String)>) {
        let (host, path) = self.location(req.key);
        let amz_date = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let payload_hash = payload_hash(req.body, self.body_protected_by_tls());
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
        ];
        if !self.session_token.is_empty() {
            headers.push((
                "x-amz-security-token".to_string(),
                self.session_token.clone(),
            ));
        }
        headers.extend(req.headers.iter().cloned());
        let auth = sigv4::authorization(
            &self.access_key,
            &self.secret_key,
            &sigv4::Request {
                method: req.method,
                canonical_uri: &path,
                query: &req.query,
                headers: &headers,
                payload_hash: &payload_hash,
                amz_date: &amz_date,
                region,
            },
        );
        headers.push(("authorization".to_string(), auth));
        let mut url = format!("{}://{host}{path}", self.scheme);
        if !req.query.is_empty() {
            url.push('?');
            url.push_str(&sigv4::canonical_query(&req.query));
        }
        (url, headers)
    }

    /// Whether the connection itself keeps a body from being changed on the way: TLS with
    /// the server's certificate checked (not plain HTTP, not `--disable-tls-verification`).
    fn body_protected_by_tls(&self) -> bool {
        self.scheme == "https" && !self.opts.do_not_verify_tls
    }

    /// Names a failure of `op` on blob `id` as a [`BlobError`].
    pub(super) fn error(&self, f: Failure, op: &str, id: &str) -> BlobError {
        let what = if id.is_empty() {
            format!("s3://{}/{}", self.opts.bucket, self.opts.prefix)
        } else {
            id.to_string()
        };
        match f {
            Failure::Status {
                status,
                code,
                message,
                region,
                ..
            } => {
                let detail = if message.is_empty() {
                    format!("HTTP {status} {code}")
                } else {
                    format!("HTTP {status} {code}: {message}")
                };
                match (status, code.as_str()) {
                    (_, "NoSuchBucket") => BlobError::Other(format!(
                        "S3 bucket {:?} does not exist at {}",
                        self.opts.bucket,
                        self.base_url()
                    )),
                    (404, "NoSuchKey" | "") => BlobError::NotFound(id.to_string()),
                    (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "NotSignedUp") => {
                        BlobError::Permission(format!(
                            "S3 rejected the credentials ({code}): check --access-key and --secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                        ))
                    }
                    (_, "RequestTimeTooSkewed") => BlobError::Other(format!(
                        "S3 refused the request because this machine's clock is off ({message}): fix the system time"
                    )),
                    (_, "ExpiredToken" | "InvalidToken") => BlobError::Permission(format!(
                        "S3 rejected the session token ({code}): renew --session-token (AWS_SESSION_TOKEN)"
                    )),
                    (301 | 307 | 400, _) if !region.is_empty() && region != self.current_region() => BlobError::Other(format!(
                        "S3 bucket {:?} is in region {region}: use --region {region}",
                        self.opts.bucket
                    )),
                    (403, _) => BlobError::Permission(format!("S3 denied {op} of {what}: {detail}")),
                    (412, _) => BlobError::Other(format!("blob {id} already exists")),
                    (429 | 500..=599, _)
                    | (_, "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable") => {
                        BlobError::Transient(format!("S3 {op} of {what}: {detail}"))
                    }
                    _ => BlobError::Other(format!("S3 {op} of {what} failed: {detail}")),
                }
            }
            Failure::Tls(m) => BlobError::Other(format!(
                "TLS connection to {} failed ({m}): for a private CA use --root-ca-pem-path, to skip certificate checks --disable-tls-verification, for a plain-HTTP endpoint --disable-tls",
                self.endpoint
            )),
            Failure::Unreachable(m) => BlobError::Transient(format!(
                "cannot reach S3 endpoint {} ({op} of {what}): {m}",
                self.base_url()
            )),
            Failure::Timeout(m) => BlobError::Transient(format!(
                "S3 endpoint {} did not answer in time ({op} of {what}; limits {:?} to connect, {:?} per read, {TIMEOUT_ENV} changes them): {m}",
                self.base_url(),
                self.timeouts.connect,
                self.timeouts.io,
            )),
            Failure::Dns(m) => BlobError::Other(format!(
                "cannot resolve S3 endpoint {}: {m}",
                self.endpoint
            )),
            Failure::Other(m) => BlobError::Other(format!("S3 {op} of {what}: {m}")),
        }
    }

    /// Reads a small XML answer.
    pub(super) fn read_doc(&self, resp: ureq::Response, op: &str, id: &str) -> Result<String> {
        let mut body = String::new();
        resp.into_reader()
            .take(MAX_DOC)
            .read_to_string(&mut body)
            .map_err(|e| self.read_failure(op, id, e))?;
        Ok(body)
    }

    pub(super) fn read_failure(&self, op: &str, id: &str, e: std::io::Error) -> BlobError {
        BlobError::Transient(format!(
            "S3 {op} of {id}: connection to {} broke: {e}",
            self.base_url()
        ))
    }
}
