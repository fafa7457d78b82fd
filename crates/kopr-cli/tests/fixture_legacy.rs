//! Repositories of format versions 1 and 2 written by Kopia 0.23.1 (`format-v1`: legacy `n`
//! index blobs in index v1, no epoch manager; `format-v2`: epoch manager, index v2), driven
//! through the real `kopr` binary on copies: listing, restoring, verifying, writing a snapshot
//! the way Kopia's legacy index manager does, maintenance, and refusing formats kopr cannot
//! fully handle without writing anything.

use kopr_testkit::fixtures::copy_dir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::{BlobStorage, PutOptions};
use kopr_format::repository_blob::{RepositoryBlob, RepositoryConfig, REPOSITORY_BLOB_ID};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fixture directory, or `None` (with a loud SKIPPED line) when it is missing outside CI.
fn fixture(name: &str) -> Option<PathBuf> {
    kopr_testkit::fixtures::Fixture::load(name).map(|f| f.dir)
}

/// Every file under `root` (relative path → sha256 of its bytes).
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// One connection to a copy of a fixture, with its own config and cache.
struct Conn {
    dir: tempfile::TempDir,
    repo: PathBuf,
    password: String,
    expected: Value,
}

impl Conn {
    /// Copies the fixture's repository into a temporary directory (not yet connected).
    fn copy(name: &str) -> Option<Conn> {
        let fx = fixture(name)?;
        let expected: Value =
            serde_json::from_slice(&std::fs::read(fx.join("expected.json")).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        copy_dir(&fx.join("repo"), &repo);
        let password = expected["password"].as_str().unwrap().to_string();
        Some(Conn {
            dir,
            repo,
            password,
            expected,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kopr"));
        c.args(args)
            .env(
                "KOPR_CONFIG_PATH",
                self.dir.path().join("repository.config"),
            )
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("KOPR_PASSWORD", &self.password)
            .env_remove("KOPIA_PASSWORD")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    fn connect(&self) {
        self.ok(&[
            "repository",
            "connect",
            "filesystem",
            "--path",
            self.repo.to_str().unwrap(),
            "--password",
            &self.password,
        ]);
    }

    fn kopia_output(&self, name: &str) -> &str {
        self.expected["kopia_outputs"][name].as_str().unwrap()
    }

    /// The live snapshots of expected.json: (id, root object id, tree).
    fn live_snapshots(&self) -> Vec<(String, String, Vec<Value>)> {
        self.expected["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["deleted"].as_bool().unwrap())
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["root"].as_str().unwrap().to_string(),
                    s["tree"].as_array().unwrap().clone(),
                )
            })
            .collect()
    }

    /// `snapshot ls --all --json` as (id, root object id), sorted.
    fn listed(&self) -> Vec<(String, String)> {
        let out = self.run(&["snapshot", "ls", "--all", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut got: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["rootEntry"]["obj"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        got
    }

    fn restore(&self, id: &str, name: &str) -> PathBuf {
        let target = self.dir.path().join("restored").join(name);
        self.ok(&["snapshot", "restore", id, target.to_str().unwrap()]);
        target
    }

    fn content_count(&self) -> u64 {
        count_line(&self.ok(&["content", "stats"]))
    }

    /// `snapshot verify` and `content verify --full` find nothing wrong.
    fn verify(&self) {
        let out = self.ok(&["snapshot", "verify"]);
        assert!(out.contains(": 0 errors."), "{out}");
        let out = self.ok(&["content", "verify", "--full"]);
        assert!(out.contains("found 0 errors"), "{out}");
    }
}

fn count_line(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("Count: "))
        .unwrap_or_else(|| panic!("no count in {stats}"))
        .trim()
        .parse()
        .unwrap()
}

/// Checks a restored tree against expected.json's: every path with its type, file sizes and
/// sha256, symlink targets, and nothing more.
fn assert_tree(root: &Path, tree: &[Value]) {
    let mut expected_paths = Vec::new();
    for e in tree {
        let rel = e["path"].as_str().unwrap();
        expected_paths.push(rel.to_string());
        let p = if rel == "." {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|_| panic!("{rel} restored"));
        match e["type"].as_str().unwrap() {
            "dir" => assert!(md.is_dir(), "{rel} is a directory"),
            "symlink" => {
                assert!(md.file_type().is_symlink(), "{rel} is a symlink");
                assert_eq!(
                    std::fs::read_link(&p).unwrap().to_str().unwrap(),
                    e["target"].as_str().unwrap(),
                    "{rel}"
                );
            }
            "file" => {
                assert!(md.is_file(), "{rel} is a file");
                assert_eq!(md.len(), e["size"].as_u64().unwrap(), "{rel} size");
                let sum = hex::encode(Sha256::digest(std::fs::read(&p).unwrap()));
                assert_eq!(sum, e["sha256"].as_str().unwrap(), "{rel} sha256");
            }
            t => panic!("unknown type {t}"),
        }
    }
    let mut got = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut got);
    got.push(".".into());
    got.sort();
    expected_paths.sort();
    assert_eq!(got, expected_paths, "restored paths");
}

/// Requirement 1 for one fixture: live snapshots listed with their roots, restored equal to
/// expected.json, verified clean, and Kopia's content count.
fn reads_like_kopia(conn: &Conn) {
    conn.connect();
    let live = conn.live_snapshots();
    let mut want: Vec<(String, String)> = live
        .iter()
        .map(|(id, root, _)| (id.clone(), root.clone()))
        .collect();
    want.sort();
    assert_eq!(conn.listed(), want, "live snapshots and their roots");
    for (id, _, tree) in &live {
        let target = conn.restore(id, id);
        assert_tree(&target, tree);
    }
    conn.verify();
    assert_eq!(
        conn.content_count(),
        count_line(conn.kopia_output("content stats")),
        "Kopia's content count"
    );
}

#[test]
fn format_v1_fixture_lists_restores_and_verifies_like_kopia() {
    let Some(conn) = Conn::copy("format-v1") else {
        return;
    };
    reads_like_kopia(&conn);
    // The schedule blob is encrypted with a key derived from the format key (no password
    // change in format 1): kopr reads Kopia's run history.
    let info = conn.ok(&["maintenance", "info"]);
    assert!(info.contains("Owner: alice@laptop"), "{info}");
    assert!(info.contains("snapshot-gc:"), "{info}");
    assert_status_like_kopia(&conn);
}

/// `repository status` from `Unique ID:` on is Kopia's, line for line.
fn assert_status_like_kopia(conn: &Conn) {
    let tail = |s: &str| -> Vec<String> {
        let mut lines: Vec<String> = s
            .lines()
            .skip_while(|l| !l.starts_with("Unique ID:"))
            .map(|l| l.trim_end().to_string())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    };
    let ours = tail(&conn.ok(&["repository", "status"]));
    let kopia = tail(conn.kopia_output("repository status"));
    assert!(!ours.is_empty());
    assert_eq!(ours, kopia);
}

#[test]
fn format_v2_fixture_lists_restores_and_verifies_like_kopia() {
    let Some(conn) = Conn::copy("format-v2") else {
        return;
    };
    reads_like_kopia(&conn);
    assert_status_like_kopia(&conn);
    let info = conn.ok(&["maintenance", "info"]);
    assert!(info.contains("advance-epoch:"), "{info}");

    // Format 2 uses the epoch manager: a new snapshot's index goes into `xn0_…`, never `n`.
    let st = FilesystemStorage::open(&conn.repo).unwrap();
    let before = blobs_with(&st, "x");
    let src = conn.dir.path().join("new-data");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.txt"),
        b"written by kopr into a format 2 repository",
    )
    .unwrap();
    let out = conn.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let new_root = out
        .split_whitespace()
        .skip_while(|w| *w != "root")
        .nth(1)
        .unwrap()
        .to_string();
    assert!(blobs_with(&st, "n").is_empty());
    let new: Vec<String> = blobs_with(&st, "xn0_")
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert!(!new.is_empty());
    let target = conn.restore(&new_root, "new");
    assert_eq!(listing(&target), listing(&src));
}

fn blobs_with(st: &FilesystemStorage, prefix: &str) -> Vec<String> {
    st.list_all(prefix)
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect()
}

#[test]
fn format_v1_snapshot_writes_legacy_indexes_and_maintenance_keeps_every_snapshot() {
    let Some(conn) = Conn::copy("format-v1") else {
        return;
    };
    conn.connect();
    let st = FilesystemStorage::open(&conn.repo).unwrap();
    let before: Vec<String> = st.list_all("").unwrap().into_iter().map(|b| b.id).collect();
    let kopia_pack = st.get_blob(&blobs_with(&st, "p")[0], 0, None).unwrap();

    let src = conn.dir.path().join("new-data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join("a.txt"),
        b"written by kopr into a format 1 repository",
    )
    .unwrap();
    std::fs::write(
        src.join("sub/big.bin"),
        kopr_testkit::random_bytes(7, 5_000_000),
    )
    .unwrap();
    std::fs::write(
        src.join("text.txt"),
        "a line of very compressible text\n".repeat(30_000),
    )
    .unwrap();
    let out = conn.ok(&[
        "snapshot",
        "create",
        src.to_str().unwrap(),
        "--compression",
        "zstd",
    ]);
    let new_root = out
        .split_whitespace()
        .skip_while(|w| *w != "root")
        .nth(1)
        .unwrap()
        .to_string();

    let after: Vec<String> = st.list_all("").unwrap().into_iter().map(|b| b.id).collect();
    let new: Vec<&String> = after.iter().filter(|b| !before.contains(b)).collect();
    assert!(
        !new.iter().any(|b| b.starts_with('x')),
        "no epoch blob: {new:?}"
    );
    new_blobs_are_legacy_indexes_and_kopias_packs(&conn, &st, &new, &kopia_pack);
    // Index v1 cannot record a compressor: as Kopia, the compressible file is compressed at
    // the object layer (`Z` object id), the random one is stored as is.
    let dir: Value = serde_json::from_str(&conn.ok(&["show", &new_root])).unwrap();
    let obj = |name: &str| {
        dir["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["obj"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(obj("text.txt").starts_with('Z'), "{dir}");
    assert!(
        obj("a.txt").starts_with(|c: char| c.is_ascii_hexdigit()),
        "{dir}"
    );
    let target = conn.restore(&new_root, "new-before-maintenance");
    assert_eq!(listing(&target), listing(&src));
    maintenance_keeps_every_snapshot(&conn, &st, &new_root, &src);
}

/// The blobs kopr wrote: no epoch blob; `n<hash>-<session>` index v1 blobs as Kopia's legacy index manager writes them; packs that start with the same checksummed format copy as Kopia's.
fn new_blobs_are_legacy_indexes_and_kopias_packs(
    conn: &Conn,
    st: &FilesystemStorage,
    new: &[&String],
    kopia_pack: &[u8],
) {
    let new_indexes: Vec<&&String> = new.iter().filter(|b| b.starts_with('n')).collect();
    assert!(!new_indexes.is_empty(), "{new:?}");
    for b in new {
        let ok_prefix = ["n", "p", "q", "_log"].iter().any(|p| b.starts_with(p));
        assert!(ok_prefix, "unexpected blob {b}");
    }
    // `n<hash>-<session>`, index v1 inside, as Kopia's legacy index manager writes them.
    let fm = kopr_repo::format_manager::FormatManager::open(st, &conn.password).unwrap();
    for id in &new_indexes {
        let (hash, session) = id[1..].split_once('-').unwrap();
        assert_eq!(hash.len(), 32, "{id}");
        assert!(session.starts_with('s'), "{id}");
        let plain = kopr_format::blob_crypto::decrypt_blob(
            &fm.encryptor,
            &st.get_blob(id, 0, None).unwrap(),
            id,
        )
        .unwrap();
        assert_eq!(plain[0], 1, "{id} is index v1");
    }
    // New packs start with the same checksummed format copy as Kopia's packs.
    let copy_len = usize::from(u16::from_le_bytes([kopia_pack[0], kopia_pack[1]])) + 4;
    for id in new
        .iter()
        .filter(|b| b.starts_with('p') || b.starts_with('q'))
    {
        let pack = st.get_blob(id, 0, None).unwrap();
        assert_eq!(pack[..copy_len], kopia_pack[..copy_len], "{id}");
    }
}

/// Full maintenance without safety margins: the deleted snapshot's contents go, every live snapshot stays restorable, the indexes end up compacted into one `n` blob; the quick cycle runs Kopia's index compaction.
fn maintenance_keeps_every_snapshot(
    conn: &Conn,
    st: &FilesystemStorage,
    new_root: &str,
    src: &Path,
) {
    let live = conn.live_snapshots();
    let count_before = conn.content_count();

    // Full maintenance without safety margins: the deleted snapshot's contents go, every
    // live snapshot stays restorable, and the indexes end up compacted into one `n` blob.
    let log = conn.ok(&["maintenance", "run", "--full", "--safety=none", "--force"]);
    let unused: u64 = log
        .lines()
        .filter(|l| l.contains(" unused contents ("))
        .find_map(|l| l.strip_prefix("GC found ")?.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(unused > 0, "the deleted snapshot's contents: {log}");
    assert_eq!(conn.content_count(), count_before - unused);
    let indexes = blobs_with(st, "n");
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(!indexes[0].contains('-'), "a compacted blob: {indexes:?}");
    assert!(
        blobs_with(st, "m").is_empty(),
        "compaction logs settled at once"
    );
    assert!(blobs_with(st, "l").is_empty());
    assert!(blobs_with(st, "x").is_empty());
    for (id, _, tree) in &live {
        assert_tree(&conn.restore(id, &format!("{id}-after")), tree);
    }
    let target = conn.restore(new_root, "new-after-maintenance");
    assert_eq!(listing(&target), listing(src));
    conn.verify();
    let info = conn.ok(&["maintenance", "info"]);
    assert!(info.contains("full-drop-deleted-content:"), "{info}");
    assert!(!info.contains("advance-epoch"), "no epoch tasks: {info}");

    // The quick cycle runs Kopia's index compaction instead of the epoch tasks.
    conn.ok(&["maintenance", "run", "--safety=none", "--force"]);
    let info = conn.ok(&["maintenance", "info"]);
    assert!(info.contains("index-compaction:"), "{info}");
    assert!(!info.contains("compact-single-epoch"), "{info}");
    conn.verify();
}

/// Rewrites the format blob of the repository at `repo` with `edit` applied to its config.
fn edit_config(repo: &Path, password: &str, edit: impl FnOnce(&mut RepositoryConfig)) {
    let st = FilesystemStorage::open(repo).unwrap();
    let mut blob =
        RepositoryBlob::parse(&st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()).unwrap();
    let key = blob.derive_format_key(password).unwrap();
    let mut cfg = blob.decrypt_config(&key).unwrap();
    edit(&mut cfg);
    blob.encrypt_config(&cfg, &key).unwrap();
    st.put_blob(REPOSITORY_BLOB_ID, &blob.to_bytes(), &PutOptions::default())
        .unwrap();
}

/// Connecting to a repository kopr cannot fully handle fails with one line naming what is
/// unsupported, and the storage is left exactly as it was.
fn refused(conn: &Conn, want: &str) {
    let before = listing(&conn.repo);
    let out = conn.run(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        conn.repo.to_str().unwrap(),
        "--password",
        &conn.password,
    ]);
    let line = kopr_testkit::cli::one_error_line(&out);
    eprintln!("refused: {line}");
    assert!(line.contains(want), "{line}");
    assert_eq!(listing(&conn.repo), before, "nothing written");
}

#[test]
fn unsupported_formats_are_refused_without_writing() {
    type Edit = Box<dyn Fn(&mut RepositoryConfig)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("format-v1", Box::new(|c| c.version = 4), "format version 4"),
        (
            "format-v2",
            Box::new(|c| c.index_version = 3),
            "index format version 3",
        ),
        (
            "format-v1",
            Box::new(|c| {
                c.required_features = Some(serde_json::json!([
                    {"feature": "some-future-feature", "ifNotUnderstood": {"warn": false}}
                ]))
            }),
            "some-future-feature",
        ),
    ];
    for (name, edit, want) in cases {
        let Some(conn) = Conn::copy(name) else {
            return;
        };
        edit_config(&conn.repo, &conn.password, edit);
        refused(&conn, want);
    }
}

#[test]
fn an_index_blob_of_an_unknown_version_is_refused_without_writing() {
    let Some(conn) = Conn::copy("format-v1") else {
        return;
    };
    let st = FilesystemStorage::open(&conn.repo).unwrap();
    let fm = kopr_repo::format_manager::FormatManager::open(&st, &conn.password).unwrap();
    let mut plain = vec![3u8, 17, 0, 20, 0, 0, 0, 0];
    plain.extend_from_slice(&[0u8; 32]);
    let (id, bytes) =
        kopr_format::blob_crypto::encrypt_blob(&fm.hasher, &fm.encryptor, &plain, "n", "sfuture")
            .unwrap();
    st.put_blob(&id, &bytes, &PutOptions::default()).unwrap();
    refused(&conn, "unknown index version 3");
}

#[test]
fn format_v1_indexes_recover_from_kopia_packs() {
    let Some(conn) = Conn::copy("format-v1") else {
        return;
    };
    let expected = count_line(conn.kopia_output("content stats"));
    let st = FilesystemStorage::open(&conn.repo).unwrap();
    for id in blobs_with(&st, "n") {
        st.delete_blob(&id).unwrap();
    }
    conn.connect();
    assert_eq!(conn.content_count(), 0, "no index left");
    // Kopia's packs carry their own index in index v1: every content comes back, into a
    // legacy `n` blob.
    let out = conn.ok(&["index", "recover", "--commit"]);
    assert!(
        out.contains(&format!("Recovered {expected} contents")),
        "{out}"
    );
    assert_eq!(conn.content_count(), expected);
    assert!(blobs_with(&st, "x").is_empty());
    assert_eq!(blobs_with(&st, "n").len(), 1);
    for (id, _, tree) in conn.live_snapshots() {
        assert_tree(&conn.restore(&id, &id), &tree);
    }
}

#[test]
fn kopr_created_repositories_stay_format_3_with_the_epoch_manager() {
    let dir = tempfile::tempdir().unwrap();
    let k = kopr_testkit::cli::Kopr::new(env!("CARGO_BIN_EXE_kopr"), &dir.path().join("cfg"));
    let repo = dir.path().join("repo");
    k.create_filesystem(&repo);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f.txt"), b"kopr's own repository").unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let status = k.ok(&["repository", "status"]);
    assert!(status.contains("Format version:      3"), "{status}");
    assert!(status.contains("Index Format:        v2"), "{status}");
    assert!(status.contains("Epoch Manager:       enabled"), "{status}");
    let st = FilesystemStorage::open(&repo).unwrap();
    assert!(!blobs_with(&st, "xn0_").is_empty());
    assert!(blobs_with(&st, "n").is_empty());
    // Packs of repositories with password change carry no format copy.
    let pack = st.get_blob(&blobs_with(&st, "p")[0], 0, None).unwrap();
    assert!(!pack.windows(6).any(|w| w == b"\"tool\""), "no format copy");
}
