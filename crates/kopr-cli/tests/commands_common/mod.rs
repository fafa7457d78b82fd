//! Helpers shared by the cli_commands tests: a connected repository and outputs as text.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

pub use kopr_testkit::cli::blob_files;
use kopr_testkit::cli::{CliEnv, Kopr};
use std::path::Path;
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// The shared CLI test setup: repository, connection, source tree.
pub type Env = CliEnv;

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Restores `id` with `k` into a new directory and compares it with `src`, byte for byte.
pub fn assert_restores(k: &Kopr, id: &str, src: &Path, into: &Path) {
    k.ok(&["snapshot", "restore", id, into.to_str().unwrap()]);
    for rel in ["a.txt", "sub/b.bin"] {
        assert_eq!(
            std::fs::read(src.join(rel)).unwrap(),
            std::fs::read(into.join(rel)).unwrap(),
            "{rel} restored differently"
        );
    }
}

pub fn set_age_days(path: &Path, days: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86400);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}
