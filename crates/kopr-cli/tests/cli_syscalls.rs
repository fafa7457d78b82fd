//! System calls per file of a first snapshot, counted with `strace -f -c`, so that per-file
//! overhead cannot creep back: each file costs its `statx`, `openat`, `read`s and `close`, and
//! the hand-off to the upload workers is batched (before batching it cost three `futex` calls a
//! file; asking the available parallelism per file added reads of the cgroup files), and a
//! worker wakes the walk only when it waits for that file's result (one `futex` a file before).
//! A restore of many small files likewise costs each file its creation, write, metadata
//! through the descriptor and rename, without lock hand-offs between the readers.
//! The trees have 3,000 files, so that the waits at the end of a run (the walk waiting for the
//! last batches) do not weigh on the per-file counts.
//! Timings stay in benchmarks; these counts do not depend on the machine's speed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use kopr_testkit::cli::Kopr;

const FILES: usize = 3000;

fn strace(test: &str) -> Option<&'static str> {
    let found = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("strace");
    }
    kopr_testkit::env::skip(test, "strace is not installed (.ci/run installs it)");
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
    let Some(strace) = strace("a_first_snapshot_costs_a_bounded_number_of_system_calls_per_file")
    else {
        return;
    };
    let (tmp, k, src, empty) = setup();
    // What a snapshot of an empty directory costs (start-up, repository, manifests) is
    // subtracted, so the counts are those of the files.
    let (base, _) = measure(strace, &k, &empty, &tmp.path().join("base.txt"));
    let (c, table) = measure(strace, &k, &src, &tmp.path().join("files.txt"));
    let calls = PerFile {
        run: &c,
        base: &base,
        table: &table,
    };
    let per_file = |name: &str| calls.of(name);
    assert!(per_file("openat") > 0.9, "every file is opened:\n{table}");
    calls.assert_at_most(&[
        ("openat", 1.2),
        ("statx", 1.2),
        // One read per small file: a short read at the listed size is its end.
        ("read", 1.2),
        ("close", 1.2),
        ("futex", 0.3),
        ("mmap", 0.1),
        ("madvise", 0.1),
    ]);
    // Debug builds of the standard library check each closed descriptor with fcntl.
    let total: f64 = c
        .keys()
        .filter(|k| k.as_str() != "fcntl" && k.as_str() != "total")
        .map(|k| per_file(k))
        .sum();
    assert!(total < 5.0, "{total:.2} system calls per file:\n{table}");
}

/// A repository, a tree of FILES small files and an empty directory.
fn setup() -> (tempfile::TempDir, Kopr, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k = Kopr::new(env!("CARGO_BIN_EXE_kopr"), &tmp.path().join("cfg.json"));
    k.create_filesystem(&tmp.path().join("repo"));
    let src = tmp.path().join("src");
    make_tree(&src);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    (tmp, k, src, empty)
}

/// FILES small files in six directories.
fn make_tree(src: &std::path::Path) {
    for i in 0..FILES {
        let d = src.join(format!("d{}", i % 6));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(format!("f{i}")), format!("file {i}").repeat(i % 50)).expect("write");
    }
}

#[test]
fn a_restore_costs_a_bounded_number_of_system_calls_per_file() {
    let Some(strace) = strace("a_restore_costs_a_bounded_number_of_system_calls_per_file") else {
        return;
    };
    let (tmp, k, src, empty) = setup();
    k.ok(&["snapshot", "create", src.to_str().expect("utf-8")]);
    k.ok(&["snapshot", "create", empty.to_str().expect("utf-8")]);
    let id_of = |dir: &std::path::Path| {
        let out = k.ok(&["snapshot", "ls", dir.to_str().expect("utf-8"), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v[0]["id"].as_str().expect("id").to_string()
    };
    let (files_id, empty_id) = (id_of(&src), id_of(&empty));
    let restore = |id: &str, name: &str| {
        let dst = tmp.path().join(name);
        let args = ["snapshot", "restore", id, dst.to_str().expect("utf-8")];
        run_counted(strace, &k, &args, &tmp.path().join(format!("{name}.txt")))
    };
    let (base, _) = restore(&empty_id, "restored-empty");
    let (c, table) = restore(&files_id, "restored");
    kopr_testkit::assert_same_tree(&src, &tmp.path().join("restored"));
    let calls = PerFile {
        run: &c,
        base: &base,
        table: &table,
    };
    assert!(
        calls.of("rename") > 0.9,
        "every file is renamed into place:\n{table}"
    );
    calls.assert_at_most(&[
        ("openat", 1.2),
        // Whether the destination is in the way: one lstat.
        ("statx", 1.2),
        ("rename", 1.1),
        // Owner and mode through the descriptor, not the path.
        ("fchmod", 1.1),
        ("chmod", 0.1),
        ("lchown", 0.1),
        // The readers create their files side by side (creating one under a shared lock
        // cost three futex calls a file).
        ("futex", 0.1),
    ]);
}

/// A run's system calls per file: those of the run over the files, less those of a baseline
/// run over an empty tree.
struct PerFile<'a> {
    run: &'a HashMap<String, u64>,
    base: &'a HashMap<String, u64>,
    /// strace's table, shown when an assertion fails.
    table: &'a str,
}

impl PerFile<'_> {
    fn of(&self, name: &str) -> f64 {
        let n = self.run.get(name).copied().unwrap_or(0);
        n.saturating_sub(self.base.get(name).copied().unwrap_or(0)) as f64 / FILES as f64
    }

    /// Asserts each `(syscall, most calls per file)` of `bounds`.
    fn assert_at_most(&self, bounds: &[(&str, f64)]) {
        for &(name, bound) in bounds {
            let n = self.of(name);
            assert!(
                n <= bound,
                "{name}: {n:.2} calls per file (at most {bound}):\n{}",
                self.table
            );
        }
    }
}

/// Counts the system calls of `snapshot create DIR`.
fn measure(
    strace: &str,
    k: &Kopr,
    dir: &std::path::Path,
    out_file: &std::path::Path,
) -> (HashMap<String, u64>, String) {
    run_counted(
        strace,
        k,
        &["snapshot", "create", dir.to_str().expect("utf-8")],
        out_file,
    )
}

/// Counts the system calls of the kopr command `args`.
fn run_counted(
    strace: &str,
    k: &Kopr,
    args: &[&str],
    out_file: &std::path::Path,
) -> (HashMap<String, u64>, String) {
    let run = Command::new(strace)
        .args(["-f", "-c", "-o"])
        .arg(out_file)
        .arg(env!("CARGO_BIN_EXE_kopr"))
        .args(args)
        .env("KOPR_CONFIG_PATH", k.cfg())
        .env("KOPR_PASSWORD", kopr_testkit::cli::PASSWORD)
        // Logs beside the config, not in the user's cache (as `Kopr::cmd` does).
        .env("KOPR_LOG_DIR", k.cfg().with_extension("logs"))
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
