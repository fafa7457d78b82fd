//! The WebDAV backend against `rclone serve webdav` on loopback: the conformance suite,
//! Kopia's sharded layout (the served directory opens as a filesystem repository), and
//! one-line errors for a wrong password and an unreachable endpoint.

use super::*;
use crate::filesystem::FilesystemStorage;
use kopr_testkit::servers::{Server, WEBDAV_PASSWORD, WEBDAV_USER};

fn opts(url: &str) -> WebDavOptions {
    WebDavOptions {
        url: url.into(),
        username: WEBDAV_USER.into(),
        password: WEBDAV_PASSWORD.into(),
        ..Default::default()
    }
}

#[test]
fn conformance_on_rclone_webdav() {
    let Some(srv) = Server::webdav() else { return };
    let st = WebDavStorage::open(opts(&format!("{}/repo", srv.url())), true).unwrap();
    crate::conformance::run(&st);
}

#[test]
fn layout_is_the_filesystem_backends() {
    let Some(srv) = Server::webdav() else { return };
    let st = WebDavStorage::open(opts(&format!("{}/r", srv.url())), true).unwrap();
    let id = "p0123456789abcdef0123456789abcdef-s1";
    st.put_blob(id, b"data", &PutOptions::default()).unwrap();
    st.put_blob("kopia.repository", b"{}", &PutOptions::default())
        .unwrap();
    let dir = srv.data().join("r");
    assert!(dir
        .join("p/012/3456789abcdef0123456789abcdef-s1.f")
        .is_file());
    assert!(dir.join("kopia.repository.f").is_file());
    let shards: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".shards")).unwrap()).unwrap();
    assert_eq!(shards["default"], serde_json::json!([1, 3]));
    // no temporary files left behind
    let fs = FilesystemStorage::open(&dir).unwrap();
    assert_eq!(fs.get_blob(id, 0, None).unwrap(), b"data");
    let ids: Vec<String> = fs.list_all("").unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec!["kopia.repository".to_string(), id.to_string()]);
    // and what the filesystem backend writes, WebDAV reads
    fs.put_blob(
        "q00112233445566778899aabbccddeeff",
        b"q",
        &PutOptions::default(),
    )
    .unwrap();
    let listed: Vec<String> = st
        .list_all("q")
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        listed,
        vec!["q00112233445566778899aabbccddeeff".to_string()]
    );
    // an old repository without .shards is read with {3,3}
    let old = srv.data().join("old/abc/def");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("0123456789abcdef0123.f"), b"o").unwrap();
    let st = WebDavStorage::open(opts(&format!("{}/old", srv.url())), false).unwrap();
    assert_eq!(
        st.get_blob("abcdef0123456789abcdef0123", 0, None).unwrap(),
        b"o"
    );
}

#[test]
fn errors_name_the_fix() {
    let Some(srv) = Server::webdav() else { return };
    let bad = WebDavOptions {
        password: "wrong".into(),
        ..opts(&srv.url())
    };
    let e = WebDavStorage::open(bad, false).unwrap_err().to_string();
    assert!(
        e.contains("rejected the credentials") && e.contains("--webdav-password"),
        "{e}"
    );
    let e = WebDavStorage::open(opts("ftp://x/"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid WebDAV --url"), "{e}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = WebDavStorage::open(opts(&format!("http://127.0.0.1:{port}/r")), false).unwrap_err();
    assert!(
        e.to_string().contains("cannot reach WebDAV endpoint"),
        "{e}"
    );
}

#[test]
fn propfind_answers_with_any_namespace_prefix() {
    let doc = r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/r/p/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop></d:propstat></d:response><d:response><d:href>http://h/r/p/a%20b.f</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>12</d:getcontentlength><d:getlastmodified>Mon, 30 Nov 2026 05:00:00 GMT</d:getlastmodified></d:prop></d:propstat></d:response><d:response><d:href>/r/p/012/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop></d:propstat></d:response></d:multistatus>"#;
    let e = parse_propfind(doc, "/r/p/").unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].name.as_str(), e[0].dir, e[0].length),
        ("a b.f", false, 12)
    );
    assert!(e[0].modified.is_some());
    assert_eq!((e[1].name.as_str(), e[1].dir), ("012", true));
    assert!(parse_propfind("<html>", "/").is_err());
}

/// WebDAV over https with a self-signed certificate (`rclone serve webdav --cert`): trusted by
/// its SHA-256 (Kopia's `trustedServerCertificateFingerprint`), refused with the public roots
/// or another fingerprint, each in one line.
#[test]
fn https_with_a_trusted_certificate_fingerprint() {
    let Some(srv) = Server::webdav_tls() else {
        return;
    };
    let url = format!("{}/tls", srv.url());
    let pinned = WebDavOptions {
        trusted_server_certificate_fingerprint: srv.cert_fingerprint(),
        ..opts(&url)
    };
    let st = WebDavStorage::open(pinned, true).unwrap();
    crate::conformance::run(&st);
    let e = WebDavStorage::open(opts(&url), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS") && !e.contains('\n'), "{e}");
    let other = WebDavOptions {
        trusted_server_certificate_fingerprint: "00".repeat(32),
        ..opts(&url)
    };
    let e = WebDavStorage::open(other, false).unwrap_err().to_string();
    assert!(
        e.contains("is not the trusted one") && e.contains(&srv.cert_fingerprint()),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}
