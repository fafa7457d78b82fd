//! Error correction end to end with the real binary: Kopia 0.23.1's `ecc` fixture
//! (REED-SOLOMON-CRC32, 2%) lists, restores and verifies, also with bytes of its pack flipped;
//! `repository create --ecc … --ecc-overhead-percent N` writes blobs in Kopia's ECC layout that
//! round-trip through snapshot, restore and full maintenance.

use kopr_testkit::fixtures::copy_dir;
use std::path::{Path, PathBuf};
use std::process::Output;

use kopr_format::ecc::ReedSolomonCrc32;
use kopr_testkit::cli::{one_error_line, Kopr};
use sha2::{Digest, Sha256};

const FIXTURE_PASSWORD: &str = "ecc-protected-A";
const SNAPSHOT_ID: &str = "eea45c8f68c674b0a3f053a852dc45c4";
const ROOT: &str = "k5dff04daf0085b4d33206a984fd5059a";

fn fixture() -> Option<PathBuf> {
    kopr_testkit::fixtures::Fixture::load("ecc").map(|f| f.dir)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The one blob under `repo/top`.
fn only_blob(repo: &Path, top: &str) -> PathBuf {
    let mut v = Vec::new();
    files_under(&repo.join(top), &mut v);
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

/// A connection to a copy of the fixture under `tmp/name`.
struct Conn {
    k: Kopr,
    repo: PathBuf,
}

impl Conn {
    fn run(&self, args: &[&str]) -> Output {
        self.k
            .cmd(args)
            .env("KOPR_PASSWORD", FIXTURE_PASSWORD)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Copies the fixture's repository to `tmp/name`, letting `damage` change it before connecting.
fn connect_copy(tmp: &Path, fixture: &Path, name: &str, damage: impl FnOnce(&Path)) -> Conn {
    let repo = tmp.join(name).join("repo");
    copy_dir(&fixture.join("repo"), &repo);
    damage(&repo);
    let c = Conn {
        k: Kopr::new(
            env!("CARGO_BIN_EXE_kopr"),
            &tmp.join(name).join("repository.config"),
        ),
        repo,
    };
    c.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        c.repo.to_str().unwrap(),
    ]);
    c
}

/// Asserts that `dir` holds exactly the tree of `expected.json`: paths, types, sizes, sha256
/// and symlink targets.
fn assert_expected_tree(dir: &Path, tree: &[serde_json::Value]) {
    let mut seen = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.symlink_metadata().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(dir, dir, &mut seen);
    seen.push(".".into());
    seen.sort();
    let mut want: Vec<String> = tree
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(seen, want);
    for e in tree {
        let rel = e["path"].as_str().unwrap();
        let p = dir.join(rel);
        let md = p.symlink_metadata().unwrap();
        match e["type"].as_str().unwrap() {
            "dir" => assert!(md.is_dir(), "{rel}"),
            "file" => {
                assert!(md.is_file(), "{rel}");
                assert_eq!(Some(md.len()), e["size"].as_u64(), "{rel}");
                let sum = hex::encode(Sha256::digest(std::fs::read(&p).unwrap()));
                assert_eq!(Some(sum.as_str()), e["sha256"].as_str(), "{rel}");
            }
            "symlink" => {
                assert!(md.is_symlink(), "{rel}");
                let target = std::fs::read_link(&p).unwrap();
                assert_eq!(target.to_str(), e["target"].as_str(), "{rel}");
            }
            other => panic!("{rel}: type {other}"),
        }
    }
}

fn expected_tree(fixture: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    assert_eq!(v["snapshots"][0]["id"], SNAPSHOT_ID);
    v["snapshots"][0]["tree"].as_array().unwrap().clone()
}

fn restore_and_check(c: &Conn, tmp: &Path, name: &str, tree: &[serde_json::Value]) {
    let dst = tmp.join(name);
    let out = c.ok(&["snapshot", "restore", SNAPSHOT_ID, dst.to_str().unwrap()]);
    assert!(
        out.starts_with("Restored 7 files, 8 directories and 1 symbolic links"),
        "{out}"
    );
    assert_expected_tree(&dst, tree);
}

/// Flips one byte every 100,000 bytes of `path`, from `start`, short of the last `keep` bytes.
fn flip_spread(path: &Path, start: usize, keep: usize) -> usize {
    let mut b = std::fs::read(path).unwrap();
    let mut n = 0;
    for at in (start..b.len() - keep).step_by(100_000) {
        b[at] ^= 0x5a;
        n += 1;
    }
    std::fs::write(path, b).unwrap();
    n
}

#[test]
fn kopia_ecc_fixture_lists_restores_and_verifies() {
    let Some(fx) = fixture() else { return };
    let tree = expected_tree(&fx);
    let tmp = tempfile::tempdir().unwrap();
    let c = connect_copy(tmp.path(), &fx, "clean", |_| {});
    let listed = c.ok(&["snapshot", "ls", "--all", "-m"]);
    assert!(
        listed.starts_with("alice@laptop:/home/alice/ecc-data\n"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{ROOT} ")) && listed.contains(&format!("manifest:{SNAPSHOT_ID}")),
        "{listed}"
    );
    restore_and_check(&c, tmp.path(), "restored", &tree);
    let verified = c.ok(&["snapshot", "verify"]);
    assert!(verified.ends_with(": 0 errors.\n"), "{verified}");
    // packed lengths (ECC included) count as Kopia counts them
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("expected.json")).unwrap()).unwrap();
    assert_eq!(
        c.ok(&["content", "stats"]),
        v["kopia_outputs"]["content stats"].as_str().unwrap()
    );
    // kopr's full maintenance rewrites Kopia's repository, which still restores
    c.ok(&["maintenance", "run", "--full", "--safety=none", "--force"]);
    restore_and_check(&c, tmp.path(), "after-maintenance", &tree);
}

#[test]
fn kopia_ecc_fixture_restores_with_flipped_pack_bytes() {
    let Some(fx) = fixture() else { return };
    let tree = expected_tree(&fx);
    let tmp = tempfile::tempdir().unwrap();
    // One byte in each 100 KB of the data pack (a block of 164+2 shards stores 85,656 bytes:
    // at most one damaged shard per block), plus the metadata packs and an index blob; the
    // last 64 bytes of packs (the postamble, which Kopia does not protect) are left alone.
    let c = connect_copy(tmp.path(), &fx, "damaged", |repo| {
        assert!(flip_spread(&only_blob(repo, "p"), 1_000, 64) >= 24);
        let mut q = Vec::new();
        files_under(&repo.join("q"), &mut q);
        for p in q {
            assert_eq!(flip_spread(&p, 100, 64), 1);
        }
        let mut x = Vec::new();
        files_under(&repo.join("x"), &mut x);
        for p in x {
            flip_spread(&p, 7, 0);
        }
    });
    restore_and_check(&c, tmp.path(), "restored", &tree);
    let verified = c.ok(&["snapshot", "verify"]);
    assert!(verified.ends_with(": 0 errors.\n"), "{verified}");
}

#[test]
fn damage_beyond_the_parity_is_one_clear_error() {
    let Some(fx) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let c = connect_copy(tmp.path(), &fx, "wrecked", |repo| {
        // three consecutive 516-byte shard slots of one block of the data pack: 2 parity only
        let p = only_blob(repo, "p");
        let mut b = std::fs::read(&p).unwrap();
        for k in 0..3 {
            b[300_000 + k * 516] ^= 0xff;
        }
        std::fs::write(&p, b).unwrap();
    });
    let dst = tmp.path().join("restored");
    let out = c.run(&["snapshot", "restore", SNAPSHOT_ID, dst.to_str().unwrap()]);
    let line = one_error_line(&out);
    assert!(
        line.contains("damaged shards") && line.contains("only 2 can be rebuilt"),
        "{line}"
    );
}

fn kopr(tmp: &Path) -> Kopr {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &tmp.join("repository.config"))
}

fn create_args<'a>(repo: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "repository",
        "create",
        "filesystem",
        "--path",
        repo.to_str().unwrap(),
        "--format-block-key-derivation-algorithm",
        "testing-only-insecure",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn created_with_ecc_blobs_carry_kopias_layout_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let k = kopr(tmp.path());
    let created = k.ok(&create_args(
        &repo,
        &["--ecc=REED-SOLOMON-CRC32", "--ecc-overhead-percent=3"],
    ));
    assert!(
        created.contains("\n  ecc:                 REED-SOLOMON-CRC32 with 3% overhead\n"),
        "{created}"
    );

    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(
        src.join("d/big.bin"),
        kopr_testkit::random_bytes(9, 3_500_000),
    )
    .unwrap();
    std::fs::write(src.join("d/mid.bin"), kopr_testkit::random_bytes(8, 70_000)).unwrap();
    k.ok(&["snapshot", "create", src.to_str().unwrap()]);
    let listed = k.ok(&["snapshot", "ls", "-m"]);
    let id = listed
        .split("manifest:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();
    let dst = tmp.path().join("r1");
    k.ok(&["snapshot", "restore", &id, dst.to_str().unwrap()]);
    kopr_testkit::assert_same_tree(&src, &dst);

    // The format says so, and every encrypted blob is in Kopia's 3% layout (139+2 shards of
    // 256 bytes): index and log blobs as a whole, packs' local indexes.
    let st = kopr_blob::filesystem::FilesystemStorage::open(&repo).unwrap();
    let fm =
        kopr_repo::format_manager::FormatManager::open(&st, kopr_testkit::cli::PASSWORD).unwrap();
    assert_eq!(
        (fm.config.ecc.as_str(), fm.config.ecc_overhead_percent),
        ("REED-SOLOMON-CRC32", 3)
    );
    let ecc = ReedSolomonCrc32::new(3).unwrap();
    assert_eq!((ecc.data_shards(), ecc.parity_shards()), (139, 2));
    let mut blobs = Vec::new();
    for top in ["x", "_", "p", "q"] {
        if repo.join(top).is_dir() {
            files_under(&repo.join(top), &mut blobs);
        }
    }
    let mut whole = 0;
    for p in &blobs {
        let bytes = std::fs::read(p).unwrap();
        let rel = p.strip_prefix(&repo).unwrap().display().to_string();
        let stored: &[u8] = if rel.starts_with('p') || rel.starts_with('q') {
            let post = kopr_format::pack::Postamble::find(&bytes).unwrap();
            &bytes[post.local_index_offset as usize..][..post.local_index_length as usize]
        } else {
            whole += 1;
            &bytes
        };
        let mut sealed = Vec::new();
        assert_eq!(ecc.decode(stored, &mut sealed).unwrap(), 0, "{rel}");
        let mut again = Vec::new();
        ecc.encode(&sealed, &mut again);
        assert!(again == stored, "{rel}");
    }
    assert!(whole >= 1, "{blobs:?}");

    k.ok(&["maintenance", "run", "--full", "--safety=none"]);
    let dst = tmp.path().join("r2");
    k.ok(&["snapshot", "restore", &id, dst.to_str().unwrap()]);
    kopr_testkit::assert_same_tree(&src, &dst);
    let verified = k.ok(&["snapshot", "verify"]);
    assert!(verified.ends_with(": 0 errors.\n"), "{verified}");
}

#[test]
fn ecc_flags_follow_kopia() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(tmp.path());
    // overhead 0 (the default) leaves no ECC in the format, whatever the algorithm
    let plain = tmp.path().join("plain");
    let out = k.ok(&create_args(&plain, &["--create-only"]));
    assert!(!out.contains("ecc:"), "{out}");
    let st = kopr_blob::filesystem::FilesystemStorage::open(&plain).unwrap();
    let fm =
        kopr_repo::format_manager::FormatManager::open(&st, kopr_testkit::cli::PASSWORD).unwrap();
    assert_eq!(
        (fm.config.ecc.as_str(), fm.config.ecc_overhead_percent),
        ("", 0)
    );
    assert!(fm.encryptor.ecc().is_none());
    // an overhead over 100 is clamped to 100
    let high = tmp.path().join("high");
    k.ok(&create_args(
        &high,
        &["--create-only", "--ecc-overhead-percent=250"],
    ));
    let st = kopr_blob::filesystem::FilesystemStorage::open(&high).unwrap();
    let fm =
        kopr_repo::format_manager::FormatManager::open(&st, kopr_testkit::cli::PASSWORD).unwrap();
    assert_eq!(
        (fm.config.ecc.as_str(), fm.config.ecc_overhead_percent),
        ("REED-SOLOMON-CRC32", 100)
    );
    assert_eq!(fm.encryptor.ecc().map(|e| e.parity_shards()), Some(120));
    // an unknown algorithm: one line, nothing written
    let bad = tmp.path().join("bad");
    let out = k.run(&create_args(
        &bad,
        &["--ecc=LDPC", "--ecc-overhead-percent=5"],
    ));
    let line = one_error_line(&out);
    assert!(
        line.contains("error correction") && line.contains("LDPC"),
        "{line}"
    );
    assert!(!bad.join("kopia.repository.f").exists());
}

/// `12.5 MB` as bytes (Kopia's base-10 units).
fn rate_bytes(num: &str, unit: &str) -> f64 {
    let pow = ["B", "KB", "MB", "GB", "TB"]
        .iter()
        .position(|u| *u == unit.trim_end_matches("/s"))
        .unwrap_or_else(|| panic!("unit {unit:?}"));
    num.parse::<f64>().unwrap() * 1000f64.powi(pow as i32)
}

#[test]
fn benchmark_ecc_lists_every_overhead_with_its_growth() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kopr(tmp.path());
    let block = 200 * 1024;
    let out = k
        .cmd(&[
            "benchmark",
            "ecc",
            "--block-size=200KB",
            "--repeat=2",
            "--parallel=2",
            "--print-options",
        ])
        .env_remove("KOPIA_BYTES_STRING_BASE_2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let sep = "-".repeat(87);
    assert_eq!(lines.len(), 10, "{text}");
    check_header(&lines, &sep);
    let mut seen = Vec::new();
    let mut slowest_direction = Vec::new();
    for (i, row) in lines[3..8].iter().enumerate() {
        let (pct, slowest) = check_row(i, row, block);
        slowest_direction.push(slowest);
        seen.push(pct);
        if i == 0 {
            assert_eq!(
                lines[9],
                format!(
                    "Fastest option for this machine is: --ecc=REED-SOLOMON-CRC32 --ecc-overhead-percent={pct}"
                )
            );
        }
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 5, 10, 20]);
    // sorted by the slower direction, fastest first (rounded as printed)
    for w in slowest_direction.windows(2) {
        assert!(w[0] >= w[1] * 0.95, "{text}");
    }
    // bad flags: one line
    let out = k.run(&["benchmark", "ecc", "--block-size=0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("block-size"));
}

/// The two header lines and the separators around the rows.
fn check_header(lines: &[&str], sep: &str) {
    assert_eq!(
        lines[0],
        format!(
            "     {:<30} {:>14} {:>14}   {:>10}",
            "ECC", "Throughput", "Throughput", "Growth"
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "     {:<30} {:>14} {:>14}   {:>6}",
            "", "Encoding", "Decoding", ""
        )
    );
    assert_eq!((lines[2], lines[8]), (sep, sep));
}

/// Row `i` of the table for blocks of `block` bytes: its overhead, both throughputs, the
/// growth and encoded size it prints, and the flags to choose it; returns the overhead and the
/// slower direction's throughput.
fn check_row(i: usize, row: &str, block: usize) -> (i64, f64) {
    // "  0. REED-SOLOMON-CRC32 - 5%   230.9 MB/s   1.3 GB/s    5% [215.1 KB],   --ecc=… --ecc-overhead-percent=5"
    let (left, opts) = row.split_once(",   ").unwrap();
    let w: Vec<&str> = left.split_whitespace().collect();
    assert_eq!(w[0], format!("{i}."), "{row}");
    assert_eq!((w[1], w[2]), ("REED-SOLOMON-CRC32", "-"), "{row}");
    let pct: i64 = w[3].trim_end_matches('%').parse().unwrap();
    assert_eq!(
        opts,
        format!("--ecc=REED-SOLOMON-CRC32 --ecc-overhead-percent={pct}")
    );
    let enc = rate_bytes(w[4], w[5]);
    let dec = rate_bytes(w[6], w[7]);
    assert!(enc > 0.0 && dec > 0.0, "{row}");
    let size = ReedSolomonCrc32::new(pct).unwrap().encoded_len(block);
    let growth = ((size as f64 / block as f64 - 1.0) * 100.0).round() as i64;
    assert_eq!(w[8], format!("{growth}%"), "{row}");
    assert_eq!(
        w[9..].join(" "),
        format!("[{}]", kopr_format::units::bytes(size as i64)),
        "{row}"
    );
    (pct, enc.min(dec))
}
