//! What the HTTP backends other than S3 (Azure, WebDAV) share: a blocking ureq agent with
//! bounded time limits, and the naming of transport failures (an unreachable endpoint or one
//! that never answers is [`BlobError::Transient`], so the retrying layer retries it, and the
//! message names the endpoint and the limit), and paged listings with an opaque continuation.

use std::io::Read;
use std::sync::Arc;

use crate::s3::{tls, Timeouts};
use crate::{checked_range, BlobError, BlobMetadata, Result};

/// Largest error document or listing page read into memory.
pub(crate) const MAX_DOC: u64 = 16 << 20;

/// An agent with `t`'s time limits, no redirects, certificate checks unless `verify` is false.
pub(crate) fn agent(t: Timeouts, verify: bool) -> Result<ureq::Agent> {
    agent_with(t, tls::client_config(None, verify)?)
}

/// An agent with these time limits and TLS settings.
pub(crate) fn agent_with(t: Timeouts, tls: rustls::ClientConfig) -> Result<ureq::Agent> {
    Ok(ureq::AgentBuilder::new()
        .timeout_connect(t.connect)
        .timeout_read(t.io)
        .timeout_write(t.io)
        .redirects(0)
        .max_idle_connections_per_host(32)
        .user_agent(concat!("kopr/", env!("CARGO_PKG_VERSION")))
        .tls_config(Arc::new(tls))
        .build())
}

/// Names a transport failure of `what` (e.g. `Azure put of pabc`) against `endpoint`.
pub(crate) fn transport_error(
    service: &str,
    endpoint: &str,
    what: &str,
    t: &ureq::Transport,
    limits: Timeouts,
) -> BlobError {
    let mut detail = t.message().unwrap_or_default().to_string();
    let mut src = std::error::Error::source(t);
    let mut timeout = false;
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timeout |= matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        let m = s.to_string();
        if !detail.contains(&m) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&m);
        }
        src = s.source();
    }
    if detail.is_empty() {
        detail = t.kind().to_string();
    }
    if timeout {
        return BlobError::Transient(format!(
            "{service} endpoint {endpoint} did not answer in time ({what}; limits {:?} to connect, {:?} per read, {} changes them): {detail}",
            limits.connect,
            limits.io,
            crate::s3::TIMEOUT_ENV,
        ));
    }
    match t.kind() {
        ureq::ErrorKind::Dns => BlobError::Other(format!(
            "cannot resolve {service} endpoint {endpoint}: {detail}"
        )),
        ureq::ErrorKind::ConnectionFailed if detail.contains("tls") => BlobError::Other(format!(
            "TLS connection to {service} endpoint {endpoint} failed ({what}): {detail}"
        )),
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io => BlobError::Transient(format!(
            "cannot reach {service} endpoint {endpoint} ({what}): {detail}"
        )),
        _ => BlobError::Other(format!("{service} {what}: {detail}")),
    }
}

/// Reads a small text answer; a broken connection is transient.
pub(crate) fn read_doc(resp: ureq::Response, service: &str, what: &str) -> Result<String> {
    let mut body = String::new();
    resp.into_reader()
        .take(MAX_DOC)
        .read_to_string(&mut body)
        .map_err(|e| BlobError::Transient(format!("{service} {what}: connection broke: {e}")))?;
    Ok(body)
}

/// Reads a body of `expected` bytes (when known), at most `limit`; short reads are transient.
pub(crate) fn read_body(
    resp: ureq::Response,
    limit: u64,
    service: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let content_length: Option<u64> = resp.header("content-length").and_then(|v| v.parse().ok());
    let limit = content_length.map_or(limit, |n| n.min(limit));
    let mut buf = Vec::with_capacity(limit.min(64 << 20) as usize);
    resp.into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| BlobError::Transient(format!("{service} {what}: connection broke: {e}")))?;
    if let Some(n) = content_length {
        if buf.len() as u64 != n {
            return Err(BlobError::Transient(format!(
                "{service} {what}: got {} of {n} bytes",
                buf.len()
            )));
        }
    }
    Ok(buf)
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode_path(s: &str) -> String {
    crate::s3::sigv4::uri_encode(s, true)
}

/// One page of a listing: blobs and the continuation token of the next page.
pub(crate) type Page = (Vec<BlobMetadata>, Option<String>);

/// Lists `prefix` under a storage prefix page by page: `page(token)` returns blobs named with
/// the storage prefix and the next continuation token. Blobs are passed to `cb` with the
/// storage prefix taken off; a server that repeats a token is an error, not a loop.
pub(crate) fn list_paged(
    service: &str,
    storage_prefix: &str,
    prefix: &str,
    page: &mut dyn FnMut(&str, Option<&str>) -> Result<Page>,
    cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
) -> Result<()> {
    let full = format!("{storage_prefix}{prefix}");
    let mut token: Option<String> = None;
    loop {
        let (blobs, next) = page(&full, token.as_deref())?;
        for mut b in blobs {
            match b.id.strip_prefix(storage_prefix) {
                Some(id) if !id.is_empty() && id.starts_with(prefix) => {
                    b.id = id.to_string();
                    cb(b)?;
                }
                _ => {}
            }
        }
        match next {
            Some(n) if token.as_deref() != Some(n.as_str()) => token = Some(n),
            Some(_) => {
                return Err(BlobError::Other(format!(
                    "{service} list of {full:?}: the server repeated its continuation token"
                )))
            }
            None => return Ok(()),
        }
    }
}

/// What a GET of a blob answered: its status and body, or `None` for 416 (range not
/// satisfiable).
pub(crate) type Fetched = Option<(u16, Vec<u8>)>;

/// Reads `[offset, offset + length)` of blob `id` the way every HTTP backend must: a range
/// that starts at the end or is empty is checked against the blob's length (`size`, a HEAD)
/// instead of sent (servers refuse it); `get(range)` sends the GET with the `bytes=` range, if
/// any; a server that ignores the range (200 with the whole blob) is sliced; 416 and a short
/// body are [`BlobError::InvalidRange`] naming the blob's real length.
pub(crate) fn ranged_get(
    id: &str,
    offset: u64,
    length: Option<u64>,
    size: &dyn Fn() -> Result<u64>,
    get: &mut dyn FnMut(Option<String>) -> Result<Fetched>,
) -> Result<Vec<u8>> {
    let at_end = length == Some(0) || (length.is_none() && offset > 0);
    if at_end && checked_range(id, size()?, offset, length)?.is_empty() {
        return Ok(Vec::new());
    }
    let ranged = offset > 0 || length.is_some();
    let range = match length {
        Some(l) => {
            let last = offset.checked_add(l - 1).ok_or(BlobError::InvalidRange {
                id: id.to_string(),
                offset,
                length: l,
                actual: 0,
            })?;
            Some(format!("bytes={offset}-{last}"))
        }
        None if ranged => Some(format!("bytes={offset}-")),
        None => None,
    };
    let Some((status, buf)) = get(range)? else {
        checked_range(id, size()?, offset, length)?;
        return Ok(Vec::new());
    };
    if ranged && status == 200 {
        let r = checked_range(id, buf.len() as u64, offset, length)?;
        return Ok(buf[r].to_vec());
    }
    match length {
        Some(l) if buf.len() as u64 != l => Err(BlobError::InvalidRange {
            id: id.to_string(),
            offset,
            length: l,
            actual: size()?,
        }),
        _ => Ok(buf),
    }
}
