//! `kopr server` notifications: a webhook profile receives the test message, the report of a
//! snapshot and the error of a failing maintenance run, with Kopia's template names and
//! variables; an e-mail profile delivers through SMTP.

mod server_common;
use kopr_testkit::cli::Kopr;
use server_common::Repo;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// One HTTP request a listener received.
#[derive(Debug)]
struct Received {
    method: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback: answers 200 to each request and hands it to the test.
fn webhook_listener() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let method = first.split(' ').next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = l.trim_end().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send(Received {
                method,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    });
    (url, rx)
}

fn next(rx: &mpsc::Receiver<Received>) -> Received {
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("a webhook request arrives")
}

#[test]
fn webhook_notifications() {
    let repo = Repo::new();
    let k = &repo.k;
    let (url, rx) = webhook_listener();
    k.ok(&[
        "notification",
        "profile",
        "configure",
        "webhook",
        "--profile-name",
        "hook",
        "--endpoint",
        &url,
        "--http-header",
        "X-Team: backups",
        "--min-severity",
        "report",
    ]);
    let list = k.ok(&["notification", "profile", "list"]);
    assert!(
        list.contains("Profile \"hook\" Type \"webhook\" Minimum Severity: report"),
        "{list}"
    );
    assert!(
        list.contains(&format!("Webhook POST {url} Format \"txt\"")),
        "{list}"
    );
    let raw: serde_json::Value = serde_json::from_str(&k.ok(&[
        "notification",
        "profile",
        "show",
        "--profile-name",
        "hook",
        "--raw",
    ]))
    .expect("json");
    assert_eq!(
        raw,
        serde_json::json!({"profile": "hook", "minSeverity": 0, "method": {"type": "webhook",
            "config": {"endpoint": url, "method": "POST", "format": "txt", "headers": "X-Team: backups"}}})
    );
    profile_test_sends_the_test_notification(k, &rx);
    a_failing_maintenance_sends_generic_error(k, &rx);
    a_snapshot_sends_its_report(&repo, &rx);
    below_the_minimum_severity_nothing_is_sent(k, &rx);
}

/// `notification profile test` sends Kopia's test-notification template.
fn profile_test_sends_the_test_notification(
    k: &kopr_testkit::cli::Kopr,
    rx: &mpsc::Receiver<Received>,
) {
    // `notification profile test` sends Kopia's test-notification template.
    k.ok(&["notification", "profile", "test", "--profile-name", "hook"]);
    let m = next(rx);
    assert_eq!(m.method, "POST");
    assert!(
        m.header("Subject")
            .is_some_and(|s| s.starts_with("kopr: test notification from ")),
        "{m:?}"
    );
    assert_eq!(m.header("X-Team"), Some("backups"));
    assert!(
        m.body.contains("this notification profile works"),
        "{}",
        m.body
    );
}

/// A failing maintenance run (not the owner) sends generic-error with the error.
fn a_failing_maintenance_sends_generic_error(
    k: &kopr_testkit::cli::Kopr,
    rx: &mpsc::Receiver<Received>,
) {
    // A failing maintenance run (not the owner) sends generic-error with the error.
    k.ok(&["maintenance", "set", "--owner", "someone@elsewhere"]);
    let out = k.run(&["maintenance", "run", "--full"]);
    assert!(!out.status.success());
    let m = next(rx);
    let subject = m.header("Subject").unwrap_or_default().to_string();
    assert!(
        subject.starts_with("kopr: Maintenance failed on "),
        "{subject}"
    );
    assert!(
        m.body.contains(
            "Maintenance failed: maintenance must be run by designated user: someone@elsewhere"
        ),
        "{}",
        m.body
    );
    assert!(m.body.contains("Details:   Full maintenance"), "{}", m.body);
    assert!(
        m.body.contains("Started:   ") && m.body.contains("Finished:  "),
        "{}",
        m.body
    );
}

/// A snapshot sends snapshot-report; a template customized for the profile is used.
fn a_snapshot_sends_its_report(repo: &Repo, rx: &mpsc::Receiver<Received>) {
    let k = &repo.k;
    // A snapshot sends snapshot-report; a template customized for the profile is used.
    k.ok(&["notification", "template", "set", "hook.snapshot-report.txt", "--from-file", {
        let f = repo.path().join("t.txt");
        std::fs::write(&f, "Subject: {{ .EventArgs.OverallStatus }}\n\n{{ range .EventArgs.Snapshots }}{{ .StatusCode }} {{ .TotalFiles }} files{{ .TotalFilesDelta | countDelta }}{{ end }}\n").expect("write");
        Box::leak(f.to_string_lossy().into_owned().into_boxed_str())
    }]);
    let templates = k.ok(&["notification", "template", "list"]);
    assert!(
        templates.contains("hook.snapshot-report.txt"),
        "{templates}"
    );
    assert!(
        templates
            .lines()
            .any(|l| l.starts_with("generic-error.txt") && l.contains("<built-in>")),
        "{templates}"
    );
    std::fs::write(repo.source.join("third.txt"), b"3").expect("write");
    k.ok(&["snapshot", "create", repo.source.to_str().expect("utf-8")]);
    let m = next(rx);
    let src = repo.source.canonicalize().expect("canonical");
    assert_eq!(
        m.header("Subject"),
        Some(format!("Created snapshot of {}", src.display()).as_str())
    );
    assert_eq!(m.body, "success 5 files (+1)");
    k.ok(&[
        "notification",
        "template",
        "remove",
        "hook.snapshot-report.txt",
    ]);
}

/// Below the minimum severity nothing is sent; bad options are refused with one line.
fn below_the_minimum_severity_nothing_is_sent(
    k: &kopr_testkit::cli::Kopr,
    rx: &mpsc::Receiver<Received>,
) {
    // Below the minimum severity nothing is sent: maintenance success is "success" (-10).
    k.ok(&["maintenance", "set", "--owner", "me"]);
    k.ok(&["maintenance", "run"]);
    k.ok(&[
        "notification",
        "profile",
        "delete",
        "--profile-name",
        "hook",
    ]);
    let out = k.run(&["notification", "profile", "test", "--profile-name", "hook"]);
    assert!(
        kopr_testkit::cli::one_error_line(&out).contains("notification profile \"hook\" not found")
    );
    assert!(
        rx.try_recv().is_err(),
        "an unexpected notification was sent"
    );

    // Bad options are refused with one line.
    for (args, msg) in [
        (vec!["--endpoint", "ftp://x"], "invalid endpoint"),
        (
            vec!["--endpoint", "http://x", "--http-header", "nocolon"],
            "invalid --http-header",
        ),
    ] {
        let mut all = vec![
            "notification",
            "profile",
            "configure",
            "webhook",
            "--profile-name",
            "bad",
        ];
        all.extend(args);
        let line = kopr_testkit::cli::one_error_line(&k.run(&all));
        assert!(line.contains(msg), "{line}");
    }
}

/// A minimal SMTP server on loopback (no STARTTLS, no AUTH): takes one message per
/// connection and hands (envelope recipients, data) to the test.
fn smtp_listener() -> (u16, mpsc::Receiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut w) = conn else { return };
            let mut r = BufReader::new(w.try_clone().expect("clone"));
            let _ = w.write_all(b"220 localhost test SMTP\r\n");
            let (mut rcpt, mut data) = (Vec::new(), String::new());
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    break;
                }
                let cmd = l.trim_end().to_string();
                let upper = cmd.to_ascii_uppercase();
                if upper.starts_with("EHLO") {
                    let _ = w.write_all(b"250-localhost\r\n250 8BITMIME\r\n");
                } else if upper.starts_with("RCPT TO:") {
                    rcpt.push(cmd[8..].trim().to_string());
                    let _ = w.write_all(b"250 OK\r\n");
                } else if upper == "DATA" {
                    let _ = w.write_all(b"354 go on\r\n");
                    loop {
                        let mut d = String::new();
                        if r.read_line(&mut d).unwrap_or(0) == 0 || d == ".\r\n" {
                            break;
                        }
                        data.push_str(&d);
                    }
                    let _ = w.write_all(b"250 queued\r\n");
                } else if upper == "QUIT" {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    let _ = w.write_all(b"250 OK\r\n");
                }
            }
            let _ = tx.send((std::mem::take(&mut rcpt), std::mem::take(&mut data)));
        }
    });
    (port, rx)
}

#[test]
fn email_notifications() {
    let repo = Repo::new();
    let k = &repo.k;
    let (port, rx) = smtp_listener();
    let port = port.to_string();
    configure_mail_profile(k, &port);
    let list = k.ok(&["notification", "profile", "list"]);
    assert!(
        list.contains("Profile \"mail\" Type \"email\" Minimum Severity: report"),
        "{list}"
    );
    assert!(
        list.contains("SMTP server: \"127.0.0.1\", Mail from: \"kopr@example.com\""),
        "{list}"
    );
    k.ok(&["notification", "profile", "test", "--profile-name", "mail"]);
    let (rcpt, data) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a mail");
    assert_eq!(rcpt, ["<ops@example.com>", "<boss@example.com>"]);
    assert!(
        data.contains("Subject: kopr: test notification from "),
        "{data}"
    );
    assert!(data.contains("From: kopr@example.com"), "{data}");
    assert!(data.contains("this notification profile works"), "{data}");
    // A failing maintenance run is mailed too.
    k.ok(&["maintenance", "set", "--owner", "someone@elsewhere"]);
    assert!(!k.run(&["maintenance", "run"]).status.success());
    let (_, data) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a mail");
    assert!(
        data.contains("Subject: kopr: Maintenance failed on "),
        "{data}"
    );
    assert!(
        data.contains("maintenance must be run by designated user"),
        "{data}"
    );
    // Missing fields are refused, as Kopia's.
    let out = k.run(&[
        "notification",
        "profile",
        "configure",
        "email",
        "--profile-name",
        "bad",
        "--smtp-server",
        "x",
    ]);
    assert!(kopr_testkit::cli::one_error_line(&out).contains("From address must be provided"));
    // A webhook profile cannot be turned into an e-mail one.
    let out = k.run(&[
        "notification",
        "profile",
        "configure",
        "webhook",
        "--profile-name",
        "mail",
        "--endpoint",
        "http://127.0.0.1:1/",
    ]);
    assert!(kopr_testkit::cli::one_error_line(&out)
        .contains("already exists but is not of type \"webhook\""));
}

/// Profile `mail`: e-mail through the SMTP listener on `port` to two recipients, as text.
fn configure_mail_profile(k: &Kopr, port: &str) {
    k.ok(&[
        "notification",
        "profile",
        "configure",
        "email",
        "--profile-name",
        "mail",
        "--smtp-server",
        "127.0.0.1",
        "--smtp-port",
        port,
        "--mail-from",
        "kopr@example.com",
        "--mail-to",
        "ops@example.com,boss@example.com",
        "--format",
        "txt",
    ]);
}
