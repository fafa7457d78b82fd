//! The HTTP side of S3 requests: the agent (TLS, proxy, time limits) and how failed
//! requests are classified.

use super::*;

/// `host[:port]` (or `[v6]:port`) → host and port (`default` when absent).
pub(super) fn split_host_port(endpoint: &str, default: u16) -> (String, u16) {
    if let Some(rest) = endpoint.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h.to_string(), port.unwrap_or(default));
        }
    }
    match endpoint.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(default)),
        _ => (endpoint.to_string(), default),
    }
}

pub(super) fn build_agent(
    opts: &S3Options,
    proxy: Option<&str>,
    t: Timeouts,
) -> Result<ureq::Agent> {
    let tls = tls::client_config(opts.root_ca.as_deref(), !opts.do_not_verify_tls)?;
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(t.connect)
        .timeout_read(t.io)
        .timeout_write(t.io)
        .redirects(0)
        .max_idle_connections_per_host(32)
        .user_agent(concat!("kopr/", env!("CARGO_PKG_VERSION")))
        .tls_config(Arc::new(tls));
    if let Some(p) = proxy {
        let proxy = ureq::Proxy::new(p).map_err(|e| {
            BlobError::Other(format!("invalid proxy {p:?} (HTTPS_PROXY/HTTP_PROXY): {e}"))
        })?;
        b = b.proxy(proxy);
    }
    Ok(b.build())
}

pub(super) fn status_failure(resp: ureq::Response) -> Failure {
    let status = resp.status();
    let region = resp
        .header("x-amz-bucket-region")
        .unwrap_or_default()
        .to_string();
    let content_range = resp.header("content-range").map(str::to_string);
    let mut body = String::new();
    // A broken body only loses detail; the status still tells what happened.
    let _ = resp.into_reader().take(64 << 10).read_to_string(&mut body);
    let doc = xml::parse_error(&body);
    Failure::Status {
        status,
        code: doc.code,
        message: doc.message,
        region: if doc.region.is_empty() {
            region
        } else {
            doc.region
        },
        content_range,
    }
}

pub(super) fn transport_failure(t: &ureq::Transport) -> Failure {
    let mut detail = t.message().unwrap_or_default().to_string();
    let mut src = std::error::Error::source(t);
    while let Some(s) = src {
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
    if is_timeout(t) {
        return Failure::Timeout(detail);
    }
    match t.kind() {
        ureq::ErrorKind::Dns => Failure::Dns(detail),
        ureq::ErrorKind::ConnectionFailed if detail.contains("tls") => Failure::Tls(detail),
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io => Failure::Unreachable(detail),
        _ => Failure::Other(detail),
    }
}

/// Whether a transport failure is a connect, read or write timeout.
fn is_timeout(t: &ureq::Transport) -> bool {
    let mut src = std::error::Error::source(t);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        src = s.source();
    }
    false
}
