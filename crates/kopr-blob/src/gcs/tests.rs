//! The GCS backend against fake-gcs-server on loopback (the conformance suite, Kopia's object
//! names and config, one-line errors), and the service-account token exchange against a local
//! token endpoint that checks the JWT's RS256 signature.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kopr_testkit::servers::Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

const TEST_KEY: &str = include_str!("../../testdata/gcs-test-key.pem");

fn opts(bucket: &str, prefix: &str) -> GcsOptions {
    GcsOptions {
        bucket: bucket.into(),
        prefix: prefix.into(),
        ..Default::default()
    }
}

#[test]
fn conformance_on_fake_gcs_server() {
    let Some(srv) = Server::fake_gcs() else {
        return;
    };
    let st = GcsStorage::with_endpoint(opts("conf", ""), &srv.url(), false).unwrap();
    st.create_bucket().unwrap();
    crate::conformance::run(&st);
    let pst = GcsStorage::with_endpoint(opts("conf", "repo/"), &srv.url(), false).unwrap();
    crate::conformance::run(&pst);
    let names: Vec<String> = st
        .list_all("repo/")
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(
        names.contains(&"repo/kopia.repository".to_string()),
        "{names:?}"
    );
}

#[test]
fn errors_name_the_fix() {
    let Some(srv) = Server::fake_gcs() else {
        return;
    };
    let e = GcsStorage::with_endpoint(opts("nosuch", ""), &srv.url(), false)
        .unwrap()
        .probe()
        .unwrap_err()
        .to_string();
    assert!(e.contains("bucket \"nosuch\" does not exist"), "{e}");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let st = GcsStorage::with_endpoint(opts("b", ""), &format!("http://127.0.0.1:{port}"), false)
        .unwrap();
    let e = st.get_blob("p1", 0, None).unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("cannot reach GCS endpoint"),
        "{e}"
    );
    let e = GcsStorage::with_endpoint(
        GcsOptions {
            credentials_file: "/nonexistent/creds.json".into(),
            ..opts("b", "")
        },
        DEFAULT_ENDPOINT,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--credentials-file") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn config_has_kopias_field_names() {
    let o = GcsOptions {
        bucket: "b".into(),
        prefix: "p/".into(),
        credentials_file: "/c.json".into(),
        credentials: None,
        read_only: false,
    };
    assert_eq!(
        serde_json::to_string(&o).unwrap(),
        r#"{"bucket":"b","prefix":"p/","credentialsFile":"/c.json"}"#
    );
}

/// A one-request HTTP server: returns the request body, answers `answer` with `status`.
fn token_server(status: u16, answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/token", l.local_addr().unwrap().port());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        String::from_utf8(body).unwrap()
    });
    (url, h)
}

fn service_account(token_uri: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "service_account",
        "client_email": "kopr@test.iam.gserviceaccount.com",
        "private_key": TEST_KEY,
        "token_uri": token_uri,
    })
}

#[test]
fn a_service_account_gets_a_token_with_a_signed_jwt() {
    let (uri, server) = token_server(200, r#"{"access_token":"tok-1","expires_in":3600}"#);
    let st = GcsStorage::with_endpoint(
        GcsOptions {
            credentials: Some(service_account(&uri)),
            ..opts("b", "")
        },
        "http://127.0.0.1:1",
        true,
    )
    .unwrap();
    assert_eq!(st.token().unwrap().as_deref(), Some("tok-1"));
    // cached: no second request (the server answers only one)
    assert_eq!(st.token().unwrap().as_deref(), Some("tok-1"));
    let body = server.join().unwrap();
    let form: std::collections::HashMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2E", ".")))
        .collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = &form["assertion"];
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "kopr@test.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], uri.as_str());
    assert_eq!(claims["scope"], SCOPE_FULL);
    // the signature verifies with the key's public half
    let der = rustls_pemfile::private_key(&mut TEST_KEY.as_bytes())
        .unwrap()
        .unwrap();
    let kp = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        kp.public().as_ref().to_vec(),
    );
    public
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .unwrap();
}

#[test]
fn rejected_credentials_are_one_line_naming_the_fix() {
    let (uri, server) = token_server(
        400,
        r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
    );
    let st = GcsStorage::with_endpoint(
        GcsOptions {
            credentials: Some(service_account(&uri)),
            ..opts("b", "")
        },
        "http://127.0.0.1:1",
        true,
    )
    .unwrap();
    let e = st.probe().unwrap_err().to_string();
    server.join().unwrap();
    assert!(
        e.contains("rejected the GCS credentials")
            && e.contains("Invalid JWT Signature")
            && e.contains("--credentials-file"),
        "{e}"
    );
}

/// A one-request HTTP server: returns the request line and headers, answers `answer`.
fn head_server(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        head
    });
    (host, h)
}

/// Without a credentials file anywhere (flag, `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
/// application-default file), the token comes from the VM's metadata server, asked as Google's
/// clients ask it (`Metadata-Flavor: Google`, the scope); `GCE_METADATA_HOST` moves it.
#[test]
fn without_a_credentials_file_the_metadata_server_gives_the_token() {
    let home = tempfile::tempdir().unwrap();
    let (host, server) =
        head_server(r#"{"access_token":"vm-tok","expires_in":3599,"token_type":"Bearer"}"#);
    let env = |k: &str| match k {
        "GCE_METADATA_HOST" => Some(host.clone()),
        "HOME" => Some(home.path().to_string_lossy().into_owned()),
        _ => None,
    };
    let o = GcsOptions {
        read_only: true,
        ..opts("b", "")
    };
    let auth = GcsStorage::auth(&o, &env).unwrap();
    let st = GcsStorage::with_auth(o.clone(), "http://127.0.0.1:1", auth).unwrap();
    assert_eq!(st.token().unwrap().as_deref(), Some("vm-tok"));
    let head = server.join().unwrap();
    assert!(
        head.starts_with(&format!("GET {METADATA_TOKEN_PATH}?scopes={SCOPE_READ} ")),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("metadata-flavor: google"),
        "{head}"
    );

    // gcloud's application-default file comes first
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
    )
    .unwrap();
    assert!(matches!(
        GcsStorage::auth(&o, &env).unwrap(),
        Auth::User { .. }
    ));

    // no metadata server there: one line naming the ways to give credentials
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let none = |k: &str| match k {
        "GCE_METADATA_HOST" => Some(format!("127.0.0.1:{port}")),
        _ => None,
    };
    let auth = GcsStorage::auth(&o, &none).unwrap();
    let st = GcsStorage::with_auth(o, "http://127.0.0.1:1", auth).unwrap();
    let e = st.probe().unwrap_err().to_string();
    assert!(
        e.contains("no GCS credentials")
            && e.contains("--credentials-file")
            && e.contains("metadata server"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}
