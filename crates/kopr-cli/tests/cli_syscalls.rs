//! System calls per file of a first snapshot, counted with `strace -f -c`, so that per-file
//! overhead cannot creep back: each file costs its `statx`, `openat`, `read`s and `close`, and
//! the hand-off to the upload workers is batched (before batching it cost three `futex` calls a
//! file; asking the available parallelism per file added reads of the cgroup files), and a
//! worker wakes the walk only when it waits for that file's result (one `futex` a file before).
//! Timings stay in benchmarks; these counts do not depend on the machine's speed.

use std::collections::HashMap;
use std::process::Command;

use kopr_testkit::cli::Kopr;

const FILES: usize = 600;

fn strace() -> Option<&'static str> {
    let found = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("strace");
    }
    kopr_testkit::env::skip(
        "a_first_snapshot_costs_a_bounded_number_of_system_calls_per_file",
        "strace is not installed (.ci/run installs it)",
    );
    None
}

/// `syscall → calls` from `strace -c` output.
fn counts(table: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for line in table.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if cols.len() >= 5 && cols[0].parse::<f64>().is_ok() {
            if let (Ok(calls), Some(name)) = (cols[3].parse::<u64>(), cols.last()) {
                m.insert(name.to_string(), calls);
            }
        }
    }
    m
}

#[test]
fn a_first_snapshot_costs_a_bounded_number_of_system_calls_per_file() {
    let Some(strace) = strace() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let k = Kopr::new(env!("CARGO_BIN_EXE_kopr"), &tmp.path().join("cfg.json"));
    k.create_filesystem(&tmp.path().join("repo"));
    let src = tmp.path().join("src");
    for i in 0..FILES {
        let d = src.join(format!("d{}", i % 6));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(format!("f{i}")), format!("file {i}").repeat(i % 50)).expect("write");
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    // What a snapshot of an empty directory costs (start-up, repository, manifests) is
    // subtracted, so the counts are those of the files.
    let (base, _) = measure(strace, &k, &empty, &tmp.path().join("base.txt"));
    let (c, table) = measure(strace, &k, &src, &tmp.path().join("files.txt"));
    let per_file = |name: &str| {
        let n = c.get(name).copied().unwrap_or(0);
        n.saturating_sub(base.get(name).copied().unwrap_or(0)) as f64 / FILES as f64
    };
    assert!(per_file("openat") > 0.9, "every file is opened:\n{table}");
    for (name, bound) in [
        ("openat", 1.2),
        ("statx", 1.2),
        // One read per small file: a short read at the listed size is its end.
        ("read", 1.2),
        ("close", 1.2),
        ("futex", 0.6),
        ("mmap", 0.1),
        ("madvise", 0.1),
    ] {
        assert!(
            per_file(name) <= bound,
            "{name}: {:.2} calls per file (at most {bound}):\n{table}",
            per_file(name)
        );
    }
    // Debug builds of the standard library check each closed descriptor with fcntl.
    let total: f64 = c
        .keys()
        .filter(|k| k.as_str() != "fcntl" && k.as_str() != "total")
        .map(|k| per_file(k))
        .sum();
    assert!(total < 5.0, "{total:.2} system calls per file:\n{table}");
}

/// Counts the system calls of `snapshot create DIR`.
fn measure(
    strace: &str,
    k: &Kopr,
    dir: &std::path::Path,
    out_file: &std::path::Path,
) -> (HashMap<String, u64>, String) {
    let run = Command::new(strace)
        .args(["-f", "-c", "-o"])
        .arg(out_file)
        .arg(env!("CARGO_BIN_EXE_kopr"))
        .args(["snapshot", "create", dir.to_str().expect("utf-8")])
        .env("KOPR_CONFIG_PATH", k.cfg())
        .env("KOPR_PASSWORD", kopr_testkit::cli::PASSWORD)
        .output()
        .expect("strace runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(out_file).expect("strace output");
    (counts(&table), table)
}
