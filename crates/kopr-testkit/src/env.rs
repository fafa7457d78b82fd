//! What a test needs from the machine it runs on, and what it does when that is missing: a
//! skipped test is never a silent pass. [`skip`] prints `SKIPPED: ...` on the process's real
//! stderr (the test harness captures `eprintln!` of passing tests, so a skip printed that way
//! is invisible) and fails the test when `CI` is set; `.ci/run` counts those lines.
//!
//! Tests whose assertions differ for root and for other users run as both: as root,
//! [`rerun_as_nobody`] runs the same test again in a child process of the test binary whose
//! user is `nobody` (uid/gid 65534, via `setpriv`).

use std::io::Write;
use std::process::Command;

/// The user id `rerun_as_nobody` switches to.
pub const NOBODY: u32 = 65534;

/// Set in the child that [`rerun_as_nobody`] starts.
const AS_NOBODY_ENV: &str = "KOPR_TEST_AS_NOBODY";

/// Reports a test that cannot run here: panics with `reason` when `CI` is set, otherwise
/// writes `SKIPPED: <test>: <reason>` to the real stderr (visible in the summary of a
/// passing run). The caller returns right after.
pub fn skip(test: &str, reason: &str) {
    let msg = format!("SKIPPED: {test}: {reason}");
    if std::env::var_os("CI").is_some() {
        panic!("NOT RUN (CI is set, so a skip is a failure): {test}: {reason}");
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{msg}");
    let _ = err.flush();
}

/// Whether this process runs as root (effective uid 0).
#[cfg(unix)]
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether this process runs as root (never, off Unix).
#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}

/// Whether this process is the `nobody` child started by [`rerun_as_nobody`].
pub fn in_nobody_child() -> bool {
    std::env::var_os(AS_NOBODY_ENV).is_some()
}

/// As root (and not already the child), runs the test named `test` (its full name as the
/// harness lists it, e.g. `tests::name` in a unit test, `name` in an integration test) again in
/// the current test binary as user `nobody`, and asserts that exactly that one test ran and
/// passed there. Does nothing otherwise. When `setpriv` is missing, reports a [`skip`].
pub fn rerun_as_nobody(test: &str) {
    if !is_root() || in_nobody_child() {
        return;
    }
    let exe = std::env::current_exe().expect("current test binary");
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_setpriv {
        skip(test, "no `setpriv` to run the non-root half of this test");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(AS_NOBODY_ENV, "1")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test} as nobody failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run as nobody:\n{stdout}\n{stderr}"
    );
}
