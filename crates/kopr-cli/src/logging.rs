//! Diagnostics through `tracing`, to three places as Kopia's logging does:
//!
//! - the console (stderr) at `--log-level` (default `info`): an info event prints its message
//!   alone, other levels are prefixed with the level, as Kopia's console;
//! - a log file per run at `--file-log-level` (default `debug`), `--log-file`, or
//!   `<log-dir>/cli-logs/kopr-<YYYYmmdd-HHMMSS>-<pid>-<command>.<segment>.log` (default log dir
//!   in the per-user cache, `latest.log` pointing at the newest), a new segment every
//!   `--max-log-file-segment-size` bytes, and old files swept as Kopia sweeps them (more than
//!   1000 files, 1000 MB or 30 days);
//! - the repository's own log (`_log` blobs, [`kopr_repo::repo_log`]) while a command that
//!   writes to the repository runs: Kopia's JSON lines (`t`, `span:client`, `span:repo`, `n`
//!   the logger name, `m` the message, then the event's fields), starting with the command line,
//!   secrets redacted.
//!
//! Output meant for the user (tables, summaries) stays on stdout and stderr as it was; only
//! diagnostics go through here.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use chrono::{SecondsFormat, Utc};
use kopr_repo::repo_log::RepoLog;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
use tracing_subscriber::Layer;

/// Events of this target skip the console (what the command already printed there, such as
/// its final error).
pub const QUIET_TARGET: &str = "cli-quiet";

/// Kopia's level names, most verbose first.
pub const LEVELS: [&str; 4] = ["debug", "info", "warning", "error"];

/// Where and how much to log, resolved from flags and the environment.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Console level.
    pub console: Level,
    /// File level.
    pub file: Level,
    /// An explicit log file (no rotation, no sweep).
    pub log_file: Option<PathBuf>,
    /// The log directory (`cli-logs/` beneath it); `None` disables file logging.
    pub log_dir: Option<PathBuf>,
    /// Sweep: most files kept.
    pub max_files: usize,
    /// Sweep: oldest kept.
    pub max_age: Duration,
    /// Sweep: most bytes kept.
    pub max_total_bytes: u64,
    /// A new segment when the current one would pass this many bytes.
    pub max_segment_bytes: u64,
}

/// Parses a Kopia level name.
pub fn parse_level(s: &str) -> Result<Level> {
    Ok(match s {
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warning" | "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => bail!("invalid log level {s:?}: use one of debug, info, warning, error"),
    })
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// The per-user default log directory (Kopia's is `~/.cache/kopia`).
pub fn default_log_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kopr")
}

/// One event, its message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs.push((field.name().to_string(), value.into()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pairs.push((field.name().to_string(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pairs.push((field.name().to_string(), value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pairs.push((field.name().to_string(), value.into()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs
                .push((field.name().to_string(), format!("{value:?}").into()));
        }
    }
}

/// The repository log a writing command attached, with Kopia's span ids of this process.
struct RepoSink {
    log: Arc<RepoLog>,
    client_span: String,
    repo_span: String,
}

/// The rotating log file.
struct FileSink {
    dir: PathBuf,
    base: String,
    explicit: bool,
    segment: usize,
    written: u64,
    max_segment_bytes: u64,
    file: Option<File>,
    /// The file could not be opened: no more attempts.
    broken: bool,
}

impl FileSink {
    fn write_line(&mut self, line: &str) {
        if self.broken {
            return;
        }
        if self.file.is_some()
            && !self.explicit
            && self.written + line.len() as u64 > self.max_segment_bytes
        {
            self.file = None;
        }
        if self.file.is_none() {
            let name = if self.explicit {
                self.base.clone()
            } else {
                let n = self.segment;
                self.segment += 1;
                match self.base.rsplit_once('.') {
                    Some((stem, ext)) => format!("{stem}.{n}.{ext}"),
                    None => format!("{}.{n}", self.base),
                }
            };
            let path = self.dir.join(&name);
            match File::create(&path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    // A file asked for by name is worth a word; the default one is best-effort
                    // (a user without a writable cache still runs every command).
                    if self.explicit {
                        eprintln!("unable to open log file {}: {e}", path.display());
                    }
                    self.broken = true;
                    return;
                }
            }
            self.written = 0;
            if !self.explicit {
                let link = self.dir.join("latest.log");
                let _ = std::fs::remove_file(&link);
                #[cfg(unix)]
                let _ = std::os::unix::fs::symlink(&name, &link);
            }
        }
        if let Some(f) = &mut self.file {
            if f.write_all(line.as_bytes()).is_ok() {
                self.written += line.len() as u64;
            }
        }
    }
}

/// The layer that sends each event where its level says.
struct KoprLayer {
    console: Level,
    file_level: Level,
    file: Option<Mutex<FileSink>>,
}

static REPO_SINK: Mutex<Option<RepoSink>> = Mutex::new(None);

impl<S: Subscriber> Layer<S> for KoprLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        let level = *meta.level();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let target = meta.target();
        let name = if target == QUIET_TARGET {
            "cli"
        } else {
            target
        };
        if level <= self.console && target != QUIET_TARGET {
            let mut line = String::new();
            if level != Level::INFO {
                line.push_str(level_name(&level));
                line.push(' ');
            }
            // The message alone: fields are for the file and the repository log.
            line.push_str(&fields.message);
            eprintln!("{line}");
        }
        let now = Utc::now();
        if level <= self.file_level {
            if let Some(file) = &self.file {
                let mut line = format!(
                    "{} {} {} {}",
                    now.to_rfc3339_opts(SecondsFormat::Micros, true),
                    level_name(&level),
                    name,
                    fields.message
                );
                for (k, v) in &fields.pairs {
                    let _ = write!(line, " {k}={v}");
                }
                line.push('\n');
                if let Ok(mut f) = file.lock() {
                    f.write_line(&line);
                }
            }
        }
        if level <= Level::DEBUG {
            let Ok(sink) = REPO_SINK.lock() else { return };
            if let Some(s) = sink.as_ref() {
                // Kopia's key order: time, spans, logger name, message, then the fields.
                let js = |v: &str| serde_json::Value::from(v).to_string();
                let mut line = format!(
                    "{{\"t\":{},\"span:client\":{},\"span:repo\":{},\"n\":{},\"m\":{}",
                    js(&now.to_rfc3339_opts(SecondsFormat::Micros, true)),
                    js(&s.client_span),
                    js(&s.repo_span),
                    js(name),
                    js(&fields.message)
                );
                for (k, v) in &fields.pairs {
                    let _ = write!(line, ",{}:{v}", js(k));
                }
                line.push_str("}\n");
                if let Err(e) = s.log.append(line.as_bytes()) {
                    eprintln!("unable to write the repository log: {e}");
                }
            }
        }
    }
}

/// Installs the subscriber for this process; `command` names the log file (`snapshot-create`).
pub fn init(settings: &LogSettings, command: &str) {
    let file = file_sink(settings, command).map(Mutex::new);
    let layer = KoprLayer {
        console: settings.console,
        file_level: settings.file,
        file,
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    // A second init (tests in one process) keeps the first.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

fn file_sink(settings: &LogSettings, command: &str) -> Option<FileSink> {
    if let Some(f) = &settings.log_file {
        let f = std::path::absolute(f).unwrap_or_else(|_| f.clone());
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir);
        return Some(FileSink {
            dir,
            base: f.file_name()?.to_string_lossy().into_owned(),
            explicit: true,
            segment: 0,
            written: 0,
            max_segment_bytes: u64::MAX,
            file: None,
            broken: false,
        });
    }
    let dir = settings.log_dir.as_ref()?.join("cli-logs");
    // Best-effort, as the file itself: no log directory, no log file, no complaint.
    create_private_dir(&dir).ok()?;
    sweep(&dir, settings);
    let base = format!(
        "kopr-{}-{}-{}.log",
        Utc::now().format("%Y%m%d-%H%M%S"),
        std::process::id(),
        if command.is_empty() {
            "unknown"
        } else {
            command
        }
    );
    Some(FileSink {
        dir,
        base,
        explicit: false,
        segment: 0,
        written: 0,
        max_segment_bytes: settings.max_segment_bytes.max(1),
        file: None,
        broken: false,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Kopia's sweep of a log directory: newest first, a file goes once the count, the total size
/// or the age passes its limit.
fn sweep(dir: &Path, s: &LogSettings) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("kopr-") && n.ends_with(".log")
        })
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            Some((md.modified().ok()?, md.len(), e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let cutoff = SystemTime::now().checked_sub(s.max_age);
    let (mut count, mut total) = (0usize, 0u64);
    for (mtime, len, path) in files {
        count += 1;
        total += len;
        let too_old = !s.max_age.is_zero() && cutoff.is_some_and(|c| mtime < c);
        let too_many = s.max_files > 0 && count > s.max_files;
        if too_many || total > s.max_total_bytes || too_old {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts recording this process's events into the repository's log: the command line first.
pub fn attach_repo_log(log: RepoLog) {
    let sink = RepoSink {
        log: Arc::new(log),
        client_span: span_id(16),
        repo_span: span_id(8),
    };
    if let Ok(mut g) = REPO_SINK.lock() {
        *g = Some(sink);
    }
    let args = redact_args(std::env::args().collect());
    tracing::debug!(
        target: "cli",
        version = env!("CARGO_PKG_VERSION"),
        args = args.join(" "),
        "command line"
    );
}

/// Writes what is left of the repository log; a failure is a warning, never the command's.
pub fn close_repo_log() {
    let sink = REPO_SINK.lock().ok().and_then(|mut g| g.take());
    if let Some(s) = sink {
        if let Err(e) = s.log.close() {
            eprintln!("WARNING: unable to write the repository log: {e}");
        }
    }
}

/// Kopia's random span ids: lowercase letters and digits.
fn span_id(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rand::random::<usize>() % CHARS.len()] as char)
        .collect()
}

/// Whether a flag's value is a secret: passwords, keys, tokens, credentials.
fn is_secret_flag(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    if n.contains("keyring") {
        return false;
    }
    n == "p"
        || [
            "password",
            "secret",
            "token",
            "key",
            "credentials-json",
            "sas",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// The command line with the values of secret flags replaced by `****`.
pub fn redact_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next {
            out.push("****".to_string());
            hide_next = false;
            continue;
        }
        if let Some((flag, _)) = a.split_once('=').filter(|(f, _)| f.starts_with('-')) {
            if is_secret_flag(flag) {
                out.push(format!("{flag}=****"));
                continue;
            }
        } else if a.starts_with("-p") && a.len() > 2 && !a.starts_with("--") {
            out.push("-p****".to_string());
            continue;
        } else if a.starts_with('-') && is_secret_flag(&a) {
            hide_next = true;
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_every_spelling() {
        let args: Vec<String> = [
            "kopr",
            "--password",
            "S1x",
            "--password=S2x",
            "-p",
            "S3x",
            "-pS4x",
            "repository",
            "connect",
            "s3",
            "--secret-access-key",
            "S5x",
            "--access-key=AKIA",
            "--session-token",
            "S6x",
            "--storage-key=S7x",
            "--sas-token",
            "S8x",
            "--webdav-password=S9x",
            "--new-password",
            "S10x",
            "--bucket",
            "b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = redact_args(args).join(" ");
        for i in 1..=10 {
            assert!(!out.contains(&format!("S{i}x")), "{out}");
        }
        assert!(!out.contains("AKIA"), "{out}");
        assert!(out.contains("--bucket b"), "{out}");
        assert!(out.contains("repository connect s3"), "{out}");
    }
}
