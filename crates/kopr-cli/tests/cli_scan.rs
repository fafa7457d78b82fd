//! `kopr repository scan`: every repository under one filesystem directory (Velero's layout,
//! one per namespace) and under one prefix of an S3 bucket (s3s-fs on loopback) is found,
//! opened read-only (nothing in the storage changes) and summarized.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kopr_testkit::cli::{one_error_line, Kopr};
use kopr_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// Size and modification time of every file below a directory.
type State = BTreeMap<PathBuf, (u64, SystemTime)>;

/// Every file below `dir`: size and modification time.
fn state(dir: &Path) -> State {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), (md.len(), md.modified().unwrap()));
            }
        }
    }
    out
}

fn source(dir: &Path, seed: u64) -> PathBuf {
    let src = dir.join(format!("src{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), kopr_testkit::random_bytes(seed, 50_000)).unwrap();
    src
}

#[test]
fn scan_finds_every_filesystem_repository_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bucket");
    let ns = ["alpha", "beta", "gamma"];
    create_namespaces(tmp.path(), &root, &ns);
    // Something that is not a repository beside them.
    std::fs::create_dir_all(root.join("velero/restic/x")).unwrap();
    std::fs::write(root.join("velero/restic/x/config"), b"not kopia").unwrap();

    let before = state(&root);
    let scanner = Kopr::new(BIN, &tmp.path().join("none/repository.config"));
    let out = scanner.ok(&[
        "repository",
        "scan",
        "filesystem",
        "--path",
        root.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(state(&root), before, "the scan changed the storage");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 3, "{out}");
    check_json_report(&v, &ns);
    text_view_narrowed_by_prefix(&scanner, &root, &before);
    a_wrong_password_fails_every_repository(&scanner, &root, &before);

    // Nothing to find.
    let o = scanner.run(&[
        "repository",
        "scan",
        "filesystem",
        "--path",
        tmp.path().join("cfg0").to_str().unwrap(),
    ]);
    assert!(one_error_line(&o).contains("no Kopia repository found"));
}

/// A repository under `root/velero/kopia/<n>` for each namespace, with 1, 2, 3… snapshots;
/// `beta` has run maintenance and freed a deleted snapshot's data.
fn create_namespaces(tmp: &Path, root: &Path, ns: &[&str]) {
    for (i, n) in ns.iter().enumerate() {
        let k = Kopr::new(BIN, &tmp.join(format!("cfg{i}/repository.config")));
        k.create_filesystem(&root.join("velero/kopia").join(n));
        let src = source(tmp, i as u64);
        for _ in 0..=i {
            k.ok(&["snapshot", "create", src.to_str().unwrap()]);
        }
        if *n == "beta" {
            // beta has run maintenance and has a deleted snapshot's data to free.
            std::fs::write(src.join("g"), kopr_testkit::random_bytes(77, 40_000)).unwrap();
            let out = k.ok(&["snapshot", "create", src.to_str().unwrap(), "--json"]);
            let id = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            k.ok(&["snapshot", "delete", &id, "--delete"]);
            k.ok(&["maintenance", "run", "--full", "--safety=none"]);
        }
    }
}

/// The `--json` report: one entry per namespace, in order, with its counts and maintenance.
fn check_json_report(v: &[serde_json::Value], ns: &[&str; 3]) {
    for (i, (r, n)) in v.iter().zip(ns.iter().copied()).enumerate() {
        assert!(
            r["location"]
                .as_str()
                .unwrap()
                .ends_with(&format!("velero/kopia/{n}")),
            "{r}"
        );
        assert!(r.get("error").is_none(), "{r}");
        let expected = if n == "beta" { 2 } else { i + 1 };
        assert_eq!(r["snapshotCount"], expected, "{r}");
        assert!(r["size"].as_u64().unwrap() > 50_000, "{r}");
        assert!(
            r["lastSnapshot"]["source"]
                .as_str()
                .unwrap()
                .contains(&format!("src{i}")),
            "{r}"
        );
        assert!(!r["maintenanceOwner"].as_str().unwrap().is_empty(), "{r}");
    }
    // Only beta ran maintenance, a full cycle that succeeded.
    assert_eq!(v[1]["lastFull"]["success"], true, "{}", v[1]);
    assert!(v[1]["lastQuick"].is_object(), "{}", v[1]);
    assert!(v[0]["lastFull"].is_null() && v[2]["lastQuick"].is_null());
}

/// The text view, and --prefix narrowing the search to one namespace.
fn text_view_narrowed_by_prefix(scanner: &Kopr, root: &Path, before: &State) {
    let text = scanner.ok(&[
        "repository",
        "scan",
        "filesystem",
        "--path",
        root.to_str().unwrap(),
        "--prefix",
        "velero/kopia/gamma",
    ]);
    assert!(text.contains("velero/kopia/gamma\n  Size:"), "{text}");
    assert!(text.contains("  Snapshots:          3, last "), "{text}");
    assert!(text.contains("  Last full run:      never"), "{text}");
    assert!(
        text.contains("  Full cycle now:     would free 0 blobs (0 B)"),
        "{text}"
    );
    assert!(!text.contains("alpha"), "{text}");
    assert_eq!(&state(root), before);
}

/// A wrong password: every repository reports it, the command fails, nothing is written.
fn a_wrong_password_fails_every_repository(scanner: &Kopr, root: &Path, before: &State) {
    let wrong = scanner.clone().with_password("nope");
    let o = wrong.run(&[
        "repository",
        "scan",
        "filesystem",
        "--path",
        root.to_str().unwrap(),
    ]);
    assert_eq!(
        one_error_line(&o),
        "ERROR: 3 of 3 repositories could not be read"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("ERROR: invalid repository password").count(),
        3,
        "{text}"
    );
    assert_eq!(&state(root), before);
}

#[test]
fn scan_finds_repositories_under_an_s3_prefix() {
    let Some(srv) = S3Server::start() else { return };
    srv.create_bucket("fleet");
    let tmp = tempfile::tempdir().unwrap();
    let s3 = |verb: &str, prefix: &str| -> Vec<String> {
        vec![
            "repository".into(),
            verb.into(),
            "s3".into(),
            "--bucket=fleet".into(),
            format!("--prefix={prefix}"),
            format!("--access-key={ACCESS_KEY}"),
            format!("--secret-access-key={SECRET_KEY}"),
            format!("--endpoint={}", srv.endpoint()),
            "--disable-tls".into(),
        ]
    };
    for (i, ns) in ["ns1", "ns2"].iter().enumerate() {
        let k = Kopr::new(BIN, &tmp.path().join(format!("cfg{i}/repository.config")));
        let mut args = s3("create", &format!("velero/kopia/{ns}/"));
        args.push("--format-block-key-derivation-algorithm=testing-only-insecure".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        k.cmd(&args)
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .status()
            .unwrap()
            .success()
            .then_some(())
            .expect("create");
        let src = source(tmp.path(), i as u64);
        k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    }
    // One outside the scanned prefix.
    let k = Kopr::new(BIN, &tmp.path().join("cfgx/repository.config"));
    let mut args = s3("create", "other/");
    args.push("--format-block-key-derivation-algorithm=testing-only-insecure".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(k.cmd(&args).status().unwrap().success());

    let before = state(&srv.data());
    let scanner = Kopr::new(BIN, &tmp.path().join("none/repository.config"));
    let mut args = s3("scan", "velero/kopia/");
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scanner.ok(&args);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let locations: Vec<&str> = v.iter().map(|r| r["location"].as_str().unwrap()).collect();
    assert_eq!(
        locations,
        [
            "s3://fleet/velero/kopia/ns1/",
            "s3://fleet/velero/kopia/ns2/"
        ],
        "{out}"
    );
    for r in &v {
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["snapshotCount"], 1, "{r}");
    }
    assert_eq!(state(&srv.data()), before, "the scan changed the bucket");
}

/// Creates repositories under `prefixes` with `create(prefix)`'s flags and scans `scan`'s
/// location, all with `env`; returns the scan's JSON.
fn scan_cloud(
    env: &[(&str, String)],
    create: &dyn Fn(&str) -> Vec<String>,
    prefixes: &[&str],
    scan: &[String],
) -> Vec<serde_json::Value> {
    let tmp = tempfile::tempdir().unwrap();
    for (i, p) in prefixes.iter().enumerate() {
        let k = Kopr::new(BIN, &tmp.path().join(format!("cfg{i}/repository.config")));
        let mut args = create(p);
        args.push("--format-block-key-derivation-algorithm=testing-only-insecure".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = k.cmd(&args);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("XDG_CACHE_HOME", tmp.path().join("cache"));
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let src = source(tmp.path(), i as u64);
        let mut c = k.cmd(&["snapshot", "create", src.to_str().unwrap()]);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("XDG_CACHE_HOME", tmp.path().join("cache"));
        assert!(c.output().unwrap().status.success());
    }
    let scanner = Kopr::new(BIN, &tmp.path().join("none/repository.config"));
    let mut args: Vec<&str> = scan.iter().map(String::as_str).collect();
    args.push("--json");
    let mut c = scanner.cmd(&args);
    c.envs(env.iter().map(|(k, v)| (k, v)));
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scan_finds_repositories_in_azure_and_gcs() {
    use kopr_testkit::servers::Server;

    if let Some(srv) = Server::azurite() {
        scan_azure(&srv.url());
    }
    if let Some(srv) = Server::fake_gcs() {
        scan_gcs(&srv.url());
    }
}

/// Two repositories under `velero/` and one elsewhere in an Azurite container at `url`: the
/// scan of `velero/` finds the two.
fn scan_azure(url: &str) {
    use kopr_blob::azure::{AzureOptions, AzureStorage, ENDPOINT_ENV};
    use kopr_testkit::servers::{AZURITE_ACCOUNT, AZURITE_KEY};

    let st = AzureStorage::with_endpoint(
        AzureOptions {
            container: "fleet".into(),
            storage_account: AZURITE_ACCOUNT.into(),
            storage_key: AZURITE_KEY.into(),
            ..Default::default()
        },
        Some(url),
    )
    .unwrap();
    st.create_container().unwrap();
    let flags = |verb: &str, prefix: &str| -> Vec<String> {
        vec![
            "repository".into(),
            verb.into(),
            "azure".into(),
            "--container=fleet".into(),
            format!("--prefix={prefix}"),
            format!("--storage-account={AZURITE_ACCOUNT}"),
            format!("--storage-key={AZURITE_KEY}"),
        ]
    };
    let v = scan_cloud(
        &[(ENDPOINT_ENV, url.to_string())],
        &|p| flags("create", p),
        &["velero/kopia/a/", "velero/kopia/b/", "elsewhere/"],
        &flags("scan", "velero/"),
    );
    let locations: Vec<&str> = v.iter().map(|r| r["location"].as_str().unwrap()).collect();
    assert_eq!(
        locations,
        [
            "azure://fleet/velero/kopia/a/",
            "azure://fleet/velero/kopia/b/"
        ],
        "{v:?}"
    );
    assert!(
        v.iter()
            .all(|r| r["snapshotCount"] == 1 && r.get("error").is_none()),
        "{v:?}"
    );
}

/// Two repositories in a fake-gcs-server bucket at `url`: the scan of the whole bucket finds
/// both.
fn scan_gcs(url: &str) {
    use kopr_blob::gcs::{GcsOptions, GcsStorage, EMULATOR_ENV};

    let st = GcsStorage::with_endpoint(
        GcsOptions {
            bucket: "fleet".into(),
            ..Default::default()
        },
        url,
        false,
    )
    .unwrap();
    st.create_bucket().unwrap();
    let flags = |verb: &str, prefix: &str| -> Vec<String> {
        vec![
            "repository".into(),
            verb.into(),
            "gcs".into(),
            "--bucket=fleet".into(),
            format!("--prefix={prefix}"),
        ]
    };
    let v = scan_cloud(
        &[(EMULATOR_ENV, url.to_string())],
        &|p| flags("create", p),
        &["velero/kopia/a/", "velero/kopia/b/"],
        &flags("scan", ""),
    );
    let locations: Vec<&str> = v.iter().map(|r| r["location"].as_str().unwrap()).collect();
    assert_eq!(
        locations,
        ["gcs://fleet/velero/kopia/a/", "gcs://fleet/velero/kopia/b/"],
        "{v:?}"
    );
    assert!(
        v.iter()
            .all(|r| r["snapshotCount"] == 1 && r.get("error").is_none()),
        "{v:?}"
    );
}
