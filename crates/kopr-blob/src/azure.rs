//! Azure Blob Storage, laid out as Kopia's `azure` backend: blob `id` is the block blob
//! `prefix + id` of the container, no sharding. Blocking HTTP (ureq + rustls) with the Blob
//! REST API, signed with the account key (SharedKey: HMAC-SHA256 over the canonicalized
//! request) or authorized by a SAS token appended to every URL. Network failures, throttling
//! and 5xx answers are [`BlobError::Transient`] (retried by
//! [`crate::retrying::RetryingStorage`]); everything else is a one-line error naming the fix.
//!
//! The account's endpoint is `https://ACCOUNT.blob.core.windows.net/`, or
//! `https://ACCOUNT.DOMAIN/` with `storageDomain` (`doNotUseTLS` for `http`). For the Azurite
//! emulator, whose URLs are path-style (`http://127.0.0.1:N/ACCOUNT/container/blob`), the
//! environment variable [`ENDPOINT_ENV`] overrides the account endpoint (test-only; it is not
//! stored in the repository's config).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::http;
use crate::s3::{xml, Timeouts};
use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// Overrides the account endpoint URL (`http://127.0.0.1:10000/devstoreaccount1`): tests with
/// the Azurite emulator only.
pub const ENDPOINT_ENV: &str = "KOPR_AZURE_ENDPOINT";
/// Azure's public cloud storage domain, the default of `storageDomain`.
pub const DEFAULT_DOMAIN: &str = "blob.core.windows.net";
/// The REST API version requests ask for.
const API_VERSION: &str = "2021-08-06";
/// Blobs listed per page (Azure's maximum).
const LIST_PAGE: usize = 5000;

/// Where and how to reach the container; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureOptions {
    /// Container name.
    pub container: String,
    /// Prepended to every blob id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Storage account name.
    #[serde(
        rename = "storageAccount",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub storage_account: String,
    /// Account key (base64), for SharedKey signing.
    #[serde(
        rename = "storageKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub storage_key: String,
    /// A SAS token instead of the key.
    #[serde(rename = "sasToken", default, skip_serializing_if = "String::is_empty")]
    pub sas_token: String,
    /// Storage domain; [`DEFAULT_DOMAIN`] when empty.
    #[serde(
        rename = "storageDomain",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub storage_domain: String,
    /// Plain HTTP.
    #[serde(rename = "doNotUseTLS", default, skip_serializing_if = "is_false")]
    pub do_not_use_tls: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl fmt::Debug for AzureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOptions")
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("storage_account", &self.storage_account)
            .field("storage_domain", &self.storage_domain)
            .finish_non_exhaustive()
    }
}

/// How requests are authorized.
enum Auth {
    Key(Vec<u8>),
    Sas(String),
}

/// Blobs as block blobs of an Azure container.
pub struct AzureStorage {
    opts: AzureOptions,
    auth: Auth,
    /// `scheme://host[:port][/path]` of the account, without a trailing slash.
    endpoint: String,
    /// The path part of `endpoint` (empty for `ACCOUNT.DOMAIN`, `/ACCOUNT` on Azurite).
    base_path: String,
    agent: ureq::Agent,
    timeouts: Timeouts,
}

impl fmt::Debug for AzureStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureStorage")
            .field("opts", &self.opts)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A failed request: HTTP status and Azure's error code, or a named transport error.
enum Failure {
    Status {
        status: u16,
        code: String,
        message: String,
    },
    Error(BlobError),
}

impl AzureStorage {
    /// Builds the client without any request; see [`AzureStorage::connect`].
    pub fn new(opts: AzureOptions) -> Result<AzureStorage> {
        let endpoint = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty());
        AzureStorage::with_endpoint(opts, endpoint.as_deref())
    }

    /// As [`AzureStorage::new`], with the account endpoint URL given (tests).
    pub fn with_endpoint(opts: AzureOptions, endpoint: Option<&str>) -> Result<AzureStorage> {
        if opts.container.is_empty() {
            return Err(BlobError::Other(
                "no Azure container given (--container)".into(),
            ));
        }
        if opts.storage_account.is_empty() {
            return Err(BlobError::Other(
                "no Azure storage account given (--storage-account or AZURE_STORAGE_ACCOUNT)"
                    .into(),
            ));
        }
        let auth = match (opts.storage_key.is_empty(), opts.sas_token.is_empty()) {
            (false, _) => Auth::Key(STANDARD.decode(opts.storage_key.trim()).map_err(|_| {
                BlobError::Other(
                    "invalid Azure storage key: not base64 (copy it from the account's access keys: --storage-key or AZURE_STORAGE_KEY)"
                        .into(),
                )
            })?),
            (true, false) => Auth::Sas(opts.sas_token.trim().trim_start_matches('?').to_string()),
            (true, true) => {
                return Err(BlobError::Other(
                    "no Azure credentials: use --storage-key (AZURE_STORAGE_KEY) or --sas-token (AZURE_STORAGE_SAS_TOKEN)"
                        .into(),
                ))
            }
        };
        let endpoint = match endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let domain = if opts.storage_domain.is_empty() {
                    DEFAULT_DOMAIN
                } else {
                    opts.storage_domain.trim_matches('/')
                };
                let scheme = if opts.do_not_use_tls { "http" } else { "https" };
                format!("{scheme}://{}.{domain}", opts.storage_account)
            }
        };
        let after_scheme = endpoint.split_once("://").map_or(&*endpoint, |(_, r)| r);
        let base_path = after_scheme
            .find('/')
            .map(|i| after_scheme[i..].to_string())
            .unwrap_or_default();
        let timeouts = Timeouts::from_env()?;
        Ok(AzureStorage {
            agent: http::agent(timeouts, true)?,
            timeouts,
            auth,
            endpoint,
            base_path,
            opts,
        })
    }

    /// Builds the client and checks that the container is reachable with these credentials.
    pub fn connect(opts: AzureOptions) -> Result<AzureStorage> {
        let st = AzureStorage::new(opts)?;
        st.probe()?;
        Ok(st)
    }

    /// Lists at most one blob: proves endpoint, credentials and container. Transient
    /// failures are retried briefly, then reported as permanent.
    pub fn probe(&self) -> Result<()> {
        let mut delay = std::time::Duration::from_millis(200);
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

    /// Creates the container (tests and first-time setups; Kopia never creates containers).
    pub fn create_container(&self) -> Result<()> {
        let q = [("restype", "container")];
        match self.execute("PUT", None, &q, &[], Some(&[])) {
            Ok(_) => Ok(()),
            Err(Failure::Status { status: 409, .. }) => Ok(()),
            Err(f) => Err(self.error(f, "create container", "")),
        }
    }

    /// Replaces the network time limits (by default [`Timeouts::from_env`]).
    pub fn with_timeouts(mut self, t: Timeouts) -> Result<AzureStorage> {
        self.agent = http::agent(t, true)?;
        self.timeouts = t;
        Ok(self)
    }

    /// The options.
    pub fn options(&self) -> &AzureOptions {
        &self.opts
    }

    fn blob_name(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(BlobError::Other("empty blob id".into()));
        }
        Ok(format!("{}{id}", self.opts.prefix))
    }

    /// Sends one request for the container (`blob` `None`) or one of its blobs.
    fn execute(
        &self,
        method: &str,
        blob: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let mut path = format!("/{}", http::encode_path(&self.opts.container));
        if let Some(b) = blob {
            path.push('/');
            path.push_str(&http::encode_path(b));
        }
        let mut url = format!("{}{path}", self.endpoint);
        let mut sep = '?';
        for (k, v) in query {
            url.push(sep);
            url.push_str(&format!(
                "{}={}",
                crate::s3::sigv4::uri_encode(k, false),
                crate::s3::sigv4::uri_encode(v, false)
            ));
            sep = '&';
        }
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let mut hs: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        hs.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        match &self.auth {
            Auth::Sas(token) => {
                url.push(sep);
                url.push_str(token);
            }
            Auth::Key(key) => {
                let len = body.map_or(0, <[u8]>::len);
                let resource = format!("/{}{}{path}", self.opts.storage_account, self.base_path);
                let sts = string_to_sign(method, len, &hs, &resource, query);
                let mut mac =
                    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(sts.as_bytes());
                let sig = STANDARD.encode(mac.finalize().into_bytes());
                hs.push((
                    "authorization".into(),
                    format!("SharedKey {}:{sig}", self.opts.storage_account),
                ));
            }
        }
        let mut r = self.agent.request(method, &url);
        for (k, v) in &hs {
            r = r.set(k, v);
        }
        let res = match body {
            Some(b) => r.send_bytes(b),
            None => r.call(),
        };
        match res {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp),
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => Err(status_failure(resp)),
            Err(ureq::Error::Transport(t)) => {
                let what = format!("{method} {}", blob.unwrap_or(&self.opts.container));
                Err(Failure::Error(http::transport_error(
                    "Azure",
                    &self.endpoint,
                    &what,
                    &t,
                    self.timeouts,
                )))
            }
        }
    }

    /// Names a failure of `op` on blob `id` (the container when empty).
    fn error(&self, f: Failure, op: &str, id: &str) -> BlobError {
        let (status, code, message) = match f {
            Failure::Error(e) => return e,
            Failure::Status {
                status,
                code,
                message,
            } => (status, code, message),
        };
        let what = if id.is_empty() {
            format!("azure://{}/{}", self.opts.container, self.opts.prefix)
        } else {
            id.to_string()
        };
        let detail = if message.is_empty() {
            format!("HTTP {status} {code}")
        } else {
            format!("HTTP {status} {code}: {}", first_line(&message))
        };
        match (status, code.as_str()) {
            (_, "ContainerNotFound") => BlobError::Other(format!(
                "Azure container {:?} does not exist in storage account {:?} at {}: create it or fix --container",
                self.opts.container, self.opts.storage_account, self.endpoint
            )),
            (404, "BlobNotFound" | "") => BlobError::NotFound(id.to_string()),
            (403, "AuthenticationFailed" | "AuthorizationFailure" | "")
            | (_, "InvalidAuthenticationInfo" | "AccountIsDisabled") => {
                BlobError::Permission(format!(
                    "Azure rejected the credentials of storage account {:?} ({code}): check --storage-key (AZURE_STORAGE_KEY) or --sas-token (AZURE_STORAGE_SAS_TOKEN)",
                    self.opts.storage_account
                ))
            }
            (403, _) => BlobError::Permission(format!("Azure denied {op} of {what}: {detail}")),
            (409 | 412, "BlobAlreadyExists" | "ConditionNotMet" | "") => {
                BlobError::Other(format!("blob {id} already exists"))
            }
            (429 | 500..=599, _) | (_, "ServerBusy" | "OperationTimedOut" | "InternalError") => {
                BlobError::Transient(format!("Azure {op} of {what}: {detail}"))
            }
            _ => BlobError::Other(format!("Azure {op} of {what} failed: {detail}")),
        }
    }

    /// One page of List Blobs: blobs and the next marker.
    fn list_page(
        &self,
        full_prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<BlobMetadata>, Option<String>)> {
        let max = max.to_string();
        let mut q = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("maxresults", max.as_str()),
        ];
        if !full_prefix.is_empty() {
            q.push(("prefix", full_prefix));
        }
        if let Some(m) = marker {
            q.push(("marker", m));
        }
        let resp = self
            .execute("GET", None, &q, &[], None)
            .map_err(|f| self.error(f, "list", ""))?;
        let body = http::read_doc(resp, "Azure", "list")?;
        parse_list(&body)
            .map_err(|e| BlobError::Other(format!("Azure list of {full_prefix:?}: {e}")))
    }
}

/// SharedKey's string to sign (Blob service, versions since 2015-02-21).
fn string_to_sign(
    method: &str,
    content_length: usize,
    headers: &[(String, String)],
    resource: &str,
    query: &[(&str, &str)],
) -> String {
    let h = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let len = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut s = format!(
        "{method}\n{}\n{}\n{len}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        h("content-encoding"),
        h("content-language"),
        h("content-md5"),
        h("content-type"),
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    );
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    ms.sort();
    for (k, v) in ms {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(resource);
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    q.sort();
    for (k, v) in q {
        s.push_str(&format!("\n{k}:{v}"));
    }
    s
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

fn status_failure(resp: ureq::Response) -> Failure {
    let status = resp.status();
    let header_code = resp
        .header("x-ms-error-code")
        .unwrap_or_default()
        .to_string();
    let body = http::read_doc(resp, "Azure", "error").unwrap_or_default();
    let code = xml::text(&body, "Code").unwrap_or(header_code);
    let message = xml::text(&body, "Message").unwrap_or_default();
    Failure::Status {
        status,
        code,
        message,
    }
}

/// Parses a List Blobs answer into blob names (still with the prefix) and the next marker.
fn parse_list(doc: &str) -> std::result::Result<(Vec<BlobMetadata>, Option<String>), String> {
    if xml::elements(doc, "EnumerationResults").is_empty() {
        return Err("the answer is not an EnumerationResults document".into());
    }
    let mut out = Vec::new();
    for b in xml::elements(doc, "Blob") {
        let name = xml::text(b, "Name").ok_or("listing entry without Name")?;
        let length = xml::text(b, "Content-Length")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("listing entry {name} without a valid Content-Length"))?;
        let lm = xml::text(b, "Last-Modified").unwrap_or_default();
        let timestamp = DateTime::parse_from_rfc2822(&lm)
            .map_err(|e| format!("listing entry {name}: invalid Last-Modified {lm:?}: {e}"))?
            .with_timezone(&Utc);
        out.push(BlobMetadata {
            id: name,
            length,
            timestamp,
        });
    }
    let next = xml::text(doc, "NextMarker").filter(|m| !m.is_empty());
    Ok((out, next))
}

impl BlobStorage for AzureStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let name = self.blob_name(id)?;
        http::ranged_get(
            id,
            offset,
            length,
            &|| Ok(self.get_metadata(id)?.length),
            &mut |range| {
                let headers: Vec<(&str, String)> =
                    range.map(|r| ("x-ms-range", r)).into_iter().collect();
                match self.execute("GET", Some(&name), &[], &headers, None) {
                    Ok(resp) => {
                        let status = resp.status();
                        let limit = length.unwrap_or(u64::MAX);
                        let what = format!("get of {id}");
                        Ok(Some((
                            status,
                            http::read_body(resp, limit, "Azure", &what)?,
                        )))
                    }
                    Err(Failure::Status { status: 416, .. }) => Ok(None),
                    Err(f) => Err(self.error(f, "get", id)),
                }
            },
        )
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        let name = self.blob_name(id)?;
        let resp = self
            .execute("HEAD", Some(&name), &[], &[], None)
            .map_err(|f| self.error(f, "stat", id))?;
        let length = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BlobError::Other(format!("Azure stat of {id}: no Content-Length")))?;
        let timestamp = resp
            .header("last-modified")
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                BlobError::Other(format!("Azure stat of {id}: no valid Last-Modified"))
            })?;
        Ok(BlobMetadata {
            id: id.to_string(),
            length,
            timestamp,
        })
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if opts.retention_mode.is_some() {
            return Err(BlobError::Other(
                "Azure storage in kopr does not support --retention-mode (object lock)".into(),
            ));
        }
        let name = self.blob_name(id)?;
        let mut headers = vec![("x-ms-blob-type", "BlockBlob".to_string())];
        if opts.do_not_overwrite {
            headers.push(("if-none-match", "*".to_string()));
        }
        self.execute("PUT", Some(&name), &[], &headers, Some(data))
            .map(|_| ())
            .map_err(|f| self.error(f, "put", id))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let name = self.blob_name(id)?;
        match self.execute("DELETE", Some(&name), &[], &[], None) {
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
            "Azure",
            &self.opts.prefix,
            prefix,
            &mut |full, token| self.list_page(full, token, LIST_PAGE),
            cb,
        )
    }

    fn display_name(&self) -> String {
        format!("azure://{}/{}", self.opts.container, self.opts.prefix)
    }
}

#[cfg(test)]
mod tests;
