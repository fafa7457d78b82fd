//! Drives the real `kopr` binary: create, connect, status, content/blob/index listings,
//! disconnect, reconnect with right and wrong passwords.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_repo::{OpenOptions, Repository};

struct Env {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    config: PathBuf,
    home: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        Env {
            repo: dir.path().join("repo"),
            config: dir.path().join("cfg/repository.config"),
            home: dir.path().join("home"),
            _dir: dir,
        }
    }

    fn kopr(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kopr"));
        c.args(args)
            .env_remove("KOPR_PASSWORD")
            .env_remove("KOPIA_PASSWORD")
            .env("KOPR_CONFIG_PATH", &self.config)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .stdin(std::process::Stdio::null());
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kopr(args, &[("KOPR_PASSWORD", "pass1234")]);
        assert!(
            out.status.success(),
            "kopr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn create(&self) {
        self.ok(&[
            "repository",
            "create",
            "filesystem",
            "--path",
            self.repo.to_str().unwrap(),
        ]);
    }
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error must be one line: {err}");
    assert!(err.starts_with("ERROR: "), "{err}");
    err
}

fn write_contents(repo: &Path, items: &[Vec<u8>]) -> Vec<String> {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(repo).unwrap());
    let r = Repository::open(st, "pass1234", OpenOptions::default()).unwrap();
    let ids = items
        .iter()
        .map(|d| {
            r.contents()
                .write_content(d, None, kopr_format::compression::by_name("zstd-fastest"))
                .unwrap()
                .to_string()
        })
        .collect();
    r.flush().unwrap();
    ids
}

#[test]
fn create_status_and_listings() {
    let env = Env::new();
    env.create();
    assert!(
        env.repo.join("kopia.repository.f").exists() || env.repo.join("kopia.repository").exists()
    );
    let status = env.ok(&["repository", "status"]);
    for want in [
        "Hash:                BLAKE3-256-128",
        "Encryption:          AES256-GCM-HMAC-SHA256",
        "Splitter:            DYNAMIC-1M-BUZHASH",
        "Format version:      3",
        "Index Format:        v2",
        "Epoch Manager:       enabled",
    ] {
        assert!(status.contains(want), "status lacks {want:?}:\n{status}");
    }
    let js: serde_json::Value =
        serde_json::from_str(&env.ok(&["repository", "status", "--json"])).unwrap();
    assert_eq!(js["contentFormat"]["hash"], "BLAKE3-256-128");
    assert_eq!(js["objectFormat"]["splitter"], "DYNAMIC-1M-BUZHASH");

    // a new repository holds only the default global policy (one manifest content)
    let fresh = env.ok(&["content", "stats"]);
    assert!(fresh.starts_with("Count: 1\nTotal Bytes: "), "{fresh}");
    let only = env.ok(&["content", "ls"]);
    assert_eq!(only.lines().count(), 1);
    assert!(only.starts_with('m'), "{only}");

    let text = b"kopr ".repeat(4000);
    let small = b"0123456789abcdefghij".to_vec();
    let ids = write_contents(&env.repo, &[text.clone(), small.clone()]);

    let listed = env.ok(&["content", "ls", "--prefix", ""]);
    let listed: String = listed
        .lines()
        .filter(|l| !l.starts_with('m'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);

    let shown = Command::new(env!("CARGO_BIN_EXE_kopr"))
        .args(["content", "show", &ids[0]])
        .env("KOPR_CONFIG_PATH", &env.config)
        .env("KOPR_PASSWORD", "pass1234")
        .env("XDG_CACHE_HOME", env.home.join("cache"))
        .output()
        .unwrap();
    assert!(shown.status.success());
    assert_eq!(shown.stdout, text);

    content_stats_by_method_and_size(&env);
    blob_and_index_listings(&env);
}

/// `content stats` of the default policy and two contents: counts, bytes by compression
/// method, and the histogram's eight rows.
fn content_stats_by_method_and_size(env: &Env) {
    let stats = env.ok(&["content", "stats"]);
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines[0], "Count: 3");
    assert!(lines[1].starts_with("Total Bytes: 20"), "{stats}");
    assert!(lines[2].starts_with("Total Packed: "), "{stats}");
    assert_eq!(lines[3], "By Method:");
    assert!(
        lines[4].starts_with("  (uncompressed)         count: 2 size: "),
        "{stats}"
    );
    assert!(
        lines[5].starts_with("  zstd-fastest           count: 1 size: 20 KB packed: "),
        "{stats}"
    );
    assert!(lines.contains(&"Histogram:"));
    assert_eq!(lines.iter().filter(|l| l.contains(" between ")).count(), 8);
    assert!(
        stats.contains("        0 between 0 B and 10 B (total 0 B)\n"),
        "{stats}"
    );
}

/// `blob ls` (with and without a prefix), `blob stats` and `index ls --summary` of the
/// repository with one pack and one index written.
fn blob_and_index_listings(env: &Env) {
    let blobs = env.ok(&["blob", "ls"]);
    assert!(
        blobs.lines().any(|l| l.starts_with("kopia.repository ")),
        "{blobs}"
    );
    assert!(blobs.lines().any(|l| l.starts_with('p')), "{blobs}");
    assert!(blobs.lines().any(|l| l.starts_with("xn0_")), "{blobs}");
    let only_p = env.ok(&["blob", "ls", "--prefix", "p"]);
    assert_eq!(only_p.lines().count(), 1);
    let bstats = env.ok(&["blob", "stats"]);
    assert!(bstats.starts_with("Count: "), "{bstats}");
    let idx = env.ok(&["index", "ls", "--summary"]);
    assert!(idx.lines().next().unwrap().starts_with("xn0_"), "{idx}");
    assert!(idx.ends_with("total 2 indexes\n"), "{idx}");
}

#[test]
fn disconnect_and_reconnect_with_right_and_wrong_password() {
    let env = Env::new();
    env.create();
    let ids = write_contents(&env.repo, &[b"some data".to_vec()]);
    env.ok(&["repository", "disconnect"]);
    assert!(!env.config.exists());
    let err = one_line_error(&env.kopr(&["content", "ls"], &[("KOPR_PASSWORD", "pass1234")]));
    assert!(err.contains("not connected"), "{err}");

    let path = env.repo.to_str().unwrap();
    let before: Vec<_> = walk(&env.repo);
    let err = one_line_error(&env.kopr(
        &["repository", "connect", "filesystem", "--path", path],
        &[("KOPIA_PASSWORD", "wrong")],
    ));
    assert!(err.contains("invalid repository password"), "{err}");
    assert!(
        !env.config.exists(),
        "no config written on a failed connect"
    );
    assert_eq!(walk(&env.repo), before, "nothing written to the repository");

    let out = env.kopr(
        &["repository", "connect", "filesystem", "--path", path],
        &[("KOPIA_PASSWORD", "pass1234")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the password was persisted: no env needed now
    let out = env.kopr(&["content", "ls"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.lines()
            .filter(|l| !l.starts_with('m'))
            .collect::<Vec<_>>(),
        vec![ids[0].as_str()]
    );
    // --password flag wins over a wrong environment variable
    let out = env.kopr(
        &["--password", "pass1234", "content", "ls"],
        &[("KOPR_PASSWORD", "nope")],
    );
    assert!(out.status.success());
}

#[test]
fn the_derived_key_is_remembered_beside_the_password_and_never_accepts_a_wrong_one() {
    let env = Env::new();
    env.create();
    let key_file = PathBuf::from(format!("{}.kopr-key", env.config.display()));
    assert!(key_file.exists(), "create remembers the derived key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let cached = std::fs::read(&key_file).unwrap();
    write_contents(&env.repo, &[b"keyed".to_vec()]);
    // the remembered key opens the repository; a wrong password is still refused
    env.ok(&["content", "ls"]);
    let err = one_line_error(&env.kopr(
        &["--password", "wrong", "content", "ls"],
        &[("KOPR_PASSWORD", "pass1234")],
    ));
    assert!(err.contains("invalid repository password"), "{err}");
    // a damaged or foreign cache is ignored and rewritten from the password
    std::fs::write(
        &key_file,
        b"{\"uniqueID\":\"00\",\"check\":\"x\",\"key\":\"zz\"}",
    )
    .unwrap();
    env.ok(&["content", "ls"]);
    assert_eq!(std::fs::read(&key_file).unwrap(), cached);
    let mut tampered: serde_json::Value = serde_json::from_slice(&cached).unwrap();
    tampered["key"] = serde_json::Value::String("11".repeat(32));
    std::fs::write(&key_file, serde_json::to_vec(&tampered).unwrap()).unwrap();
    env.ok(&["content", "ls"]);
    assert_eq!(std::fs::read(&key_file).unwrap(), cached);
    env.ok(&["repository", "disconnect"]);
    assert!(!key_file.exists(), "disconnect forgets the key");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let env = Env::new();
    connecting_to_no_repository_fails(&env);
    creating_badly_fails(&env);
    // malformed flag: clap's usage error, non-zero
    let out = env.kopr(&["repository", "create", "filesystem"], &[]);
    assert!(!out.status.success());
    // invalid content id
    let err = one_line_error(&env.kopr(
        &["content", "show", "zz!"],
        &[("KOPR_PASSWORD", "pass1234")],
    ));
    assert!(err.contains("zz!"), "{err}");
}

/// Connecting to a missing directory or an empty one names what is wrong.
fn connecting_to_no_repository_fails(env: &Env) {
    // missing repository
    let missing = env.home.join("nowhere");
    let err = one_line_error(&env.kopr(
        &[
            "repository",
            "connect",
            "filesystem",
            "--path",
            missing.to_str().unwrap(),
        ],
        &[("KOPR_PASSWORD", "x")],
    ));
    assert!(
        err.contains("nowhere") || err.contains("not initialized"),
        "{err}"
    );
    // an empty directory is not a repository
    std::fs::create_dir_all(&env.repo).unwrap();
    let err = one_line_error(&env.kopr(
        &[
            "repository",
            "connect",
            "filesystem",
            "--path",
            env.repo.to_str().unwrap(),
        ],
        &[("KOPR_PASSWORD", "x")],
    ));
    assert!(err.contains("not initialized"), "{err}");
}

/// Creating over a repository, with an unknown algorithm (nothing written) or without a
/// password (and no terminal) fails with one line.
fn creating_badly_fails(env: &Env) {
    // create twice
    env.create();
    let err = one_line_error(&env.kopr(
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            env.repo.to_str().unwrap(),
        ],
        &[("KOPR_PASSWORD", "pass1234")],
    ));
    assert!(err.contains("already initialized"), "{err}");
    // unknown algorithm
    let other = env.home.join("other");
    let out = env.kopr(
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            other.to_str().unwrap(),
            "--block-hash",
            "MD5",
        ],
        &[("KOPR_PASSWORD", "pass1234")],
    );
    let err = one_line_error(&out);
    assert!(err.contains("MD5"), "{err}");
    assert!(!other.join("kopia.repository.f").exists());
    // no password and no terminal
    let out = env.kopr(
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            other.to_str().unwrap(),
        ],
        &[],
    );
    let err = one_line_error(&out);
    assert!(err.contains("password"), "{err}");
}

#[test]
fn chacha_and_other_hashes_can_be_chosen_at_create() {
    let env = Env::new();
    env.ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        env.repo.to_str().unwrap(),
        "--block-hash",
        "BLAKE3-256",
        "--encryption",
        "CHACHA20-POLY1305-HMAC-SHA256",
        "--object-splitter",
        "FIXED-4M",
        "--format-block-key-derivation-algorithm",
        "pbkdf2-sha256-600000",
    ]);
    let status = env.ok(&["repository", "status"]);
    assert!(
        status.contains("Hash:                BLAKE3-256\n"),
        "{status}"
    );
    assert!(
        status.contains("Encryption:          CHACHA20-POLY1305-HMAC-SHA256\n"),
        "{status}"
    );
    assert!(
        status.contains("Splitter:            FIXED-4M\n"),
        "{status}"
    );
    let ids = write_contents(&env.repo, &[vec![5u8; 1000]]);
    let out = env.ok(&["content", "ls"]);
    assert_eq!(
        out.lines()
            .filter(|l| !l.starts_with('m'))
            .collect::<Vec<_>>(),
        vec![ids[0].as_str()]
    );
}

fn walk(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::metadata(&p).unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// `--override-username/--override-hostname` at create and connect: the repository's
/// maintenance owner and the snapshots' source take that identity (Velero's
/// `default@default`), so maintenance runs as the owner without `--force`.
#[test]
fn override_identity_owns_maintenance_and_names_snapshot_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr_testkit::cli::Kopr::new(env!("CARGO_BIN_EXE_kopr"), &tmp.path().join("c.json"));
    let repo = tmp.path().join("repo");
    k.ok(&[
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
        "--override-username",
        "default",
        "--override-hostname",
        "default",
    ]);
    let info = k.ok(&["maintenance", "info"]);
    assert!(info.starts_with("Owner: default@default\n"), "{info}");
    let src = tmp.path().join("mount");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let ls = k.ok(&["snapshot", "ls", "--all"]);
    assert!(
        ls.starts_with(&format!("default@default:{}\n", src.display())),
        "{ls}"
    );
    k.ok(&["maintenance", "run", "--full"]);
    // Another identity on the same repository is not the owner.
    let other =
        kopr_testkit::cli::Kopr::new(env!("CARGO_BIN_EXE_kopr"), &tmp.path().join("o.json"));
    other.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--override-username",
        "alice",
        "--override-hostname",
        "laptop",
    ]);
    let refused = other.run(&["maintenance", "run", "--full"]);
    let line = kopr_testkit::cli::one_error_line(&refused);
    assert!(line.contains("default@default"), "{line}");
}

/// Two repositories connected through config files of the same relative name, in two
/// directories, keep apart caches (each repository's format blob and indexes): the default
/// cache directory, as Kopia's, is derived from the repository's unique id and the config
/// file's absolute path, and a cache directory given relative is stored absolute.
#[test]
fn repositories_connected_through_the_same_relative_config_name_do_not_share_a_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let kopr = |cwd: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kopr"))
            .args(["--config-file", "repository.config"])
            .args(args)
            .current_dir(cwd)
            .env_remove("KOPR_CONFIG_PATH")
            .env_remove("KOPIA_PASSWORD")
            .env_remove("KOPIA_CACHE_DIRECTORY")
            .env("KOPR_PASSWORD", "pass1234")
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join("cache"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let what = format_args!("kopr {args:?} in {}", cwd.display());
        kopr_testkit::cli::succeeded(&out, what);
        String::from_utf8(out.stdout).unwrap()
    };
    let cache_of = |cwd: &Path| -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cwd.join("repository.config")).unwrap()).unwrap();
        cfg["caching"]["cacheDirectory"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
        kopr(d, &["repository", "create", "filesystem", "--path", "repo"]);
    }
    // Each opens after the other has filled its cache.
    for _ in 0..2 {
        for d in [&a, &b] {
            kopr(d, &["snapshot", "ls"]);
        }
    }
    let (ca, cb) = (cache_of(&a), cache_of(&b));
    assert_ne!(ca, cb);
    for c in [&ca, &cb] {
        assert!(
            c.starts_with(home.join("cache/kopr").to_str().unwrap()),
            "{c}"
        );
    }
    // Given relative, stored absolute.
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    kopr(
        &c,
        &[
            "repository",
            "create",
            "filesystem",
            "--path",
            "repo",
            "--cache-directory",
            "mycache",
        ],
    );
    assert_eq!(cache_of(&c), c.join("mycache").to_str().unwrap());
    kopr(&c, &["cache", "set", "--cache-directory", "other"]);
    assert_eq!(cache_of(&c), c.join("other").to_str().unwrap());
}

/// `repository disconnect` removes the connection's cache directory, but not one that holds
/// anything a cache does not (a cache directory pointed at a directory of the user's, say by
/// `--cache-directory=$HOME`): that one is left in place, with a warning.
#[test]
fn disconnect_removes_only_a_directory_that_is_all_cache() {
    let env = Env::new();
    let path = env.repo.to_str().unwrap();
    env.ok(&["repository", "create", "filesystem", "--path", path]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&env.config).unwrap()).unwrap();
    let own = PathBuf::from(cfg["caching"]["cacheDirectory"].as_str().unwrap());
    assert!(own.join("indexes").is_dir(), "a cache was made");
    env.ok(&["repository", "disconnect"]);
    assert!(!own.exists(), "and removed");

    let mine = env.home.join("documents");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("thesis.txt"), b"years of work").unwrap();
    let dir = mine.to_str().unwrap();
    env.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        path,
        "--cache-directory",
        dir,
    ]);
    env.ok(&["content", "ls"]);
    let out = env.kopr(&["repository", "disconnect"], &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("left the cache directory"), "{err}");
    assert_eq!(
        std::fs::read(mine.join("thesis.txt")).unwrap(),
        b"years of work"
    );
    assert!(!env.config.exists());
}
