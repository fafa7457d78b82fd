//! Storage that cannot take writes: a repository path that is a file, a full disk and a
//! read-only file system each give a one-line error and a non-zero exit, and what was stored
//! before still verifies and restores. The full and read-only cases use a small tmpfs and
//! are skipped (with a message) where mounting is not permitted.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

use kopr_testkit::cli::{one_error_line, Kopr};
use kopr_testkit::random_bytes;

fn kopr(cfg: &Path, args: &[&str]) -> std::process::Output {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).run(args)
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), cfg).ok(args)
}

#[test]
fn a_repository_path_that_is_a_file_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let cfg = tmp.path().join("c.config");
    for verb in ["create", "connect"] {
        let out = kopr(
            &cfg,
            &[
                "repository",
                verb,
                "filesystem",
                "--path",
                file.to_str().unwrap(),
            ],
        );
        let err = one_error_line(&out);
        assert!(err.contains(file.to_str().unwrap()), "{err}");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"x",
        "nothing was written over it"
    );
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        st.status.success().then(|| Tmpfs(at.to_path_buf()))
    }
    fn read_only(&self) {
        let st = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_and_a_read_only_file_system_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "6m") else {
        kopr_testkit::env::skip(
            "a_full_disk_and_a_read_only_file_system_fail_cleanly",
            "cannot mount a tmpfs here (needs root and mount permission)",
        );
        return;
    };
    let repo = fs.0.join("repo");
    let cfg = tmp.path().join("c.config");
    Kopr::new(env!("CARGO_BIN_EXE_kopr"), &cfg).create_filesystem(&repo);
    let small = tmp.path().join("small-src");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("a"), random_bytes(1, 500_000)).unwrap();
    let out = ok(
        &cfg,
        &["snapshot", "create", small.to_str().unwrap(), "--json"],
    );
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // twice the disk's size of incompressible data
    let big = tmp.path().join("big-src");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..6 {
        std::fs::write(big.join(format!("b{i}")), random_bytes(10 + i, 2 << 20)).unwrap();
    }
    let err = one_error_line(&kopr(&cfg, &["snapshot", "create", big.to_str().unwrap()]));
    assert!(err.to_lowercase().contains("space"), "{err}");
    ok(&cfg, &["snapshot", "verify"]);
    ok(&cfg, &["content", "verify"]);
    let dest = tmp.path().join("r1");
    ok(&cfg, &["snapshot", "restore", &id, dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dest.join("a")).unwrap(),
        random_bytes(1, 500_000)
    );

    fs.read_only();
    let err = one_error_line(&kopr(
        &cfg,
        &["snapshot", "create", small.to_str().unwrap()],
    ));
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    let dest = tmp.path().join("r2");
    ok(&cfg, &["snapshot", "restore", &id, dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dest.join("a")).unwrap(),
        random_bytes(1, 500_000)
    );
}
