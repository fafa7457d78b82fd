//! `kopr server start` over plain HTTP: every page and API route refuses a request without
//! authentication (or with a wrong password) and answers with it; Kopia's routes give Kopia's
//! JSON shapes; no answer carries a password or key; the flags refuse unsafe servers; snapshots
//! and restores run as tasks; TLS. Notifications are in `cli_server_notify.rs`.

mod server_common;
use base64::Engine as _;
use server_common::{Repo, Server, SERVER_PASSWORD, SERVER_USER};
use std::io::{BufRead, BufReader, Read};

use server_common::*;

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn get_json(url: &str) -> serde_json::Value {
    let (status, _, body) = request("GET", url, Some(&basic(SERVER_USER, SERVER_PASSWORD)));
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

#[test]
fn every_route_needs_authentication() {
    let repo = Repo::new();
    let server = Server::start_with_password(&repo.k);
    let base = server.url.trim_end_matches('/');
    every_route_refuses_wrong_credentials(base);
    only_scripts_get_basics_challenge(base);
    the_login_form_and_its_session_cookie(base);
}

/// Every route refuses no or wrong credentials (the API with 401, pages sent to the login
/// form) and takes the right password.
fn every_route_refuses_wrong_credentials(base: &str) {
    let good = basic(SERVER_USER, SERVER_PASSWORD);
    let wrong = [
        basic(SERVER_USER, "server-Secret-8"),
        basic("kopia", SERVER_PASSWORD),
        basic(SERVER_USER, ""),
        "Basic !!!".to_string(),
        "Bearer x".to_string(),
    ];
    for (method, path) in kopr_server::api::ROUTES {
        let url = format!("{base}{path}");
        for auth in std::iter::once(None).chain(wrong.iter().map(|w| Some(w.as_str()))) {
            let (status, location, body) = request(method, &url, auth);
            if path.starts_with("/api/") {
                assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
                assert!(body.contains("ACCESS_DENIED"), "{body}");
            } else {
                assert_eq!(status, 303, "{method} {path} with {auth:?}: {body}");
                assert_eq!(location, "/login");
                assert!(body.is_empty(), "{method} {path} served {body}");
            }
        }
        let (status, location, body) = request(method, &url, Some(&good));
        assert_ne!(
            status, 401,
            "{method} {path} refused the right password: {body}"
        );
        if path != "/logout" {
            assert_ne!(location, "/login", "{method} {path}");
        }
    }
}

/// Scripts get Basic's challenge, as from Kopia's server; the UI's own requests do not (no
/// browser prompt).
fn only_scripts_get_basics_challenge(base: &str) {
    match agent().get(&format!("{base}/api/v1/sources")).call() {
        Err(ureq::Error::Status(401, r)) => {
            assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"Kopia\""))
        }
        other => panic!("{other:?}"),
    }
    match agent()
        .get(&format!("{base}/api/v1/sources"))
        .set("X-Requested-With", "kopr")
        .call()
    {
        Err(ureq::Error::Status(401, r)) => assert_eq!(r.header("WWW-Authenticate"), None),
        other => panic!("{other:?}"),
    }
}

/// The login form is the one page without authentication, and a wrong password there gets no
/// session; the right one's cookie opens pages and GET routes, but a POST with it alone (a
/// cross-site form) is refused.
fn the_login_form_and_its_session_cookie(base: &str) {
    let (status, _, body) = request("GET", &format!("{base}/login"), None);
    assert_eq!(status, 200);
    assert!(body.contains("<form") && !body.contains("/ui/app.js"));
    let r = agent()
        .post(&format!("{base}/login"))
        .send_form(&[("username", SERVER_USER), ("password", "nope")]);
    match r {
        Err(ureq::Error::Status(401, r)) => {
            assert!(r.header("Set-Cookie").is_none());
            assert!(r
                .into_string()
                .unwrap_or_default()
                .contains("Invalid user name or password"));
        }
        other => panic!("a wrong password was not refused: {other:?}"),
    }
    let r = agent()
        .post(&format!("{base}/login"))
        .send_form(&[("username", SERVER_USER), ("password", SERVER_PASSWORD)])
        .expect("login");
    assert_eq!(r.status(), 303);
    let cookie = r.header("Set-Cookie").expect("session cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("cookie").to_string();
    // The cookie opens pages and GET routes; a POST with it alone (a cross-site form) is refused.
    let r = agent()
        .get(&format!("{base}/"))
        .set("Cookie", &session)
        .call()
        .expect("page");
    assert!(r.into_string().unwrap_or_default().contains("/ui/app.js"));
    match agent()
        .post(&format!("{base}/api/v1/sources"))
        .set("Cookie", &session)
        .set("Content-Type", "application/json")
        .send_string(r#"{"path":"/","createSnapshot":true}"#)
    {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("a cookie-only POST was accepted: {other:?}"),
    }
}

#[test]
fn kopias_routes_answer_with_kopias_shapes_and_no_secrets() {
    let repo = Repo::new();
    let server = Server::start_with_password(&repo.k);
    let base = server.url.trim_end_matches('/');
    let src = repo.source.canonicalize().expect("canonical");
    let src = src.to_str().expect("utf-8");

    let status = get_json(&format!("{base}/api/v1/repo/status"));
    assert_eq!(status["connected"], true);
    assert_eq!(status["storage"], "filesystem");
    assert_eq!(status["hash"], "BLAKE3-256-128");
    assert_eq!(status["formatVersion"], 3);

    let sources = get_json(&format!("{base}/api/v1/sources"));
    let list = sources["sources"].as_array().expect("sources");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["source"]["path"], src);
    assert_eq!(list[0]["status"], "IDLE");
    assert_eq!(list[0]["lastSnapshot"]["id"], repo.snapshot.as_str());

    let q = format!(
        "userName={}&host={}&path={src}",
        list[0]["source"]["userName"].as_str().expect("user"),
        list[0]["source"]["host"].as_str().expect("host")
    );
    let snaps = get_json(&format!("{base}/api/v1/snapshots?{q}"));
    let s = &snaps["snapshots"][0];
    assert_eq!(snaps["snapshots"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["id"], repo.snapshot.as_str());
    for field in [
        "startTime",
        "endTime",
        "rootID",
        "summary",
        "retention",
        "pins",
    ] {
        assert!(!s[field].is_null(), "snapshot has no {field}: {s}");
    }
    assert_eq!(s["summary"]["files"], 4);
    assert_eq!(s["retention"][0], "latest-1");
    let none = get_json(&format!("{base}/api/v1/snapshots?path=/nowhere"));
    assert_eq!(none["snapshots"].as_array().map(Vec::len), Some(0));
    objects_download_as_kopia_and_as_tar(base, s);
    kopr_routes_print_what_the_cli_prints(&repo, base);
    no_answer_carries_a_secret(base);
}

/// `/api/v1/objects`: the root directory as Kopia's JSON, a file byte for byte, a directory as a tar archive; then the mounts, policies and tasks lists.
fn objects_download_as_kopia_and_as_tar(base: &str, s: &serde_json::Value) {
    // The root directory object is Kopia's directory JSON; a file downloads byte for byte.
    let root = s["rootID"].as_str().expect("root");
    let dir = get_json(&format!("{base}/api/v1/objects/{root}"));
    let names: Vec<&str> = dir["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["docs", "hello.txt", "later.txt", "link"]);
    let hello = dir["entries"][1]["obj"].as_str().expect("obj");
    let r = agent()
        .get(&format!("{base}/api/v1/objects/{hello}?fname=hello.txt"))
        .set("Authorization", &basic(SERVER_USER, SERVER_PASSWORD))
        .call()
        .expect("download");
    assert_eq!(
        r.header("Content-Disposition"),
        Some("attachment; filename=\"hello.txt\"")
    );
    assert_eq!(r.into_string().expect("body"), "hello from kopr\n");
    let (status, _, body) = request(
        "GET",
        &format!("{base}/api/v1/objects/not-an-object"),
        Some(&basic(SERVER_USER, SERVER_PASSWORD)),
    );
    assert_eq!(status, 400, "{body}");

    // A directory downloads as a tar archive of the same tree.
    let docs = dir["entries"][0]["obj"].as_str().expect("obj");
    let r = agent()
        .get(&format!(
            "{base}/api/v1/objects/{docs}?format=tar&fname=docs.tar"
        ))
        .set("Authorization", &basic(SERVER_USER, SERVER_PASSWORD))
        .call()
        .expect("tar");
    let mut tar_bytes = Vec::new();
    r.into_reader()
        .read_to_end(&mut tar_bytes)
        .expect("tar body");
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut files = std::collections::BTreeMap::new();
    for e in archive.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("tar data");
        files.insert(path, data);
    }
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["deep/", "deep/big.bin", "readme.md"]
    );
    assert!(files["deep/big.bin"] == server_common::big_file());
    assert_eq!(files["readme.md"], b"# readme\n");

    assert_eq!(
        get_json(&format!("{base}/api/v1/mounts")),
        serde_json::json!({"items": []})
    );
    assert!(get_json(&format!("{base}/api/v1/policies"))["policies"].is_array());
    assert_eq!(
        get_json(&format!("{base}/api/v1/tasks"))["tasks"],
        serde_json::json!([])
    );
}

/// kopr's own routes answer what the CLI prints.
fn kopr_routes_print_what_the_cli_prints(repo: &Repo, base: &str) {
    // kopr's JSON is what the CLI prints.
    let stats = get_json(&format!("{base}/api/v1/kopr/content-stats"));
    let cli: serde_json::Value =
        serde_json::from_str(&repo.k.ok(&["content", "stats", "--json"])).expect("cli json");
    assert_eq!(stats, cli);
    assert_eq!(stats["histogram"].as_array().map(Vec::len), Some(8));
    let contents = repo.k.ok(&["content", "ls"]).lines().count();
    assert_eq!(stats["count"], contents);
    let in_buckets: u64 = stats["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .filter_map(|b| b["count"].as_u64())
        .sum();
    assert_eq!(in_buckets, contents as u64);
    let explain = get_json(&format!("{base}/api/v1/kopr/maintenance/explain"));
    assert_eq!(explain["deletedSnapshots"][0]["id"], repo.deleted.as_str());
    let m = get_json(&format!("{base}/api/v1/kopr/maintenance"));
    assert!(m["owner"].as_str().is_some_and(|o| o.contains('@')));
    assert!(!m["runMessages"].as_object().expect("runs").is_empty());
    let hist = get_json(&format!("{base}/api/v1/kopr/size-history"));
    assert_eq!(hist["points"].as_array().map(Vec::len), Some(1));
}

/// No GET route's answer carries the repository's password or secrets.
fn no_answer_carries_a_secret(base: &str) {
    // No answer carries the repository's password or secrets.
    for (method, path) in kopr_server::api::ROUTES {
        if method != "GET" {
            continue;
        }
        let (_, _, body) = request(
            method,
            &format!("{base}{path}"),
            Some(&basic(SERVER_USER, SERVER_PASSWORD)),
        );
        for secret in [
            kopr_testkit::cli::PASSWORD,
            SERVER_PASSWORD,
            "masterKey",
            "hmacSecret",
            "encryptedBlockFormat",
        ] {
            assert!(!body.contains(secret), "{path} serves {secret:?}");
        }
    }
}

#[test]
fn unsafe_servers_are_refused() {
    let repo = Repo::new();
    for (args, msg) in [
        (vec!["--address", "127.0.0.1:0"], "TLS is required"),
        (
            vec!["--address", "0.0.0.0:0", "--insecure"],
            "a password is required",
        ),
        (
            vec![
                "--address",
                "127.0.0.1:0",
                "--insecure",
                "--server-password",
                "",
            ],
            "must not be empty",
        ),
        (
            vec!["--address", "nowhere", "--insecure"],
            "invalid --address",
        ),
    ] {
        let mut all = vec!["server", "start"];
        all.extend(args.iter().copied());
        let out = repo.k.run(&all);
        let line = kopr_testkit::cli::one_error_line(&out);
        assert!(line.contains(msg), "{args:?}: {line}");
    }
    // Bound to loopback with --insecure and no password, the API is open.
    let server = Server::start(&repo.k, &["--insecure"]);
    let (status, _, _) = request("GET", &format!("{}api/v1/sources", server.url), None);
    assert_eq!(status, 200);
    // With a generated certificate it prints the certificate's fingerprint and serves HTTPS.
    let out = repo
        .k
        .cmd(&[
            "server",
            "start",
            "--address",
            "127.0.0.1:0",
            "--tls-generate-cert",
            "--server-password",
            "x",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tls server");
    let mut child = out;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let second = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let fp = first
        .strip_prefix("SERVER CERT SHA256: ")
        .expect("fingerprint line");
    assert_eq!(fp.len(), 64, "{first}");
    assert!(
        second.starts_with("SERVER ADDRESS: https://127.0.0.1:"),
        "{second}"
    );
}

fn post_json(url: &str, body: &str) -> serde_json::Value {
    let r = agent()
        .post(url)
        .set("Authorization", &basic(SERVER_USER, SERVER_PASSWORD))
        .set("Content-Type", "application/json")
        .send_string(body);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            panic!("POST {url}: {code} {}", r.into_string().unwrap_or_default())
        }
        Err(e) => panic!("POST {url}: {e}"),
    };
    serde_json::from_str(&r.into_string().expect("body")).expect("json")
}

/// Polls a task until it is no longer running (bounded: at most 60 s).
fn finished_task(base: &str, id: &str) -> serde_json::Value {
    for _ in 0..600 {
        let t = get_json(&format!("{base}/api/v1/tasks/{id}"));
        if t["status"] != "RUNNING" && t["status"] != "CANCELING" {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("task {id} did not end");
}

#[test]
fn snapshots_and_restores_run_as_tasks() {
    let repo = Repo::new();
    let server = Server::start_with_password(&repo.k);
    let base = server.url.trim_end_matches('/');
    let src = repo.source.canonicalize().expect("canonical");
    let src = src.to_str().expect("utf-8");

    // Kopia's upload route snapshots a known source again.
    std::fs::write(repo.source.join("more.txt"), b"more").expect("write");
    let r = post_json(&format!("{base}/api/v1/sources/upload?path={src}"), "{}");
    let key = r["sources"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .expect("one source");
    assert!(key.ends_with(&format!(":{src}")), "{r}");
    assert_eq!(r["sources"][&key]["success"], true);
    let tasks = get_json(&format!("{base}/api/v1/tasks"));
    let id = tasks["tasks"][0]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    let t = finished_task(base, &id);
    assert_eq!(t["status"], "SUCCESS", "{t}");
    assert_eq!(t["kind"], "Snapshot");
    assert_eq!(t["counters"]["Hashed Files"]["value"], 1, "{t}");
    let new_id = t["snapshotID"].as_str().expect("snapshot id");
    let listed = repo.k.ok(&["snapshot", "ls", src, "--json"]);
    assert!(listed.contains(new_id), "{listed}");

    // A path that does not exist is refused.
    let r = agent()
        .post(&format!("{base}/api/v1/sources"))
        .set("Authorization", &basic(SERVER_USER, SERVER_PASSWORD))
        .set("Content-Type", "application/json")
        .send_string(r#"{"path":"/no/such/dir","createSnapshot":true}"#);
    match r {
        Err(ureq::Error::Status(400, r)) => {
            assert!(r
                .into_string()
                .unwrap_or_default()
                .contains("PATH_NOT_FOUND"))
        }
        other => panic!("{other:?}"),
    }

    // A restore through the API gives back the source's tree.
    let snaps = get_json(&format!("{base}/api/v1/snapshots?path={src}"));
    let last = snaps["snapshots"]
        .as_array()
        .and_then(|v| v.last())
        .expect("a snapshot");
    let target = repo.path().join("restored");
    let t = post_json(
        &format!("{base}/api/v1/restore"),
        &serde_json::json!({"root": last["rootID"], "fsOutput": {"targetPath": target}, "options": {}})
            .to_string(),
    );
    assert_eq!(t["kind"], "Restore");
    let t = finished_task(base, t["id"].as_str().expect("id"));
    assert_eq!(t["status"], "SUCCESS", "{t}");
    for f in [
        "hello.txt",
        "more.txt",
        "docs/readme.md",
        "docs/deep/big.bin",
    ] {
        assert_eq!(
            std::fs::read(target.join(f)).expect("restored file"),
            std::fs::read(repo.source.join(f)).expect("source file"),
            "{f}"
        );
    }
}

#[test]
fn tls_with_a_certificate_file() {
    let repo = Repo::new();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = repo.path().join("cert.pem");
    let key = repo.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write");
    let server = Server::start(
        &repo.k,
        &[
            "--tls-cert-file",
            cert.to_str().expect("utf-8"),
            "--tls-key-file",
            key.to_str().expect("utf-8"),
            "--server-password",
            SERVER_PASSWORD,
            "--server-username",
            SERVER_USER,
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(tls))
        .build();
    let url = server.url.replace("127.0.0.1", "localhost");
    let body = agent
        .get(&format!("{url}api/v1/repo/status"))
        .set("Authorization", &basic(SERVER_USER, SERVER_PASSWORD))
        .call()
        .expect("https request")
        .into_string()
        .expect("body");
    assert!(body.contains("\"connected\":true"), "{body}");
    // Without the password, refused over TLS too.
    match agent.get(&format!("{url}api/v1/repo/status")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("{other:?}"),
    }
}
