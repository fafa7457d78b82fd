//! The web UI in a real headless browser: Debian's Chromium driven through chromedriver
//! (WebDriver, `fantoccini`) against `kopr server start` on a loopback port. Logs in (a wrong
//! password is refused), lists sources and snapshots, browses a snapshot's tree and downloads a
//! file through the page's own link (bytes compared), restores a directory and starts a
//! snapshot from the page and follows their tasks to the end, shows the repository's statistics with the size histogram, and the maintenance page
//! with the `maintenance explain` timeline of a repository with a deleted snapshot. Every page
//! is saved to `target/ui-screenshots/NAME.png`. Without chromium and chromedriver the test
//! says SKIPPED (and fails under CI, whose `.ci/run` installs them).

mod server_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use server_common::{Repo, Server, SERVER_PASSWORD, SERVER_USER};

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(exe: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // Bounded wait for its port (at most 30 s).
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("write png");
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            shot(c, "failure").await;
            let page = c.source().await.unwrap_or_default();
            panic!(
                "{css} never appeared ({e}); the page (target/ui-screenshots/failure.png):\n{page}"
            );
        }
    }
}

async fn text(c: &Client, css: &str) -> String {
    wait_for(c, css).await.text().await.expect("text")
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.expect("find").len()
}

/// Fetches `href` in the page (with the page's session) and returns the bytes.
async fn fetch_in_page(c: &Client, href: &str) -> Vec<u8> {
    let script = r#"
        const [href, done] = arguments;
        fetch(href).then(r => r.arrayBuffer()).then(b => {
            const u = new Uint8Array(b); let s = "";
            for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
            done(btoa(s));
        }, e => done("ERROR " + e));
    "#;
    let v = c
        .execute_async(script, vec![serde_json::json!(href)])
        .await
        .expect("fetch in page");
    let s = v.as_str().expect("string result");
    assert!(!s.starts_with("ERROR"), "{s}");
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// Follows the task page until the task is no longer running (bounded: 60 s); its status.
async fn task_end(c: &Client) -> String {
    wait_for(c, "#task").await;
    let mut status = String::new();
    for _ in 0..600 {
        status = text(c, "#task-status").await;
        if status != "RUNNING" && status != "CANCELING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}

async fn login(c: &Client, user: &str, password: &str) {
    wait_for(c, "#login-form").await;
    c.find(Locator::Css("#username"))
        .await
        .expect("user field")
        .send_keys(user)
        .await
        .expect("type");
    c.find(Locator::Css("#password"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    c.find(Locator::Css("#login-button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
}

#[test]
fn web_ui_in_a_real_browser() {
    const TEST: &str = "web_ui_in_a_real_browser";
    let (Some(driver_exe), Some(chromium)) = (
        find("KOPR_CHROMEDRIVER", &["chromedriver"]),
        find("KOPR_CHROMIUM", &["chromium", "chromium-browser"]),
    ) else {
        kopr_testkit::env::skip(TEST, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let repo = Repo::new();
    let server = Server::start_with_password(&repo.k);
    let driver = start_driver(&driver_exe);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1600", "--lang=en-US"],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        let r = run_ui(&c, &repo, &server.url).await;
        let _ = c.close().await;
        r
    });
}

async fn run_ui(c: &Client, repo: &Repo, url: &str) {
    login_is_required(c, url).await;
    sources_and_snapshots(c, repo).await;
    browse_and_download(c).await;
    restore_from_the_page(c, repo).await;
    snapshot_from_the_page(c, repo).await;
    repository_page(c, repo).await;
    maintenance_page(c, repo).await;
    logout(c, url).await;
}

/// No page or API route without logging in: the browser's own requests are refused (the API
/// with 401, pages sent to the login form); a wrong password is refused, the right one logs in.
async fn login_is_required(c: &Client, url: &str) {
    c.goto(url).await.expect("open");
    wait_for(c, "#login-form").await;
    for (method, path) in kopr_server::api::ROUTES {
        let script = r#"
            const [method, path, done] = arguments;
            fetch(path, {method, headers: {"X-Requested-With": "kopr"}})
                .then(r => done([r.status, new URL(r.url).pathname]), e => done([0, String(e)]));
        "#;
        let v = c
            .execute_async(
                script,
                vec![serde_json::json!(method), serde_json::json!(path)],
            )
            .await
            .expect("fetch");
        if path.starts_with("/api/") {
            assert_eq!(v[0], 401, "{method} {path}: {v}");
        } else {
            assert_eq!(v, serde_json::json!([200, "/login"]), "{method} {path}");
        }
    }
    c.goto(&format!("{url}#/maintenance")).await.expect("open");
    wait_for(c, "#login-form").await;
    c.goto(url).await.expect("open");
    wait_for(c, "#login-form").await;
    assert!(c.current_url().await.expect("url").path() == "/login");
    shot(c, "login").await;
    login(c, SERVER_USER, "wrong-password").await;
    let err = text(c, "#login-error").await;
    assert_eq!(err, "Invalid user name or password.");
    shot(c, "login-refused").await;
    login(c, SERVER_USER, SERVER_PASSWORD).await;
}

/// Sources and snapshots.
async fn sources_and_snapshots(c: &Client, repo: &Repo) {
    wait_for(c, "#sources").await;
    let src = repo.source.canonicalize().expect("canonical");
    let link = text(c, "a.source-link").await;
    assert!(link.ends_with(&format!(":{}", src.display())), "{link}");
    shot(c, "sources").await;
    wait_for(c, "a.source-link")
        .await
        .click()
        .await
        .expect("click");
    wait_for(c, "#snapshots").await;
    assert_eq!(count(c, "#snapshots tr").await, 2, "one snapshot row");
    assert_eq!(text(c, "#snapshots td.mono").await, repo.snapshot);
    shot(c, "snapshots").await;
}

/// Browse the tree, down to the big file, and download it through the page's link.
async fn browse_and_download(c: &Client) {
    wait_for(c, "a.browse").await.click().await.expect("click");
    wait_for(c, "#entries").await;
    let mut names = Vec::new();
    for e in c
        .find_all(Locator::Css("#entries tr td:first-child"))
        .await
        .expect("rows")
    {
        names.push(e.text().await.expect("text"));
    }
    assert_eq!(names[..3], ["docs/", "hello.txt", "later.txt"]);
    assert!(names[3].starts_with("link"), "{names:?}");
    shot(c, "browse").await;
    wait_for(c, "a.dir").await.click().await.expect("click");
    wait_for(c, "#browse-path").await;
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(
            "//a[contains(@class,'dir') and text()='deep/']",
        ))
        .await
        .expect("deep/")
        .click()
        .await
        .expect("click");
    let a = wait_for(c, "a.file-download[data-name='big.bin']").await;
    let href = a.attr("href").await.expect("href").expect("a link");
    assert!(href.contains("fname=big.bin"), "{href}");
    shot(c, "browse-deep").await;
    let got = fetch_in_page(c, &href).await;
    assert!(
        got == server_common::big_file(),
        "downloaded {} bytes that differ",
        got.len()
    );
}

/// Restore the browsed directory from the page and follow the task.
async fn restore_from_the_page(c: &Client, repo: &Repo) {
    let target = repo.path().join("restored-deep");
    wait_for(c, "#restore-target")
        .await
        .send_keys(target.to_str().expect("utf-8"))
        .await
        .expect("type");
    wait_for(c, "#restore").await.click().await.expect("click");
    assert_eq!(task_end(c).await, "SUCCESS", "{}", text(c, "#task").await);
    shot(c, "restore-task").await;
    assert!(std::fs::read(target.join("big.bin")).expect("restored") == server_common::big_file());
}

/// Start a snapshot of a new path and follow its task to the end.
async fn snapshot_from_the_page(c: &Client, repo: &Repo) {
    let new_src = repo.path().join("new-source");
    std::fs::create_dir_all(&new_src).expect("mkdir");
    std::fs::write(new_src.join("one.txt"), b"one").expect("write");
    std::fs::write(new_src.join("two.txt"), b"two").expect("write");
    wait_for(c, "#nav-sources")
        .await
        .click()
        .await
        .expect("click");
    wait_for(c, "#new-path")
        .await
        .send_keys(new_src.to_str().expect("utf-8"))
        .await
        .expect("type");
    shot(c, "start-snapshot").await;
    wait_for(c, "#start-snapshot")
        .await
        .click()
        .await
        .expect("click");
    assert_eq!(task_end(c).await, "SUCCESS", "{}", text(c, "#task").await);
    let snap_id = text(c, "#task-snapshot").await;
    shot(c, "task").await;
    let listed = repo
        .k
        .ok(&["snapshot", "ls", new_src.to_str().expect("utf-8"), "--json"]);
    assert!(listed.contains(&snap_id), "{listed}");
    wait_for(c, "#nav-tasks")
        .await
        .click()
        .await
        .expect("click");
    wait_for(c, "#tasks").await;
    assert_eq!(
        count(c, "#tasks td.status-SUCCESS").await,
        2,
        "the restore and the snapshot"
    );
    shot(c, "tasks").await;
}

/// Repository: status, content statistics with the histogram, size over time.
async fn repository_page(c: &Client, repo: &Repo) {
    wait_for(c, "#nav-status")
        .await
        .click()
        .await
        .expect("click");
    wait_for(c, "#histogram").await;
    let stats: serde_json::Value =
        serde_json::from_str(&repo.k.ok(&["content", "stats", "--json"])).expect("json");
    assert_eq!(text(c, "#content-count").await, stats["count"].to_string());
    assert_eq!(count(c, "#histogram rect.bar").await, 8);
    assert_eq!(
        count(c, "#size-chart circle.point").await,
        2,
        "two live snapshots"
    );
    shot(c, "repository").await;
}

/// Maintenance: owner, runs with messages, and the explain timeline with the deleted
/// snapshot on it.
async fn maintenance_page(c: &Client, repo: &Repo) {
    wait_for(c, "#nav-maintenance")
        .await
        .click()
        .await
        .expect("click");
    wait_for(c, "#explain-timeline").await;
    let info: serde_json::Value =
        serde_json::from_str(&repo.k.ok(&["maintenance", "info", "--json"])).expect("json");
    assert_eq!(
        text(c, "#maintenance-owner").await,
        info["owner"].as_str().expect("owner")
    );
    assert!(count(c, "#maintenance-runs td.ok").await >= 1);
    assert_eq!(count(c, "#explain-timeline g.timeline-snapshot").await, 1);
    let row = wait_for(c, "#explain-timeline g.timeline-snapshot title").await;
    let title = row.html(true).await.expect("title");
    assert!(title.contains(&repo.deleted[..8]), "{title}");
    shot(c, "maintenance").await;
}

/// Logging out ends the session.
async fn logout(c: &Client, url: &str) {
    wait_for(c, "#logout").await.click().await.expect("click");
    wait_for(c, "#login-form").await;
    c.goto(url).await.expect("open");
    wait_for(c, "#login-form").await;
}
