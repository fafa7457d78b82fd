//! Command implementations, one module per command group.

pub mod benchmark;
mod blob;
pub(crate) mod cache_set;
mod content;
mod extra;
mod index;
mod logs;
mod maintenance;
mod manifest;
#[cfg(unix)]
mod mount;
pub(crate) mod notification;
pub(crate) mod policy;
pub(crate) mod policy_set;
mod policy_show;
pub(crate) mod repair;
pub(crate) mod repo_admin;
mod repository;
pub(crate) mod scan;
pub(crate) mod server;
pub(crate) mod snapshot;
mod sync_to;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_blob::readonly::ReadOnlyStorage;
use kopr_blob::{BlobError, BlobStorage};
use kopr_repo::content::WriterIdentity;
use kopr_repo::{OpenOptions, RepoError, Repository};

use crate::app::{Cli, Command};
use crate::config::{self, ConnectionConfig};
use crate::storage;

/// What every command gets: global flags and the config location.
pub struct Context {
    /// `--config-file` resolved.
    pub config_path: PathBuf,
    /// `--password` or the environment.
    pub password: Option<String>,
    /// `--dangerous-commands=enabled` (or its environment variable).
    pub dangerous_commands: bool,
    /// Progress bars wanted (`--[no-]progress`; on a terminal they are by default).
    pub progress: bool,
    /// Passwords persisted on connect (`--[no-]persist-credentials`).
    pub persist_credentials: bool,
    /// Whether this command records its log in the repository it opens (a command that
    /// writes to it, on a connection that is not read-only, without `--disable-repository-log`).
    pub repo_log: bool,
    /// `--upgrade-owner-id` (or its environment variable).
    pub upgrade_owner_id: Option<String>,
}

/// An environment variable under kopr's name, then Kopia's (`KOPR_X`, `KOPIA_X`).
pub fn env2(name: &str) -> Option<String> {
    std::env::var(format!("KOPR_{name}"))
        .ok()
        .or_else(|| std::env::var(format!("KOPIA_{name}")).ok())
        .filter(|v| !v.is_empty())
}

fn env_bool(name: &str) -> Result<Option<bool>> {
    env2(name)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => bail!("invalid boolean {v:?} in KOPR_{name} / KOPIA_{name}"),
        })
        .transpose()
}

/// A `--x[=bool]` / `--no-x` pair, then the environment, then `default`.
fn flag_pair(on: Option<bool>, off: bool, env: &str, default: bool) -> Result<bool> {
    if off {
        return Ok(false);
    }
    Ok(match on {
        Some(v) => v,
        None => env_bool(env)?.unwrap_or(default),
    })
}

/// The logging settings of the global flags and their environment variables.
pub fn log_settings(g: &crate::app::GlobalArgs) -> Result<crate::logging::LogSettings> {
    use crate::logging::{parse_level, LogSettings};
    let level = |flag: &Option<String>, env: &str, default: &str| {
        parse_level(
            &flag
                .clone()
                .or_else(|| env2(env))
                .unwrap_or_else(|| default.to_string()),
        )
    };
    let num = |flag: Option<String>, env: &str| -> Option<String> { flag.or_else(|| env2(env)) };
    let max_files = match num(
        g.log_dir_max_files.map(|n| n.to_string()),
        "LOG_DIR_MAX_FILES",
    ) {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| anyhow!("invalid log-dir-max-files {v:?}"))?,
        None => 1000,
    };
    let max_age = match num(g.log_dir_max_age.clone(), "LOG_DIR_MAX_AGE") {
        Some(v) => {
            std::time::Duration::from_nanos(repository::parse_duration_nanos(&v)?.max(0) as u64)
        }
        None => std::time::Duration::from_secs(720 * 3600),
    };
    let max_mb = match num(
        g.log_dir_max_total_size_mb.map(|n| n.to_string()),
        "LOG_DIR_MAX_SIZE_MB",
    ) {
        Some(v) => v
            .parse::<f64>()
            .map_err(|_| anyhow!("invalid log-dir-max-total-size-mb {v:?}"))?,
        None => 1000.0,
    };
    let max_segment = match num(
        g.max_log_file_segment_size.map(|n| n.to_string()),
        "LOG_FILE_MAX_SEGMENT_SIZE",
    ) {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| anyhow!("invalid max-log-file-segment-size {v:?}"))?,
        None => 50_000_000,
    };
    let log_dir = g
        .log_dir
        .clone()
        .or_else(|| env2("LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(crate::logging::default_log_dir);
    Ok(LogSettings {
        console: level(&g.log_level, "LOG_LEVEL", "info")?,
        file: level(&g.file_log_level, "FILE_LOG_LEVEL", "debug")?,
        log_file: (!g.disable_file_logging)
            .then(|| {
                g.log_file
                    .clone()
                    .or_else(|| env2("LOG_FILE").map(PathBuf::from))
            })
            .flatten(),
        log_dir: (!g.disable_file_logging).then_some(log_dir),
        max_files,
        max_age,
        max_total_bytes: (max_mb * 1e6) as u64,
        max_segment_bytes: max_segment,
    })
}

/// The commands that write to the repository they open, by their words, and so record their
/// log in it (Kopia logs its direct-repository writers and maintenance; `logs cleanup` is
/// left out as in Kopia).
const LOGGED_COMMANDS: &[&str] = &[
    "snapshot create",
    "snapshot delete",
    "snapshot expire",
    "snapshot pin",
    "snapshot fix",
    "snapshot copy-history",
    "snapshot move-history",
    "snapshot migrate",
    "policy set",
    "policy edit",
    "policy delete",
    "policy import",
    "maintenance run",
    "maintenance set",
    "manifest delete",
    "blob delete",
    "blob gc",
    "content delete",
    "content rewrite",
    "index recover",
    "index optimize",
    "repository change-password",
    "repository set-parameters",
    "repository upgrade",
    "repository validate-provider",
];

/// Whether the command of these words records its log in the repository.
pub fn logs_to_repository(words: &str) -> bool {
    LOGGED_COMMANDS
        .iter()
        .any(|c| words == *c || words.starts_with(&format!("{c} ")))
}

impl Context {
    fn from_cli(cli: &Cli, words: &str) -> Result<Context> {
        let g = &cli.global;
        if flag_pair(g.use_keyring, g.no_use_keyring, "USE_KEYRING", false)? {
            bail!("--use-keyring is not supported: kopr has no keyring support on this system (the password is persisted in a file readable only by you; use --no-persist-credentials to keep none)");
        }
        let disable_log =
            g.disable_repository_log || env_bool("DISABLE_REPOSITORY_LOG")?.unwrap_or(false);
        let password = cli
            .password
            .clone()
            .or_else(|| std::env::var("KOPR_PASSWORD").ok())
            .or_else(|| std::env::var("KOPIA_PASSWORD").ok());
        Ok(Context {
            config_path: config::config_path(cli.config_file.as_deref())?,
            password,
            dangerous_commands: cli
                .dangerous_commands
                .clone()
                .or_else(|| std::env::var("KOPR_DANGEROUS_COMMANDS").ok())
                .or_else(|| std::env::var("KOPIA_DANGEROUS_COMMANDS").ok())
                .is_some_and(|v| v == "enabled"),
            progress: flag_pair(
                g.progress,
                g.no_progress,
                "PROGRESS",
                std::io::stderr().is_terminal(),
            )?,
            persist_credentials: flag_pair(
                g.persist_credentials,
                g.no_persist_credentials,
                "PERSIST_CREDENTIALS_ON_CONNECT",
                true,
            )?,
            repo_log: !disable_log && logs_to_repository(words),
            upgrade_owner_id: g
                .upgrade_owner_id
                .clone()
                .or_else(|| env2("REPO_UPGRADE_OWNER_ID")),
        })
    }

    /// The password from flags, environment, the persisted file, or a prompt on a terminal.
    pub fn password(&self, prompt: &str, use_persisted: bool) -> Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if use_persisted {
            if let Some(p) = config::load_password(&self.config_path) {
                return Ok(p);
            }
        }
        if !std::io::stdin().is_terminal() {
            bail!("password required: use --password or set KOPR_PASSWORD (or KOPIA_PASSWORD)");
        }
        rpassword::prompt_password(prompt).context("cannot read password")
    }

    /// Loads the connection and opens the repository.
    pub fn open_repository(&self) -> Result<(ConnectionConfig, Repository)> {
        let cfg = ConnectionConfig::load(&self.config_path)?;
        let st = repo_admin::throttled(storage::open(&cfg.storage)?, cfg.throttling);
        let password = self.password("Enter password to open repository: ", true)?;
        let cache = config::FileKeyCache::new(&self.config_path);
        let repo = open_with(st, &password, &cfg, Some(&cache))?;
        if self.repo_log && !cfg.read_only {
            crate::logging::attach_repo_log(kopr_repo::repo_log::RepoLog::new(
                repo.storage().clone(),
                repo.format().clone(),
                repo.contents().clock().clone(),
            ));
        }
        Ok((cfg, repo))
    }
}

/// Opens a repository in `st` with the identity and cache of `cfg`. A read-only connection
/// opens it through [`ReadOnlyStorage`], so nothing any command does can change the storage.
pub fn open_with(
    st: Arc<dyn BlobStorage>,
    password: &str,
    cfg: &ConnectionConfig,
    key_cache: Option<&dyn kopr_repo::format_manager::FormatKeyCache>,
) -> Result<Repository> {
    let st: Arc<dyn BlobStorage> = if cfg.read_only {
        Arc::new(ReadOnlyStorage::new(st))
    } else {
        st
    };
    let opts = OpenOptions {
        cache_dir: cfg.cache_dir(),
        // Kopia's content cache: worth it where every read is a network round trip.
        // (unless `cache set` gave a size).
        content_cache_bytes: cfg
            .caching
            .content_cache_bytes(if cfg.storage.kind == "filesystem" {
                0
            } else {
                kopr_repo::content_cache::DEFAULT_CONTENT_CACHE_BYTES
            }),
        identity: WriterIdentity {
            user: cfg.username.clone(),
            host: cfg.hostname.clone(),
        },
        format_blob_cache_nanos: cfg.format_blob_cache_duration,
        ..OpenOptions::default()
    };
    let opened = match key_cache {
        Some(c) => Repository::open_cached(st, password, c, opts),
        None => Repository::open(st, password, opts),
    };
    opened.map_err(|e| match e {
        RepoError::InvalidPassword => anyhow!("invalid repository password"),
        e => anyhow!(e).context("unable to open repository"),
    })
}

/// Runs a parsed command line.
pub fn run(cli: Cli, words: &str) -> Result<()> {
    if let Command::Benchmark(c) = cli.command {
        return benchmark::run(c);
    }
    if let Command::Completion { shell } = cli.command {
        use clap::CommandFactory as _;
        let mut out = std::io::stdout().lock();
        clap_complete::generate(shell, &mut Cli::command(), "kopr", &mut out);
        return Ok(());
    }
    if let Command::Man { dir } = &cli.command {
        use clap::CommandFactory as _;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        return Ok(());
    }
    let ctx = Context::from_cli(&cli, words)?;
    crate::progress::set_enabled(ctx.progress);
    match cli.command {
        Command::Benchmark(_) | Command::Completion { .. } | Command::Man { .. } => {
            unreachable!("handled above")
        }
        Command::Repository(c) => match *c {
            crate::app::RepositoryCommand::Scan(a) => scan::run(&ctx, a),
            c => repository::run(&ctx, c),
        },
        Command::Content(c) => content::run(&ctx, c),
        Command::Blob(c) => blob::run(&ctx, c),
        Command::Index(c) => index::run(&ctx, c),
        Command::Policy(c) => policy::run(&ctx, c),
        Command::Maintenance(c) => maintenance::run(&ctx, c),
        Command::Manifest(c) => manifest::run(&ctx, c),
        Command::Logs(c) => logs::run(&ctx, c),
        Command::Cache(crate::app::CacheCommand::Set(a)) => cache_set::set(&ctx, &a),
        Command::Cache(crate::app::CacheCommand::Sync { .. }) => cache_set::sync(&ctx),
        Command::Cache(crate::app::CacheCommand::Prefetch { objects, .. }) => {
            cache_set::prefetch(&ctx, &objects)
        }
        Command::Cache(c) => extra::cache(&ctx, c),
        Command::Snapshot(c) => snapshot::run(&ctx, c),
        Command::Restore(a) => snapshot::run(&ctx, crate::app::SnapshotCommand::Restore(a)),
        Command::Diff(a) => snapshot::run(&ctx, crate::app::SnapshotCommand::Diff(a)),
        Command::Session(crate::app::SessionCommand::List) => session_list(&ctx),
        Command::Server(c) => server::run(&ctx, c),
        Command::Notification(c) => notification::run(&ctx, c),
        Command::Ls {
            object_path,
            long,
            recursive,
            show_object_id,
        } => snapshot::ls(&ctx, &object_path, long, recursive, show_object_id),
        Command::Show { object_path } => snapshot::show(&ctx, &object_path),
        #[cfg(unix)]
        Command::Mount { what, mountpoint } => mount::run(&ctx, &what, mountpoint),
        #[cfg(not(unix))]
        Command::Mount { .. } => anyhow::bail!("mount needs FUSE, which this platform lacks"),
    }
}

/// The one line for a command refused by a read-only connection, when `e` is that refusal.
pub fn read_only_refusal(e: &anyhow::Error) -> Option<String> {
    let refused = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<BlobError>(),
            Some(BlobError::ReadOnly { .. })
        ) || matches!(
            c.downcast_ref::<RepoError>(),
            Some(RepoError::Blob(BlobError::ReadOnly { .. }))
        ) || c.downcast_ref::<ReadOnlyConnection>().is_some()
    });
    refused.then(|| {
        // The command's words (`snapshot delete`), without its flags and arguments.
        let words: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .take_while(|a| a.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .take(2)
            .collect();
        format!(
            "the repository connection is read-only (connected with --readonly); reconnect without --readonly to run `kopr {}`",
            words.join(" ")
        )
    })
}

/// A command refused up front because the connection is read-only.
#[derive(Debug)]
pub struct ReadOnlyConnection;

impl std::fmt::Display for ReadOnlyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the repository connection is read-only (connected with --readonly)")
    }
}

impl std::error::Error for ReadOnlyConnection {}

/// Prints a histogram of sizes in Kopia's `N between A and B (total T)` shape.
pub fn print_histogram(sizes: impl Iterator<Item = i64>, fmt: &dyn Fn(i64) -> String) {
    let thresholds: Vec<i64> = (1..=8).map(|i| 10i64.pow(i)).collect();
    let mut counts = vec![0u64; thresholds.len()];
    let mut totals = vec![0i64; thresholds.len()];
    for s in sizes {
        if let Some(i) = thresholds.iter().position(|&t| s < t) {
            counts[i] += 1;
            totals[i] += s;
        }
    }
    let mut last = 0;
    for (i, &t) in thresholds.iter().enumerate() {
        println!(
            "{:>9} between {} and {} (total {})",
            counts[i],
            fmt(last),
            fmt(t),
            fmt(totals[i])
        );
        last = t;
    }
}

/// Kopia's timestamp format, in local time.
pub fn format_timestamp(ts: chrono::DateTime<chrono::Utc>) -> String {
    let local = ts.with_timezone(&chrono::Local);
    if local.offset().local_minus_utc() == 0 {
        return ts.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    }
    local.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// Refuses a command that can corrupt the repository unless `--dangerous-commands=enabled`
/// was given, with Kopia's warning.
pub fn require_dangerous(ctx: &Context) -> Result<()> {
    if ctx.dangerous_commands {
        return Ok(());
    }
    eprintln!(
        "\nThis command is dangerous, it can corrupt the repository and result in data loss.\n\n\
         Running this command is not needed for using Kopia. Instead, rely on periodic repository maintenance. \
         See https://kopia.io/docs/advanced/maintenance/ for more information.\n\
         To run this command despite the warning, set --dangerous-commands=enabled\n"
    );
    bail!("dangerous commands are disabled")
}

/// Kopia's `--json` list: `[`, then the items separated by `,` and a new line, then `]`.
pub struct JsonList {
    on: bool,
    separator: &'static str,
}

impl JsonList {
    /// Starts a list (prints nothing unless `on`).
    pub fn begin(on: bool, out: &mut dyn std::io::Write) -> Result<JsonList> {
        if on {
            write!(out, "[")?;
        }
        Ok(JsonList {
            on,
            separator: "\n ",
        })
    }

    /// One item.
    pub fn emit(&mut self, out: &mut dyn std::io::Write, v: &impl serde::Serialize) -> Result<()> {
        write!(out, "{}{}", self.separator, serde_json::to_string(v)?)?;
        self.separator = ",\n ";
        Ok(())
    }

    /// Ends the list.
    pub fn end(self, out: &mut dyn std::io::Write) -> Result<()> {
        if self.on {
            writeln!(out, "\n]")?;
        }
        Ok(())
    }
}

/// JSON text indented by two spaces per level as Go's `json.Indent` does, keys and values kept
/// as they are (empty objects and arrays stay `{}` and `[]`).
pub fn go_json_indent(src: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = src.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Kopia's `session list`: the live write sessions (those whose marker blobs are present),
/// oldest first.
fn session_list(ctx: &Context) -> Result<()> {
    use std::io::Write;
    let (_, repo) = ctx.open_repository()?;
    let mut sessions: Vec<_> = repo
        .contents()
        .active_sessions()
        .context("error listing sessions")?
        .into_values()
        .collect();
    sessions.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
    let mut out = std::io::stdout().lock();
    for s in sessions {
        writeln!(
            out,
            "{} {}@{} {} {}",
            s.id,
            s.user,
            s.host,
            format_timestamp(s.start_time),
            format_timestamp(s.checkpoint_time)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::go_json_indent;

    #[test]
    fn json_is_indented_as_gos_json_indent() {
        // What Go's json.Indent(dst, src, "", "  ") gives for the same input.
        let src = r#"{"a":[],"b":{"c":1,"d":"x,y:{\"}"},"e":[1,{}],"f":null}"#;
        let want = "{\n  \"a\": [],\n  \"b\": {\n    \"c\": 1,\n    \"d\": \"x,y:{\\\"}\"\n  },\n  \"e\": [\n    1,\n    {}\n  ],\n  \"f\": null\n}";
        assert_eq!(go_json_indent(src), want);
        assert_eq!(go_json_indent(" [ ] "), "[]");
        assert_eq!(go_json_indent("\"s\""), "\"s\"");
    }
}
