//! `kopr mount`: Kopia's own repository mounted read-only through FUSE shows each snapshot's
//! tree exactly as Kopia snapshotted it (bytes, modes with special bits, mtimes, symlinks,
//! owners), serves reads at any offset and to several readers at once, shows `all` sources by
//! time, refuses writes, and unmounts on `umount` and on Ctrl-C.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kopr_testkit::cli::Kopr;
use kopr_testkit::fixtures::Fixture;
use kopr_testkit::tree::{self, Compare};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// Whether FUSE mounts can be made here (root and /dev/fuse); otherwise a loud skip.
fn fuse_usable(test: &str) -> bool {
    if !Path::new("/dev/fuse").exists() {
        kopr_testkit::env::skip(test, "/dev/fuse is missing");
        return false;
    }
    if !kopr_testkit::env::is_root() {
        kopr_testkit::env::skip(test, "mounting FUSE here needs root");
        return false;
    }
    true
}

fn mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let d = dir.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&*d))
}

/// A running `kopr mount`; dropping it (a failed test) unmounts lazily and ends the process.
struct Mounted {
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `kopr mount WHAT DIR` in the background, once the mount is there.
fn mount(k: &Kopr, what: &str, dir: &Path) -> Mounted {
    std::fs::create_dir_all(dir).expect("mount point");
    let child = k
        .cmd(&["mount", what, dir.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kopr mount");
    let m = Mounted {
        dir: dir.to_path_buf(),
        child: Some(child),
    };
    let t = Instant::now();
    while !mounted(dir) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "mount did not appear"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    m
}

/// `umount DIR`, after which `kopr mount` ends by itself with success.
fn unmount(mut m: Mounted) {
    let st = Command::new("umount").arg(&m.dir).status().expect("umount");
    assert!(st.success(), "umount {}", m.dir.display());
    let mut child = m.child.take().expect("running");
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "kopr mount ended with {st:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "kopr mount did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open_fixture(tmp: &Path) -> Option<(Fixture, Kopr)> {
    let fx = Fixture::load("default")?;
    let (_, k) = fx.connect_copy(BIN, tmp);
    Some((fx, k))
}

#[test]
fn a_mounted_kopia_snapshot_is_its_tree() {
    if !fuse_usable("a_mounted_kopia_snapshot_is_its_tree") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((fx, k)) = open_fixture(tmp.path()) else {
        return;
    };
    for (i, s) in fx.live_snapshots().into_iter().enumerate() {
        let dir = tmp.path().join(format!("m{i}"));
        let m = mount(&k, &s.id, &dir);
        let d = tree::differences(&s.nodes(), &tree::scan(&dir), Compare::all());
        let big = dir.join("data/big.bin");
        let whole = std::fs::read(&big).expect("read big.bin");
        // Reads at offsets across chunk boundaries give the same bytes as a whole read.
        let mut f = std::fs::File::open(&big).expect("open");
        for (n, off) in [0u64, 1, 4095, 1 << 20, 2 << 20, whole.len() as u64 - 7]
            .into_iter()
            .enumerate()
        {
            let mut buf = vec![0u8; 70_000 + n];
            f.seek(SeekFrom::Start(off)).expect("seek");
            let got = f.read(&mut buf).expect("read");
            let end = (off as usize + got).min(whole.len());
            assert_eq!(&buf[..got], &whole[off as usize..end], "offset {off}");
        }
        // Two readers at once.
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let p = big.clone();
                std::thread::spawn(move || std::fs::read(p).expect("read"))
            })
            .collect();
        for r in readers {
            assert!(r.join().expect("reader") == whole);
        }
        let refused = std::fs::OpenOptions::new().write(true).open(&big);
        assert!(refused.is_err(), "a write open succeeded");
        drop(f);
        unmount(m);
        assert!(
            d.is_empty(),
            "snapshot {} mounted differently:\n{}",
            s.id,
            d.join("\n")
        );
    }
}

#[test]
fn mount_all_groups_sources_and_snapshots_by_time_and_ctrl_c_unmounts() {
    if !fuse_usable("mount_all_groups_sources_and_snapshots_by_time_and_ctrl_c_unmounts") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((fx, k)) = open_fixture(tmp.path()) else {
        return;
    };
    let dir = tmp.path().join("all");
    let mut m = mount(&k, "all", &dir);
    let path_dir: PathBuf = dir.join("alice@laptop").join("_home_alice_documents");
    let mut times: Vec<String> = std::fs::read_dir(&path_dir)
        .expect("source directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    times.sort();
    assert_eq!(times.len(), fx.live_snapshots().len(), "{times:?}");
    let newest = fx.live_snapshots().last().expect("a snapshot").nodes();
    let d = tree::differences(
        &newest,
        &tree::scan(&path_dir.join(times.last().expect("newest"))),
        Compare::all(),
    );
    // Ctrl-C unmounts.
    let child = m.child.take().expect("running");
    // SAFETY: sending SIGINT to the child we started.
    unsafe {
        libc_kill(child.id() as i32, 2);
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!mounted(&dir), "still mounted after Ctrl-C");
    assert!(
        d.is_empty(),
        "newest snapshot under all/:\n{}",
        d.join("\n")
    );
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn mounting_on_a_missing_directory_is_one_error_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((fx, k)) = open_fixture(tmp.path()) else {
        return;
    };
    let id = fx.live_snapshots()[0].id.clone();
    let out = k.run(&[
        "mount",
        &id,
        tmp.path().join("nope").to_str().expect("utf-8"),
    ]);
    let line = kopr_testkit::cli::one_error_line(&out);
    assert!(line.contains("is not a directory"), "{line}");
}
