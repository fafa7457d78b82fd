//! Request bodies over TLS go unsigned (`UNSIGNED-PAYLOAD`); over plain HTTP, or TLS without
//! certificate checks, their SHA-256 is signed: the request builder, and uploads through a
//! recording relay to a real S3 server (s3s-fs) on loopback.

use kopr_testkit::relay::recording_relay;
use kopr_testkit::s3::{S3Server, TlsProxy, ACCESS_KEY, SECRET_KEY, TEST_CA_PEM};

use super::tests::opts;
use super::*;

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w == &needle)
        .count()
}

/// The `x-amz-content-sha256` header of a signed request.
fn content_sha256(st: &S3Storage, req: &Req) -> String {
    let (_, headers) = st.signed(req, "us-east-1");
    let auth = &headers.iter().find(|h| h.0 == "authorization").unwrap().1;
    assert!(auth.contains("x-amz-content-sha256"), "{auth}");
    headers
        .into_iter()
        .find(|h| h.0 == "x-amz-content-sha256")
        .unwrap()
        .1
}

#[test]
fn bodies_are_unsigned_over_checked_tls_and_signed_otherwise() {
    let base = S3Options {
        bucket: "b".into(),
        endpoint: "127.0.0.1:9".into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        ..S3Options::default()
    };
    let body = b"a pack".as_slice();
    let mut put = Req::new("PUT", Some("p1"));
    put.body = Some(body);
    let get = Req::new("GET", Some("p1"));

    let tls = S3Storage::new(base.clone()).unwrap();
    assert_eq!(content_sha256(&tls, &put), "UNSIGNED-PAYLOAD");
    assert_eq!(content_sha256(&tls, &get), sigv4::EMPTY_SHA256);

    let http = S3Storage::new(S3Options {
        do_not_use_tls: true,
        ..base.clone()
    })
    .unwrap();
    assert_eq!(content_sha256(&http, &put), sigv4::sha256_hex(body));
    assert_eq!(content_sha256(&http, &get), sigv4::EMPTY_SHA256);

    // TLS without certificate checks does not keep a body from being changed on the way.
    let unchecked = S3Storage::new(S3Options {
        do_not_verify_tls: true,
        ..base
    })
    .unwrap();
    assert_eq!(content_sha256(&unchecked, &put), sigv4::sha256_hex(body));
}

#[test]
fn uploads_over_tls_go_unsigned_and_the_server_takes_them() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("unsigned");
    let (relay, seen) = recording_relay(srv.port());
    let proxy = TlsProxy::start(relay);
    let body: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    let tls = S3Storage::connect(S3Options {
        endpoint: proxy.endpoint(),
        do_not_use_tls: false,
        root_ca: Some(TEST_CA_PEM.as_bytes().to_vec()),
        ..opts(&srv, "unsigned", "r/")
    })
    .unwrap()
    // Parts too: 3 MiB in parts of 5 MiB but a threshold of 1 MiB makes one part upload.
    .with_multipart(1 << 20, 0);
    tls.put_blob("p-single", &body[..1 << 20], &PutOptions::default())
        .unwrap();
    tls.put_blob("p-parts", &body, &PutOptions::default())
        .unwrap();
    assert_eq!(tls.get_blob("p-single", 0, None).unwrap(), &body[..1 << 20]);
    assert_eq!(tls.get_blob("p-parts", 0, None).unwrap(), body);
    {
        let wire = seen.lock().unwrap();
        // The single PUT, the part and the completion carry no payload hash.
        assert!(
            count(&wire, b"x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n") >= 3,
            "{}",
            String::from_utf8_lossy(&wire[..wire.len().min(2000)])
        );
        assert_eq!(
            count(&wire, sigv4::sha256_hex(&body[..1 << 20]).as_bytes()),
            0
        );
        assert_eq!(count(&wire, sigv4::sha256_hex(&body).as_bytes()), 0);
    }

    // Plain HTTP (through the same relay, no TLS): the body's SHA-256 is signed and sent.
    seen.lock().unwrap().clear();
    let http = S3Storage::connect(S3Options {
        endpoint: format!("127.0.0.1:{relay}"),
        ..opts(&srv, "unsigned", "r/")
    })
    .unwrap();
    http.put_blob("p-plain", &body[..1 << 20], &PutOptions::default())
        .unwrap();
    assert_eq!(http.get_blob("p-plain", 0, None).unwrap(), &body[..1 << 20]);
    let wire = seen.lock().unwrap();
    let header = format!(
        "x-amz-content-sha256: {}\r\n",
        sigv4::sha256_hex(&body[..1 << 20])
    );
    assert_eq!(count(&wire, header.as_bytes()), 1);
    assert_eq!(count(&wire, b"UNSIGNED-PAYLOAD"), 0);
}
