//! Drives `kopr benchmark …` with tiny sizes: every algorithm the format crate registers is
//! listed once, rows are sorted best first, the recommendation names the first row, and bad
//! flags fail on one line.

use std::path::Path;
use std::process::{Command, Output};

use kopr_format::compression;
use kopr_format::encryption::supported_encryption_algorithms;
use kopr_format::hashing::supported_hash_algorithms;
use kopr_format::splitter::supported_splitters;

const SEPARATOR: &str = "-----------------------------------------------------------------";

fn kopr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kopr"))
        .args(args)
        .env_remove("KOPIA_BYTES_STRING_BASE_2")
        // Logs in cargo's scratch directory, not in the user's cache.
        .env(
            "KOPR_LOG_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("benchmark-logs"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = kopr(args);
    assert!(
        out.status.success(),
        "kopr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The words of the numbered rows (`  3. NAME …`), index checked and dropped.
fn table_rows(text: &str) -> Vec<Vec<&str>> {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(". ")?;
            n.parse::<usize>().ok()?;
            Some(std::iter::once(n).chain(rest.split_whitespace()).collect())
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], i.to_string(), "row numbers count from 0: {text}");
    }
    rows.into_iter().map(|r| r[1..].to_vec()).collect()
}

/// `12.5 MB` as bytes (Kopia's base-10 units).
fn bytes(num: &str, unit: &str) -> f64 {
    let unit = unit.trim_end_matches("/s");
    let pow = ["B", "KB", "MB", "GB", "TB", "PB", "EB"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or_else(|| panic!("unit {unit:?}"));
    num.parse::<f64>().unwrap() * 1000f64.powi(pow as i32)
}

fn assert_descending(values: &[f64], text: &str) {
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "not sorted best first: {values:?}\n{text}"
    );
}

fn sorted_names(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = names.into_iter().collect();
    v.sort();
    v
}

fn expected(names: &[&str]) -> Vec<String> {
    sorted_names(names.iter().map(|s| s.to_string()))
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

#[test]
fn hashing_lists_every_hash_fastest_first() {
    let out = ok(&[
        "benchmark",
        "hashing",
        "--block-size=4KB",
        "--repeat=3",
        "--parallel=2",
        "--print-options",
    ]);
    let rows = table_rows(&out);
    // NAME RATE UNIT / second, --block-hash=NAME
    let names = rows.iter().map(|r| r[0].to_string());
    assert_eq!(
        sorted_names(names),
        expected(supported_hash_algorithms()),
        "{out}"
    );
    assert_descending(
        &rows.iter().map(|r| bytes(r[1], r[2])).collect::<Vec<_>>(),
        &out,
    );
    for r in &rows {
        assert_eq!(&r[3..5], ["/", "second,"], "{out}");
        assert_eq!(r[5], format!("--block-hash={}", r[0]));
    }
    assert!(
        out.starts_with("     Hash                 Throughput\n"),
        "{out}"
    );
    assert_eq!(
        last_line(&out),
        format!(
            "Fastest option for this machine is: --block-hash={}",
            rows[0][0]
        )
    );

    // The alias, without per-row options.
    let out = ok(&["benchmark", "hash", "--block-size=1KB", "--repeat=1"]);
    assert_eq!(table_rows(&out).len(), supported_hash_algorithms().len());
    assert!(!out.contains(",   --block-hash="), "{out}");
    assert!(last_line(&out).starts_with("Fastest option for this machine is: --block-hash="));
}

#[test]
fn encryption_lists_every_cipher_fastest_first() {
    let out = ok(&[
        "benchmark",
        "encryption",
        "--block-size=8KB",
        "--repeat=2",
        "--parallel=3",
        "--print-options",
    ]);
    let rows = table_rows(&out);
    let names = rows.iter().map(|r| r[0].to_string());
    assert_eq!(
        sorted_names(names),
        expected(supported_encryption_algorithms()),
        "{out}"
    );
    assert_descending(
        &rows.iter().map(|r| bytes(r[1], r[2])).collect::<Vec<_>>(),
        &out,
    );
    for r in &rows {
        assert_eq!(r[5], format!("--encryption={}", r[0]));
    }
    assert_eq!(
        last_line(&out),
        format!(
            "Fastest option for this machine is: --encryption={}",
            rows[0][0]
        )
    );
}

#[test]
fn crypto_lists_every_pair_fastest_first() {
    let out = ok(&[
        "benchmark",
        "crypto",
        "--block-size=2KB",
        "--repeat=2",
        "--print-options",
    ]);
    let rows = table_rows(&out);
    // HASH ENCRYPTION RATE UNIT / second, --block-hash=HASH --encryption=ENCRYPTION
    let pairs = rows.iter().map(|r| format!("{} {}", r[0], r[1]));
    let mut all = Vec::new();
    for h in supported_hash_algorithms() {
        for e in supported_encryption_algorithms() {
            all.push(format!("{h} {e}"));
        }
    }
    assert_eq!(sorted_names(pairs), sorted_names(all), "{out}");
    assert_descending(
        &rows.iter().map(|r| bytes(r[2], r[3])).collect::<Vec<_>>(),
        &out,
    );
    for r in &rows {
        assert_eq!(r[6], format!("--block-hash={}", r[0]));
        assert_eq!(r[7], format!("--encryption={}", r[1]));
    }
    assert_eq!(
        last_line(&out),
        format!(
            "Fastest option for this machine is: --block-hash={} --encryption={}",
            rows[0][0], rows[0][1]
        )
    );
}

/// `count:4 min:…` fields of a splitter row.
fn stat(row: &[&str], key: &str) -> usize {
    row.iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{key} in {row:?}"))
        .parse()
        .unwrap()
}

#[test]
fn splitter_lists_every_splitter_fastest_first() {
    let out = ok(&[
        "benchmark",
        "splitter",
        "--data-size=256KB",
        "--block-count=2",
        "--parallel=2",
        "--print-options",
    ]);
    let (progress, sorted) = out.split_once(&format!("{SEPARATOR}\n")).unwrap();
    // One line per splitter as it runs, in registry order.
    let running: Vec<&str> = progress
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(running, supported_splitters(), "{out}");

    let rows = table_rows(sorted);
    // NAME RATE UNIT /s count:… min:… 10th:… 25th:… 50th:… 75th:… 90th:… max:… avg:…
    let names = rows.iter().map(|r| r[0].to_string());
    assert_eq!(
        sorted_names(names),
        expected(supported_splitters()),
        "{out}"
    );
    assert_descending(
        &rows.iter().map(|r| bytes(r[1], r[2])).collect::<Vec<_>>(),
        &out,
    );
    for r in &rows {
        let (count, min, max, avg) = (
            stat(r, "count"),
            stat(r, "min"),
            stat(r, "max"),
            stat(r, "avg"),
        );
        assert!(
            count >= 2 && min <= avg && avg <= max && max <= 256 << 10,
            "{r:?}"
        );
        assert_eq!(avg, 2 * (256 << 10) / count, "{r:?}");
        assert!(min <= stat(r, "50th") && stat(r, "50th") <= max, "{r:?}");
    }
    let fixed = rows.iter().find(|r| r[0] == "FIXED-128K").unwrap();
    assert_eq!((stat(fixed, "count"), stat(fixed, "min")), (4, 128 << 10));

    let best = rows.iter().find(|r| r[0].starts_with("DYNAMIC-")).unwrap();
    assert_eq!(
        last_line(&out),
        format!(
            "Fastest option for this machine is: --object-splitter={}",
            best[0]
        )
    );

    // Without --print-options there is no recommendation, as in Kopia.
    let out = ok(&[
        "benchmark",
        "splitter",
        "--data-size=64KB",
        "--block-count=1",
    ]);
    assert!(!out.contains("Fastest option"), "{out}");
}

/// Compressible text with some variety.
fn write_sample(path: &Path) {
    let mut data = Vec::new();
    let mut x: u32 = 1;
    while data.len() < 64 << 10 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let word = [
            "kopia ",
            "kopr ",
            "snapshot ",
            "content ",
            "index ",
            "pack ",
        ][(x >> 16) as usize % 6];
        data.extend_from_slice(word.as_bytes());
        data.extend_from_slice(format!("{} ", x % 1000).as_bytes());
    }
    std::fs::write(path, data).unwrap();
}

fn compressor_names(deprecated: bool) -> Vec<String> {
    sorted_names(
        compression::all()
            .iter()
            .filter(|c| c.is_supported() && (deprecated || !c.is_deprecated()))
            .map(|c| c.name().to_string()),
    )
}

#[test]
fn compression_lists_every_compressor_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sample.txt");
    write_sample(&file);
    let f = file.to_str().unwrap();

    let out = ok(&[
        "benchmark",
        "compression",
        "--data-file",
        f,
        "--repeat=2",
        "--operations=compress",
        "--verify-stable",
        "--print-options",
    ]);
    let rows = table_rows(&out);
    // NAME SIZE UNIT RATIO RATE UNIT/s ALLOCS MEM UNIT, --compression=NAME
    let names = rows.iter().map(|r| r[0].to_string());
    assert_eq!(sorted_names(names), compressor_names(false), "{out}");
    assert_descending(
        &rows.iter().map(|r| bytes(r[4], r[5])).collect::<Vec<_>>(),
        &out,
    );
    for r in &rows {
        assert!(bytes(r[1], r[2]) < (64 << 10) as f64, "{r:?}");
        let ratio: f64 = r[3].strip_suffix('x').unwrap().parse().unwrap();
        assert!(ratio > 1.5, "{r:?}");
        assert_eq!(
            r.last().unwrap().to_string(),
            format!("--compression={}", r[0])
        );
    }
    assert!(!out.contains("(deprecated)"));

    by_size_with_the_deprecated_ones(f);

    // A chosen subset, by allocated bytes.
    let out = ok(&[
        "benchmark",
        "compression",
        "--data-file",
        f,
        "--repeat=1",
        "--operations=decompress",
        "--algorithms=zstd,s2-default",
        "--by-alloc",
    ]);
    let rows = table_rows(&out);
    let names = rows.iter().map(|r| r[0].to_string());
    assert_eq!(
        sorted_names(names),
        expected(&[
            "s2-default",
            "zstd",
            "zstd-best-compression",
            "zstd-better-compression",
            "zstd-fastest"
        ])
    );
    let mem: Vec<f64> = rows.iter().map(|r| -bytes(r[7], r[8])).collect();
    assert_descending(&mem, &out);
}

/// By size, deprecated included, both operations: two tables.
fn by_size_with_the_deprecated_ones(f: &str) {
    let out = ok(&[
        "benchmark",
        "compression",
        "--data-file",
        f,
        "--repeat=1",
        "--parallel=2",
        "--deprecated",
        "--by-size",
    ]);
    let tables: Vec<&str> = out.split("     Compression ").skip(1).collect();
    assert_eq!(tables.len(), 2, "{out}");
    for table in tables {
        let rows = table_rows(table);
        let names = rows.iter().map(|r| r[0].to_string());
        assert_eq!(sorted_names(names), compressor_names(true));
        let sizes: Vec<f64> = rows.iter().map(|r| -bytes(r[1], r[2])).collect();
        assert_descending(&sizes, &out);
    }
    assert!(out.contains("zstd-best-compression") && out.contains("(deprecated)"));
}

#[test]
fn bad_flags_fail_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let sample = dir.path().join("sample");
    write_sample(&sample);
    let empty = format!("--data-file={}", empty.display());
    let sample = format!("--data-file={}", sample.display());
    let missing = format!("--data-file={}", dir.path().join("missing").display());
    let cases: Vec<Vec<&str>> = vec![
        vec!["hashing", "--block-size=abc"],
        vec!["hashing", "--block-size=0"],
        vec!["hashing", "--parallel=0"],
        vec!["hashing", "--repeat=-1"],
        vec!["encryption", "--repeat=0"],
        vec!["crypto", "--bogus"],
        vec!["splitter", "--block-count=0"],
        vec!["splitter", "--data-size=1QB"],
        vec!["compression"],
        vec!["compression", &missing],
        vec!["compression", &empty],
        vec!["compression", &sample, "--operations=sideways"],
        vec!["compression", &sample, "--algorithms=nothing-like-this"],
        vec!["no-such-benchmark"],
    ];
    for case in cases {
        let args: Vec<&str> = std::iter::once("benchmark").chain(case).collect();
        let out = kopr(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed results");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("kopr: error: ") || err.starts_with("ERROR: "),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn defaults_are_kopias() {
    let help = |cmd: &str| ok(&["benchmark", cmd, "--help"]);
    let has = |text: &str, flag: &str, default: &str| {
        text.lines().any(|l| {
            l.trim_start().starts_with(flag) && l.contains(&format!("[default: {default}]"))
        })
    };
    for (cmd, repeat) in [
        ("hashing", "100"),
        ("crypto", "100"),
        ("encryption", "1000"),
    ] {
        let h = help(cmd);
        assert!(has(&h, "--repeat", repeat), "{cmd}: {h}");
        assert!(has(&h, "--block-size", "1MB"), "{cmd}: {h}");
        assert!(has(&h, "--parallel", "1"), "{cmd}: {h}");
    }
    let h = help("splitter");
    assert!(
        has(&h, "--data-size", "32MB") && has(&h, "--block-count", "16"),
        "{h}"
    );
    assert!(has(&h, "--rand-seed", "42"), "{h}");
    let h = help("compression");
    assert!(
        has(&h, "--repeat", "0") && has(&h, "--operations", "both"),
        "{h}"
    );
}
