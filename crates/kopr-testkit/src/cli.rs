//! Running the `kopr` binary from CLI tests: a config file per repository connection, the
//! password in the environment, no terminal, and assertions on exit status and error lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The password the CLI tests use.
pub const PASSWORD: &str = "pw123";

/// One connection: the binary and a config file.
#[derive(Debug, Clone)]
pub struct Kopr {
    bin: PathBuf,
    cfg: PathBuf,
    password: String,
}

impl Kopr {
    /// `bin` is `env!("CARGO_BIN_EXE_kopr")` of the calling test.
    pub fn new(bin: &str, cfg: &Path) -> Kopr {
        Kopr {
            bin: bin.into(),
            cfg: cfg.to_path_buf(),
            password: PASSWORD.into(),
        }
    }

    /// The same connection with another password (a Kopia fixture's, say).
    pub fn with_password(mut self, password: &str) -> Kopr {
        self.password = password.into();
        self
    }

    /// The config file.
    pub fn cfg(&self) -> &Path {
        &self.cfg
    }

    /// A command with the connection's environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("KOPR_CONFIG_PATH", &self.cfg)
            .env("KOPR_PASSWORD", &self.password)
            .env("TZ", "UTC")
            // Log files beside the config, not in the user's cache.
            .env("KOPR_LOG_DIR", self.cfg.with_extension("logs"))
            .env_remove("KOPIA_PASSWORD")
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("kopr runs")
    }

    /// Runs, requires success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, requires success, returns stderr (where logs go).
    pub fn ok_stderr(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kopr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Creates a filesystem repository at `repo` with a fast key derivation and connects.
    pub fn create_filesystem(&self, repo: &Path) {
        self.ok(&[
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().expect("utf-8 path"),
            "--format-block-key-derivation-algorithm",
            "testing-only-insecure",
        ]);
    }
}

/// Asserts a failure whose error is exactly one line, the last one on stderr (progress lines
/// may come first); returns that line.
pub fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let all = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = all.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {all}");
    assert_eq!(all.trim_end().lines().last(), Some(errors[0]), "{all}");
    errors[0].to_string()
}

/// Blob ids and lengths from `kopr blob ls --json` output (one JSON object a line).
pub fn blob_lengths(blob_ls_json: &str) -> std::collections::BTreeMap<String, u64> {
    blob_ls_json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("blob ls --json line");
            (
                v["id"].as_str().expect("id").to_string(),
                v["length"].as_u64().expect("length"),
            )
        })
        .collect()
}
