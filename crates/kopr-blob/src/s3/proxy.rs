//! The HTTP(S) proxy from the environment, with the rules of Go's `net/http` (which Kopia
//! uses): `HTTPS_PROXY` for https, `HTTP_PROXY` for http (either case), nothing for
//! `localhost`, loopback addresses or hosts that `NO_PROXY` names (host, `.domain`, domain and
//! its subdomains, IP, CIDR, optional `:port`, or `*`).

use std::net::IpAddr;

/// The proxy URL for a request to `host:port` over `scheme`, read through `env`.
pub fn from_env(
    scheme: &str,
    host: &str,
    port: u16,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let get = |name: &str| {
        env(name)
            .or_else(|| env(&name.to_ascii_lowercase()))
            .filter(|v| !v.trim().is_empty())
    };
    let proxy = match scheme {
        "https" => get("HTTPS_PROXY"),
        _ => get("HTTP_PROXY"),
    }?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return None;
    }
    let no_proxy = get("NO_PROXY").unwrap_or_default();
    if no_proxy.split(',').any(|e| excluded(e.trim(), &host, port)) {
        return None;
    }
    Some(proxy)
}

fn excluded(entry: &str, host: &str, port: u16) -> bool {
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    let entry = entry.to_ascii_lowercase();
    if let Some((net, bits)) = entry.split_once('/') {
        let (Ok(net), Ok(bits), Ok(ip)) = (
            net.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) else {
            return false;
        };
        return in_cidr(ip, net, bits);
    }
    // An optional port, except in a bare IPv6 address.
    let (name, entry_port) = match entry.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
        _ => (entry.as_str(), None),
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let (Ok(a), Ok(b)) = (name.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return a == b;
    }
    if let Some(domain) = name.strip_prefix('.') {
        return host.ends_with(&format!(".{domain}"));
    }
    host == name || host.ends_with(&format!(".{name}"))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn follows_gos_rules() {
        let e = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            (
                "no_proxy",
                ".svc,cluster.local,10.0.0.0/16,minio:9000,192.168.1.5,fd00::/8",
            ),
        ];
        let p = |scheme: &str, host: &str, port: u16| from_env(scheme, host, port, env(&e));
        assert_eq!(
            p("https", "s3.amazonaws.com", 443).as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(p("http", "s3.amazonaws.com", 80), None, "no HTTP_PROXY");
        assert_eq!(p("https", "localhost", 9000), None);
        assert_eq!(p("https", "127.0.0.1", 9000), None);
        assert_eq!(p("https", "[::1]", 9000), None);
        assert_eq!(p("https", "minio.ns.svc", 9000), None);
        assert!(p("https", "svc", 9000).is_some(), ".svc is subdomains only");
        assert_eq!(p("https", "cluster.local", 443), None);
        assert_eq!(p("https", "s3.ns.cluster.local", 443), None);
        assert_eq!(p("https", "10.0.200.1", 443), None);
        assert!(p("https", "10.1.0.1", 443).is_some());
        assert_eq!(p("https", "minio", 9000), None);
        assert!(p("https", "minio", 9001).is_some(), "port must match");
        assert_eq!(p("https", "192.168.1.5", 443), None);
        assert_eq!(p("https", "[fd00::5]", 443), None);
        let all = [("HTTP_PROXY", "http://p:1"), ("NO_PROXY", "*")];
        assert_eq!(from_env("http", "x", 80, env(&all)), None);
        let lower = [("http_proxy", "http://p:1")];
        assert_eq!(
            from_env("http", "x", 80, env(&lower)).as_deref(),
            Some("http://p:1")
        );
    }
}
