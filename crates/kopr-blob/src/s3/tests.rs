//! S3Storage against a real S3 server (s3s-fs) on loopback.

use std::sync::Arc;
use std::time::Duration;

use kopr_testkit::s3::{ConnectProxy, S3Server, TlsProxy, ACCESS_KEY, SECRET_KEY, TEST_CA_PEM};

use super::*;
use crate::retrying::RetryingStorage;

pub(super) fn opts(srv: &S3Server, bucket: &str, prefix: &str) -> S3Options {
    S3Options {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: srv.endpoint(),
        do_not_use_tls: true,
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        ..S3Options::default()
    }
}

#[test]
fn conformance_with_and_without_prefix() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("bucket1");
    let st = S3Storage::connect(opts(&srv, "bucket1", "repo/x-")).unwrap();
    crate::conformance::run(&st);
    // A bucket made through the API rather than on the server's disk.
    S3Storage::new(opts(&srv, "bucket2", ""))
        .unwrap()
        .create_bucket()
        .unwrap();
    let st = S3Storage::connect(opts(&srv, "bucket2", "")).unwrap();
    crate::conformance::run(&st);
}

#[test]
fn range_headers_name_the_last_byte_and_refuse_empty_or_overflowing_ranges() {
    assert_eq!(range_header("p1", 0, None).unwrap(), None);
    assert_eq!(
        range_header("p1", 6, Some(5)).unwrap().as_deref(),
        Some("bytes=6-10")
    );
    assert_eq!(
        range_header("p1", 7, None).unwrap().as_deref(),
        Some("bytes=7-")
    );
    assert!(range_header("p1", 6, Some(0)).is_err());
    assert!(range_header("p1", u64::MAX, Some(2)).is_err());
}

#[test]
fn keys_are_prefix_plus_blob_id_and_listing_pages() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("bucket-k");
    let st = S3Storage::connect(opts(&srv, "bucket-k", "velero/kopia/ns1/"))
        .unwrap()
        .with_list_page_size(2);
    let other = S3Storage::connect(opts(&srv, "bucket-k", "velero/kopia/ns10/")).unwrap();
    other
        .put_blob("kopia.repository", b"other", &PutOptions::default())
        .unwrap();
    let pack = "p0123456789abcdef0123456789abcdef-s0011223344556677123";
    st.put_blob(pack, b"pack", &PutOptions::default()).unwrap();
    // Kopia's layout: no sharding, the prefix is prepended as is.
    assert_eq!(
        std::fs::read(srv.data().join("bucket-k/velero/kopia/ns1").join(pack)).unwrap(),
        b"pack"
    );
    for i in 0..5 {
        st.put_blob(&format!("xn0_{i}"), b"i", &PutOptions::default())
            .unwrap();
    }
    // The server pages as asked, so the listing below really follows continuation tokens.
    let req = Req::new("GET", None)
        .query("list-type", "2")
        .query("max-keys", "2")
        .query("prefix", "velero/kopia/ns1/");
    let mut body = String::new();
    st.execute(&req)
        .unwrap()
        .into_reader()
        .read_to_string(&mut body)
        .unwrap();
    let page = xml::parse_list(&body).unwrap();
    assert_eq!(page.objects.len(), 2);
    assert!(page.next_token.is_some(), "{body}");
    let ids: Vec<String> = st.list_all("").unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(!ids.contains(&"kopia.repository".to_string()));
    let x = st.list_all("xn0_").unwrap();
    assert_eq!(x.len(), 5);
    let age = Utc::now() - x[0].timestamp;
    assert!(age.num_seconds().abs() < 300, "{age:?}");
    let m = st.get_metadata(pack).unwrap();
    assert_eq!(m.length, 4);
    assert!((m.timestamp - x[0].timestamp).num_seconds().abs() < 300);
    assert_eq!(st.get_blob(pack, 1, None).unwrap(), b"ack");
    assert_eq!(st.get_blob(pack, 4, None).unwrap(), b"");
    assert!(matches!(
        st.get_blob(pack, 5, None),
        Err(BlobError::InvalidRange { .. })
    ));
    assert!(matches!(
        st.get_blob(pack, 5, Some(0)),
        Err(BlobError::InvalidRange { .. })
    ));
}

#[test]
fn large_blob_round_trip() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("big");
    let st = S3Storage::connect(opts(&srv, "big", "r/")).unwrap();
    let data = kopr_testkit::random_bytes(7, 9 << 20);
    st.put_blob("pbig", &data, &PutOptions::default()).unwrap();
    assert_eq!(st.get_blob("pbig", 0, None).unwrap(), data);
    assert_eq!(
        st.get_blob("pbig", 5 << 20, Some(1000)).unwrap(),
        &data[5 << 20..(5 << 20) + 1000]
    );
    // In parts: 5 + 5 + 2 MiB (less 3 bytes), then read back whole and across a part border.
    let st = st.with_multipart(6 << 20, 5 << 20);
    let data = kopr_testkit::random_bytes(8, (12 << 20) - 3);
    st.put_blob("pparts", &data, &PutOptions::default())
        .unwrap();
    assert_eq!(st.get_metadata("pparts").unwrap().length, data.len() as u64);
    assert_eq!(st.get_blob("pparts", 0, None).unwrap(), data);
    assert_eq!(
        st.get_blob("pparts", (5 << 20) - 10, Some(20)).unwrap(),
        &data[(5 << 20) - 10..(5 << 20) + 10]
    );
}

#[test]
fn clear_errors() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("bkt");
    // Wrong secret.
    let mut o = opts(&srv, "bkt", "p/");
    o.secret_access_key = "wrong".into();
    let e = S3Storage::connect(o).unwrap_err();
    assert!(matches!(e, BlobError::Permission(_)), "{e:?}");
    eprintln!("{e}");
    assert!(e.to_string().contains("S3 rejected the credentials"), "{e}");
    // Wrong access key.
    let mut o = opts(&srv, "bkt", "p/");
    o.access_key_id = "nobody".into();
    let e = S3Storage::connect(o).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("S3 rejected the credentials"), "{e}");
    // Missing bucket.
    let e = S3Storage::connect(opts(&srv, "missing", "p/"))
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(e.contains("bucket \"missing\" does not exist"), "{e}");
    // TLS spoken to a plain-HTTP server.
    let mut o = opts(&srv, "bkt", "p/");
    o.do_not_use_tls = false;
    let e = S3Storage::connect(o).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains("TLS") && e.contains("--disable-tls") && !e.contains('\n'),
        "{e}"
    );
    // No credentials at all.
    let mut o = opts(&srv, "bkt", "p/");
    o.access_key_id.clear();
    o.secret_access_key.clear();
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let e = S3Storage::new(o).unwrap_err().to_string();
        assert!(e.contains("--access-key"), "{e}");
    }
    // Nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = opts(&srv, "bkt", "p/");
    o.endpoint = format!("127.0.0.1:{port}");
    let t = std::time::Instant::now();
    let e = S3Storage::connect(o).unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    let e = e.to_string();
    eprintln!("{e}");
    assert!(e.contains("cannot reach S3 endpoint"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn outage_is_transient_and_retried() {
    let Some(mut srv) = S3Server::start() else {
        return;
    };
    srv.create_bucket("outage");
    let st = Arc::new(S3Storage::connect(opts(&srv, "outage", "r/")).unwrap());
    st.put_blob("qa", b"before", &PutOptions::default())
        .unwrap();
    srv.stop();
    let e = st.put_blob("qb", b"x", &PutOptions::default()).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(st.get_blob("qa", 0, None).unwrap_err().is_transient());
    assert!(st.list_all("").unwrap_err().is_transient());
    let r = RetryingStorage::new(st.clone(), 8, Duration::from_millis(100));
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            srv.restart();
        });
        r.put_blob("qb", b"after", &PutOptions::default()).unwrap();
    });
    assert_eq!(r.get_blob("qa", 0, None).unwrap(), b"before");
    assert_eq!(r.get_blob("qb", 0, None).unwrap(), b"after");
}

#[test]
fn options_serialize_with_kopia_names() {
    let o = S3Options {
        bucket: "b".into(),
        prefix: "p/".into(),
        endpoint: "minio:9000".into(),
        do_not_use_tls: true,
        do_not_verify_tls: true,
        root_ca: Some(b"PEM".to_vec()),
        access_key_id: "AK".into(),
        secret_access_key: "SK".into(),
        session_token: String::new(),
        region: "eu-west-1".into(),
    };
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"bucket":"b","prefix":"p/","endpoint":"minio:9000","doNotUseTLS":true,
            "doNotVerifyTLS":true,"rootCA":"UEVN","accessKeyID":"AK","secretAccessKey":"SK",
            "sessionToken":"","region":"eu-west-1"})
    );
    assert_eq!(serde_json::from_value::<S3Options>(v).unwrap(), o);
    assert!(!format!("{o:?}").contains("SK"));
    let n = S3Options {
        endpoint: "http://minio:9000/".into(),
        ..S3Options::default()
    }
    .normalized();
    assert_eq!(n.endpoint, "minio:9000");
    assert!(n.do_not_use_tls);
}

#[test]
fn addressing_follows_the_endpoint() {
    let base = S3Options {
        bucket: "my-bucket".into(),
        access_key_id: "AK".into(),
        secret_access_key: "SK".into(),
        ..S3Options::default()
    };
    let aws = S3Storage::new(base.clone()).unwrap();
    assert_eq!(
        aws.location(Some("p/kopia.repository")),
        (
            "my-bucket.s3.amazonaws.com".to_string(),
            "/p/kopia.repository".to_string()
        )
    );
    let eu = S3Storage::new(S3Options {
        region: "eu-central-1".into(),
        ..base.clone()
    })
    .unwrap();
    assert_eq!(
        eu.location(None).0,
        "my-bucket.s3.eu-central-1.amazonaws.com"
    );
    let minio = S3Storage::new(S3Options {
        endpoint: "10.0.0.5:9000".into(),
        ..base
    })
    .unwrap();
    assert_eq!(
        minio.location(Some("a b")),
        ("10.0.0.5:9000".to_string(), "/my-bucket/a%20b".to_string())
    );
}

#[test]
fn tls_with_private_ca_or_without_verification() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("tls");
    let proxy = TlsProxy::start(srv.port());
    let tls_opts = |ca: Option<&str>, verify: bool| S3Options {
        endpoint: proxy.endpoint(),
        do_not_use_tls: false,
        do_not_verify_tls: !verify,
        root_ca: ca.map(|c| c.as_bytes().to_vec()),
        ..opts(&srv, "tls", "r/")
    };
    // Unknown issuer: a one-line error naming the flags that fix it.
    let e = S3Storage::connect(tls_opts(None, true)).unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    let e = e.to_string();
    eprintln!("{e}");
    assert!(
        e.contains("certificate")
            && e.contains("--root-ca-pem-path")
            && e.contains("--disable-tls-verification"),
        "{e}"
    );
    // The private CA.
    let st = S3Storage::connect(tls_opts(Some(TEST_CA_PEM), true)).unwrap();
    st.put_blob("kopia.repository", b"over tls", &PutOptions::default())
        .unwrap();
    assert_eq!(
        st.get_blob("kopia.repository", 0, None).unwrap(),
        b"over tls"
    );
    // No verification.
    let st = S3Storage::connect(tls_opts(None, false)).unwrap();
    assert_eq!(st.list_all("").unwrap().len(), 1);
    // Through an HTTPS proxy (CONNECT tunnel), certificate still checked end to end.
    let tunnel = ConnectProxy::start();
    let st = S3Storage::new(tls_opts(Some(TEST_CA_PEM), true))
        .unwrap()
        .with_proxy(&tunnel.url())
        .unwrap();
    st.probe().unwrap();
    assert_eq!(
        st.get_blob("kopia.repository", 0, None).unwrap(),
        b"over tls"
    );
    assert!(tunnel.tunnels() >= 1);
    let e = S3Storage::new(tls_opts(None, true))
        .unwrap()
        .with_proxy(&tunnel.url())
        .unwrap()
        .probe()
        .unwrap_err()
        .to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // A PEM without certificates is refused up front.
    let e = S3Storage::new(tls_opts(Some("not a pem"), true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("root CA"), "{e}");
}

#[test]
fn answers_map_to_error_kinds() {
    let st = S3Storage::new(S3Options {
        bucket: "b".into(),
        endpoint: "127.0.0.1:1".into(),
        access_key_id: "A".into(),
        secret_access_key: "S".into(),
        ..S3Options::default()
    })
    .unwrap();
    let status = |s: u16, code: &str, region: &str| Failure::Status {
        status: s,
        code: code.into(),
        message: "msg".into(),
        region: region.into(),
        content_range: None,
    };
    for (s, code) in [
        (500, "InternalError"),
        (502, ""),
        (503, "SlowDown"),
        (503, "ServiceUnavailable"),
        (429, ""),
        (400, "RequestTimeout"),
    ] {
        let e = st.error(status(s, code, ""), "put", "p1");
        assert!(e.is_transient(), "{s} {code}: {e:?}");
    }
    assert!(matches!(
        st.error(status(404, "NoSuchKey", ""), "get", "p1"),
        BlobError::NotFound(id) if id == "p1"
    ));
    assert!(matches!(
        st.error(status(404, "", ""), "stat", "p1"),
        BlobError::NotFound(_)
    ));
    let e = st.error(status(403, "AccessDenied", ""), "put", "p1");
    assert!(matches!(e, BlobError::Permission(_)) && e.to_string().contains("AccessDenied"));
    let e = st
        .error(status(301, "PermanentRedirect", "eu-west-1"), "list", "")
        .to_string();
    assert!(e.contains("--region eu-west-1"), "{e}");
    let e = st
        .error(status(403, "RequestTimeTooSkewed", ""), "list", "")
        .to_string();
    assert!(e.contains("clock"), "{e}");
    let e = st.error(status(400, "InvalidArgument", ""), "put", "p1");
    assert!(!e.is_transient() && e.to_string().contains("InvalidArgument"));
    assert!(st
        .error(Failure::Unreachable("reset".into()), "get", "p1")
        .is_transient());
    let e = st.error(Failure::Dns("no such host".into()), "get", "p1");
    assert!(!e.is_transient() && e.to_string().contains("cannot resolve"));
}

#[test]
fn long_listings_in_parallel_ranges_match_sequential_listing() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("paged");
    let base = S3Storage::connect(opts(&srv, "paged", "r/")).unwrap();
    let mut ids: Vec<String> = (0..16).map(|i| format!("p{i:x}0123-s9")).collect();
    ids.extend(
        [
            "p",
            "q0",
            "qf",
            "xn0_1",
            "xn1_2",
            "kopia.repository",
            "kopia.blobcfg",
            "_log_x",
            "1",
            "a",
            "z",
            "9x",
            "~t",
            "Zupper",
            "s0",
            "q",
        ]
        .map(String::from),
    );
    std::thread::scope(|s| {
        for chunk in ids.chunks(8) {
            let base = &base;
            s.spawn(move || {
                for id in chunk {
                    base.put_blob(id, id.as_bytes(), &PutOptions::default())
                        .unwrap();
                }
            });
        }
    });
    // Outside the storage prefix, before and after it.
    let outside = S3Storage::connect(opts(&srv, "paged", "r")).unwrap();
    outside.put_blob("0x", b"", &PutOptions::default()).unwrap();
    outside
        .put_blob("s/y", b"", &PutOptions::default())
        .unwrap();
    ids.sort();
    let parallel = S3Storage::connect(opts(&srv, "paged", "r/"))
        .unwrap()
        .with_list_page_size(3);
    let sequential = S3Storage::connect(opts(&srv, "paged", "r/"))
        .unwrap()
        .with_list_page_size(3)
        .with_sequential_listing();
    let list = |st: &S3Storage, p: &str| -> Vec<String> {
        st.list_all(p).unwrap().into_iter().map(|m| m.id).collect()
    };
    assert_eq!(list(&parallel, ""), ids);
    assert_eq!(list(&sequential, ""), ids);
    for p in ["p", "q", "x", "kopia", "zz", "~"] {
        let want: Vec<String> = ids.iter().filter(|i| i.starts_with(p)).cloned().collect();
        assert_eq!(list(&parallel, p), want, "prefix {p}");
        assert_eq!(list(&sequential, p), want, "prefix {p}");
    }
    let m = parallel.list_all("p").unwrap();
    assert!(m.iter().all(|m| m.length == m.id.len() as u64));
}

/// A loopback endpoint that accepts connections and never answers (they stay open while the
/// test process lives).
fn hanging_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    addr.to_string()
}

#[test]
fn an_endpoint_that_never_answers_times_out_in_bounded_time() {
    let o = S3Options {
        bucket: "b".into(),
        endpoint: hanging_endpoint(),
        do_not_use_tls: true,
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        ..S3Options::default()
    };
    let limits = Timeouts {
        connect: Duration::from_secs(1),
        io: Duration::from_millis(300),
    };
    let st = S3Storage::new(o).unwrap().with_timeouts(limits).unwrap();
    assert_eq!(st.timeouts(), limits);
    let start = std::time::Instant::now();

    // one request: a transient timeout, so the retrying layer may try again
    let e = st.get_blob("p1", 0, None).unwrap_err();
    let m = e.to_string();
    assert!(
        e.is_transient() && m.contains("did not answer in time"),
        "{m}"
    );
    assert!(
        m.contains("300ms per read") && m.contains(TIMEOUT_ENV),
        "{m}"
    );

    // connecting: a few attempts, then one permanent line
    let e = st.probe().unwrap_err();
    let m = e.to_string();
    assert!(
        !e.is_transient() && m.contains("did not answer in time"),
        "{m}"
    );
    assert!(!m.contains('\n'), "{m}");

    // retries are bounded: every attempt times out, then the error comes back
    let r = RetryingStorage::new(Arc::new(st), 3, Duration::from_millis(10));
    let e = r.list_all("").unwrap_err();
    assert!(e.to_string().contains("did not answer in time"), "{e}");
    let e = r
        .put_blob("p2", b"data", &PutOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("did not answer in time"), "{e}");
    // 1 + 3 + 3 + 3 requests of 300 ms and a few backoffs
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn timeouts_default_and_come_from_the_environment() {
    assert_eq!(
        Timeouts::default(),
        Timeouts {
            connect: Duration::from_secs(30),
            io: Duration::from_secs(60)
        }
    );
    assert_eq!(Timeouts::from_var(None).unwrap(), Timeouts::default());
    assert_eq!(Timeouts::from_var(Some(" ")).unwrap(), Timeouts::default());
    let t = Timeouts::from_var(Some("2")).unwrap();
    assert_eq!(
        (t.connect, t.io),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    for bad in ["0", "-1", "1.5", "soon"] {
        let e = Timeouts::from_var(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(TIMEOUT_ENV), "{e}");
    }
}
