//! OpenSSH `known_hosts` lines, read as OpenSSH reads them: comma-separated host patterns
//! (`host`, `[host]:port` for ports other than 22, `*`/`?` wildcards, `!negation`, hashed
//! `|1|salt|hmac` entries), then the key type and its base64 blob. `@revoked` lines refuse a
//! key; `@cert-authority` lines (host certificates) are skipped. The verdict for a server's key is
//! [`Verdict::Known`], [`Verdict::Unknown`] (no line for the host) or [`Verdict::Changed`]
//! (lines for the host, none with this key): kopr connects only on `Known`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use russh::keys::ssh_key::{Algorithm, PublicKey};

/// What the known hosts say about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds this key.
    Known,
    /// No line names this host.
    Unknown,
    /// Lines name this host with other keys (1-based line numbers), or revoke this key.
    Changed {
        /// The lines for the host.
        lines: Vec<usize>,
        /// Whether the key is listed as `@revoked`.
        revoked: bool,
    },
}

/// One usable line: its number, host patterns, marker and key.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    patterns: String,
    revoked: bool,
    key: PublicKey,
}

/// Parsed known hosts.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads `known_hosts` text; lines that cannot be parsed are skipped, as OpenSSH does.
    pub fn parse(text: &str) -> KnownHosts {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let Some(mut first) = fields.next() else {
                continue;
            };
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    _ => continue, // @cert-authority: certificates are not used
                }
                let Some(f) = fields.next() else {
                    continue;
                };
                first = f;
            }
            let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = PublicKey::from_openssh(&format!("{kind} {blob}")) else {
                continue;
            };
            entries.push(Entry {
                line: i + 1,
                patterns: first.to_string(),
                revoked,
                key,
            });
        }
        KnownHosts { entries }
    }

    /// The name OpenSSH records `host:port` under: `host` for port 22, `[host]:port` otherwise.
    pub fn host_name(host: &str, port: u16) -> String {
        if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        }
    }

    /// The key algorithms recorded for the host, in file order (to prefer them in the key
    /// exchange, as OpenSSH does).
    pub fn algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = Self::host_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in &self.entries {
            if !e.revoked && matches_host(&e.patterns, &name) && !out.contains(&e.key.algorithm()) {
                out.push(e.key.algorithm());
            }
        }
        out
    }

    /// The verdict for `key` presented by `host:port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = Self::host_name(host, port);
        let mut lines = Vec::new();
        let mut known = false;
        for e in &self.entries {
            if e.revoked {
                if e.key.key_data() == key.key_data() {
                    return Verdict::Changed {
                        lines: vec![e.line],
                        revoked: true,
                    };
                }
                continue;
            }
            if !matches_host(&e.patterns, &name) {
                continue;
            }
            if e.key.key_data() == key.key_data() {
                known = true;
            } else {
                lines.push(e.line);
            }
        }
        if known {
            Verdict::Known
        } else if lines.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed {
                lines,
                revoked: false,
            }
        }
    }
}

/// Whether a comma-separated pattern list names `name`: some positive pattern matches and no
/// negated one does.
fn matches_host(patterns: &str, name: &str) -> bool {
    let mut hit = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if p.starts_with("|1|") {
            hit |= hashed_matches(p, name);
        } else {
            hit |= glob(p, name);
        }
    }
    hit
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_matches(p: &str, name: &str) -> bool {
    let mut parts = p.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// OpenSSH's host pattern match: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILyF4+6sbdr9JzVJL6BiBXimf1NtuvpQ3uwVvNmsFitG";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICncT0iHOIQG+QtAvOJPswinPE2KFVMGjI1mkNJlM2w7";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn port_22_and_other_ports_are_named_as_openssh_does() {
        let kh = KnownHosts::parse(&format!("example.org {ED}\n[127.0.0.1]:2222 {ED2} c\n"));
        assert_eq!(kh.check("example.org", 22, &key(ED)), Verdict::Known);
        assert_eq!(kh.check("127.0.0.1", 2222, &key(ED2)), Verdict::Known);
        // the same host on another port is another entry
        assert_eq!(kh.check("example.org", 2200, &key(ED)), Verdict::Unknown);
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(ED)),
            Verdict::Changed {
                lines: vec![2],
                revoked: false
            }
        );
    }

    #[test]
    fn patterns_negation_comments_and_markers() {
        let text = format!(
            "# comment\n\n*.example.org,!bad.example.org {ED}\n@cert-authority * {ED2}\n@revoked * {ED2}\nnot a key line\n"
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("a.example.org", 22, &key(ED)), Verdict::Known);
        assert_eq!(kh.check("bad.example.org", 22, &key(ED)), Verdict::Unknown);
        assert_eq!(kh.check("other.net", 22, &key(ED)), Verdict::Unknown);
        assert_eq!(
            kh.check("a.example.org", 22, &key(ED2)),
            Verdict::Changed {
                lines: vec![5],
                revoked: true
            }
        );
        assert_eq!(kh.algorithms("a.example.org", 22), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn hashed_host_names() {
        // `ssh-keygen -H` form of "[127.0.0.1]:2222": HMAC-SHA1 keyed with the salt
        let salt = [7u8; 20];
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&k, b"[127.0.0.1]:2222");
        let line = format!(
            "|1|{}|{} {ED}",
            STANDARD.encode(salt),
            STANDARD.encode(tag.as_ref())
        );
        let kh = KnownHosts::parse(&line);
        assert_eq!(kh.check("127.0.0.1", 2222, &key(ED)), Verdict::Known);
        assert_eq!(kh.check("127.0.0.1", 2223, &key(ED)), Verdict::Unknown);
    }

    #[test]
    fn glob_matches_like_openssh() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.?.1", "10.0.5.1"));
        assert!(!glob("10.0.?.1", "10.0.55.1"));
        assert!(glob("*.Example.ORG", "x.example.org"));
        assert!(!glob("a*b", "ac"));
    }
}
