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
            // The default cache directory (the per-user cache's kopr/<hash of the config
            // path>) beside the config too: a test run must leave the user's cache alone.
            .env("XDG_CACHE_HOME", self.cfg.with_extension("cache-home"))
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
        succeeded(&out, format_args!("kopr {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, requires success, returns stderr (where logs go).
    pub fn ok_stderr(&self, args: &[&str]) -> String {
        let out = self.run(args);
        succeeded(&out, format_args!("kopr {args:?}"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Creates a filesystem repository at `repo` with a fast key derivation and connects.
    pub fn create_filesystem(&self, repo: &Path) {
        self.create_filesystem_with(repo, &[]);
    }

    /// [`Kopr::create_filesystem`] with `extra` flags after the usual ones.
    pub fn create_filesystem_with(&self, repo: &Path, extra: &[&str]) {
        let mut args = vec![
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().expect("utf-8 path"),
            "--format-block-key-derivation-algorithm",
            "testing-only-insecure",
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }
}

/// Asserts that `out` is a success; the failure message names `what` (the command, where it
/// ran) and gives its stderr.
pub fn succeeded(out: &Output, what: std::fmt::Arguments<'_>) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A temporary directory holding a filesystem repository (`repo`), a connection to it (`k`,
/// its config under `cfg/`) and a source tree (`src`): the setup of most CLI tests.
#[derive(Debug)]
pub struct CliEnv {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub src: PathBuf,
    pub k: Kopr,
}

impl CliEnv {
    /// Creates and connects the repository with binary `bin`, and writes `files` (path under
    /// `src`, contents) into the source tree.
    pub fn new(bin: &str, files: &[(&str, &[u8])]) -> CliEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).expect("source dir");
        for (rel, data) in files {
            let path = src.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("source subdir");
            }
            std::fs::write(path, data).expect("source file");
        }
        let k = Kopr::new(bin, &dir.path().join("cfg/repository.config"));
        k.create_filesystem(&repo);
        CliEnv { dir, repo, src, k }
    }

    /// The small tree of the command tests: `a.txt` (a line of text) and `sub/b.bin` (300 kB of
    /// random bytes, so it spans several chunks).
    pub fn small_tree(bin: &str) -> CliEnv {
        let big = crate::random_bytes(7, 300_000);
        CliEnv::new(bin, &[("a.txt", b"hello kopr\n"), ("sub/b.bin", &big)])
    }

    /// `name` in the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The source tree's path as a string.
    pub fn src(&self) -> &str {
        self.src.to_str().expect("utf-8 path")
    }

    /// The file of blob `id` in the repository (unsharded: `_`-prefixed blobs, say).
    pub fn blob_file(&self, id: &str) -> PathBuf {
        self.repo.join(format!("{id}.f"))
    }

    /// `snapshot ls --all --json`.
    pub fn snapshots_json(&self) -> Vec<serde_json::Value> {
        let out = self.k.ok(&["snapshot", "ls", "--all", "--json"]);
        serde_json::from_str(&out).expect("snapshot ls JSON")
    }

    /// Snapshots the source tree; returns the snapshot's id.
    pub fn snapshot(&self) -> String {
        let out = self.k.ok(&["snapshot", "create", self.src(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("snapshot JSON");
        v["id"].as_str().expect("snapshot id").to_string()
    }
}

/// Every blob file of a filesystem repository by blob id (the shard directories joined).
pub fn blob_files(repo: &Path) -> std::collections::BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, out: &mut std::collections::BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(dir).expect("repository dir") {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().expect("file type").is_dir() {
                walk(&e.path(), &format!("{prefix}{name}"), out);
            } else if let Some(stem) = name.strip_suffix(".f") {
                out.insert(format!("{prefix}{stem}"), e.path());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(repo, "", &mut out);
    out
}

/// The value and origin of row `name` of `policy show`'s table (Kopia's: values aligned in one
/// column, then where each is defined), white space folded; empty when there is no such row.
pub fn policy_row(shown: &str, name: &str) -> String {
    shown
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| {
            l[name.len()..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
