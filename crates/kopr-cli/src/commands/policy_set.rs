//! The `policy set` flags of the policy sections kopr keeps as JSON (scheduling, upload,
//! splitter, actions, logging, OS snapshots, metadata compression) and of the rarer fields of
//! files, compression, error handling and retention, with Kopia's names, values and log lines
//! (`inherit` removes a setting, so the parent's applies again).

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_format::policy::Policy;
use serde_json::{json, Map, Value};

/// Kopia's `policy set` flags beyond retention, compression, ignore rules and error handling.
#[derive(Debug, Default, clap::Args)]
pub struct PolicySetMoreArgs {
    /// Do not save identical snapshots (or 'inherit').
    #[arg(long = "ignore-identical-snapshots")]
    pub ignore_identical_snapshots: Option<String>,
    /// Clear list of paths in the ignore list.
    #[arg(long = "clear-ignore")]
    pub clear_ignore: bool,
    /// List of paths to remove from the dot-ignore list.
    #[arg(long = "remove-dot-ignore")]
    pub remove_dot_ignore: Vec<String>,
    /// Clear list of paths in the dot-ignore list.
    #[arg(long = "clear-dot-ignore")]
    pub clear_dot_ignore: bool,
    /// Exclude files above given size (or 'inherit').
    #[arg(long = "max-file-size")]
    pub max_file_size: Option<String>,
    /// Stay in parent filesystem when finding files ('true', 'false', 'inherit').
    #[arg(long = "one-file-system", value_parser = ["true", "false", "inherit"])]
    pub one_file_system: Option<String>,
    /// Ignore unknown entry types in directories ('true', 'false', 'inherit').
    #[arg(long = "ignore-unknown-types", value_parser = ["true", "false", "inherit"])]
    pub ignore_unknown_types: Option<String>,
    /// Max size of file to attempt compression for.
    #[arg(long = "compression-max-size")]
    pub compression_max_size: Option<i64>,
    /// List of extensions to remove from the only-compress list.
    #[arg(long = "remove-only-compress")]
    pub remove_only_compress: Vec<String>,
    /// Clear list of extensions in the only-compress list.
    #[arg(long = "clear-only-compress")]
    pub clear_only_compress: bool,
    /// List of extensions to remove from the never compress list.
    #[arg(long = "remove-never-compress")]
    pub remove_never_compress: Vec<String>,
    /// Clear list of extensions in the never compress list.
    #[arg(long = "clear-never-compress")]
    pub clear_never_compress: bool,
    /// Metadata Compression algorithm.
    #[arg(long = "metadata-compression")]
    pub metadata_compression: Option<String>,
    /// Interval between snapshots (e.g. 1h, or 'inherit').
    #[arg(long = "snapshot-interval")]
    pub snapshot_interval: Vec<String>,
    /// Comma-separated times of day when to take snapshot (HH:mm,HH:mm,...) or 'inherit'.
    #[arg(long = "snapshot-time")]
    pub snapshot_time: Vec<String>,
    /// Semicolon-separated crontab-compatible expressions (or 'inherit').
    #[arg(long = "snapshot-time-crontab")]
    pub snapshot_time_crontab: Option<String>,
    /// Run missed time-of-day or cron snapshots ('true', 'false', 'inherit').
    #[arg(long = "run-missed", value_parser = ["true", "false", "inherit"])]
    pub run_missed: Option<String>,
    /// Only create snapshots manually.
    #[arg(long)]
    pub manual: bool,
    /// Maximum number of parallel file reads (or 'inherit').
    #[arg(long = "max-parallel-file-reads")]
    pub max_parallel_file_reads: Option<String>,
    /// Maximum number of parallel snapshots (server, KopiaUI only; or 'inherit').
    #[arg(long = "max-parallel-snapshots")]
    pub max_parallel_snapshots: Option<String>,
    /// Use parallel uploads above size (MiB, or 'inherit').
    #[arg(long = "parallel-upload-above-size-mib")]
    pub parallel_upload_above_size_mib: Option<String>,
    /// Splitter algorithm override ('inherit' to clear).
    #[arg(long)]
    pub splitter: Option<String>,
    /// Path to before-folder action command ('none' to remove).
    #[arg(long = "before-folder-action", value_name = "COMMAND")]
    pub before_folder_action: Option<String>,
    /// Path to after-folder action command ('none' to remove).
    #[arg(long = "after-folder-action", value_name = "COMMAND")]
    pub after_folder_action: Option<String>,
    /// Path to before-snapshot-root action command ('none' to remove).
    #[arg(long = "before-snapshot-root-action", value_name = "COMMAND")]
    pub before_snapshot_root_action: Option<String>,
    /// Path to after-snapshot-root action command ('none' to remove).
    #[arg(long = "after-snapshot-root-action", value_name = "COMMAND")]
    pub after_snapshot_root_action: Option<String>,
    /// Max time allowed for an action to run (e.g. 5m).
    #[arg(long = "action-command-timeout", default_value = "5m")]
    pub action_command_timeout: String,
    /// Action command mode.
    #[arg(long = "action-command-mode", default_value = "essential", value_parser = ["essential", "optional", "async"])]
    pub action_command_mode: String,
    /// Persist action script.
    #[arg(long = "persist-action-script")]
    pub persist_action_script: bool,
    /// Log detail when a directory is snapshotted (0-10, or 'inherit').
    #[arg(long = "log-dir-snapshotted")]
    pub log_dir_snapshotted: Option<String>,
    /// Log detail when a directory is ignored (0-10, or 'inherit').
    #[arg(long = "log-dir-ignored")]
    pub log_dir_ignored: Option<String>,
    /// Log detail when an entry is snapshotted (0-10, or 'inherit').
    #[arg(long = "log-entry-snapshotted")]
    pub log_entry_snapshotted: Option<String>,
    /// Log detail when an entry is ignored (0-10, or 'inherit').
    #[arg(long = "log-entry-ignored")]
    pub log_entry_ignored: Option<String>,
    /// Log detail on entry cache hit (0-10, or 'inherit').
    #[arg(long = "log-entry-cache-hit")]
    pub log_entry_cache_hit: Option<String>,
    /// Log detail on entry cache miss (0-10, or 'inherit').
    #[arg(long = "log-entry-cache-miss")]
    pub log_entry_cache_miss: Option<String>,
    /// Enable Volume Shadow Copy snapshots ('never', 'always', 'when-available', 'inherit').
    #[arg(long = "enable-volume-shadow-copy", value_parser = ["never", "always", "when-available", "inherit"])]
    pub enable_volume_shadow_copy: Option<String>,
}

/// Sets (or with `None` removes) the field at `path` of `m`, dropping objects left empty.
pub fn set_path(m: &mut Map<String, Value>, path: &[&str], v: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    match parents.split_first() {
        None => match v {
            Some(v) => {
                m.insert((*last).to_string(), v);
            }
            None => {
                m.remove(*last);
            }
        },
        Some((first, rest)) => {
            let child = m
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(c) = child {
                let mut sub: Vec<&str> = rest.to_vec();
                sub.push(last);
                set_path(c, &sub, v);
                if c.is_empty() {
                    m.remove(*first);
                }
            }
        }
    }
}

fn int_or_inherit(flag: &str, v: &str, min: i64, max: i64) -> Result<Option<Value>> {
    if v == "inherit" {
        return Ok(None);
    }
    let n: i64 = v
        .parse()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            anyhow!("invalid --{flag} {v:?}: use a number from {min} to {max} or 'inherit'")
        })?;
    Ok(Some(json!(n)))
}

fn bool_or_inherit(v: &str) -> Option<Value> {
    match v {
        "inherit" => None,
        v => Some(json!(v == "true")),
    }
}

/// A Go duration (`90s`, `1h30m`) in whole seconds.
fn seconds(flag: &str, v: &str) -> Result<i64> {
    Ok(
        super::repository::parse_duration_nanos(v).map_err(|e| anyhow!("invalid --{flag}: {e}"))?
            / 1_000_000_000,
    )
}

/// Splits an action command line on spaces, honouring double quotes (Kopia reads it as one
/// CSV record with a space separator).
fn split_command(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn action(a: &PolicySetMoreArgs, name: &str, v: &str) -> Result<Option<Value>> {
    if v.is_empty() || v == "none" {
        eprintln!(" - removing {name} action");
        return Ok(None);
    }
    let timeout = seconds("action-command-timeout", &a.action_command_timeout)?;
    let mut cmd = json!({"timeout": timeout, "mode": a.action_command_mode});
    if a.persist_action_script {
        let script = std::fs::read_to_string(v).context("unable to read script file")?;
        if script.len() > 32_000 {
            bail!(
                "action script file ({v}) too long: {}, max allowed 32000",
                script.len()
            );
        }
        eprintln!(
            " - setting {name} ({}) action script from file {v} ({} bytes) with timeout {}",
            a.action_command_mode,
            script.len(),
            a.action_command_timeout
        );
        cmd["script"] = json!(script);
    } else {
        let fields = split_command(v);
        cmd["path"] = json!(fields[0]);
        if fields.len() > 1 {
            cmd["args"] = json!(fields[1..]);
        }
        eprintln!(
            " - setting {name} ({}) action command to \"{}\" and timeout {}",
            a.action_command_mode, fields[0], a.action_command_timeout
        );
    }
    Ok(Some(cmd))
}

/// Applies the flags to `p`; returns whether anything changed.
pub fn apply(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = files_and_errors(p, a)?;
    changed |= compression(p, a)?;
    changed |= scheduling(p, a)?;
    changed |= upload_and_splitter(p, a)?;
    changed |= actions_logging_and_os_snapshots(p, a)?;
    Ok(changed)
}

/// The retention, files and error-handling flags. Returns whether anything changed.
fn files_and_errors(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = false;
    if let Some(v) = &a.ignore_identical_snapshots {
        p.retention.ignore_identical_snapshots = match v.as_str() {
            "inherit" => None,
            "true" => Some(true),
            "false" => Some(false),
            v => bail!("invalid --ignore-identical-snapshots {v:?}: use true, false or inherit"),
        };
        changed = true;
    }
    if a.clear_ignore {
        p.files.ignore_rules.clear();
        changed = true;
    }
    for name in &a.remove_dot_ignore {
        p.files.dot_ignore_files.retain(|n| n != name);
        changed = true;
    }
    if a.clear_dot_ignore {
        p.files.dot_ignore_files.clear();
        changed = true;
    }
    if let Some(v) = &a.max_file_size {
        let val = int_or_inherit("max-file-size", v, 0, i64::MAX)?.filter(|n| n != &json!(0));
        set_path(&mut p.files.extra, &["maxFileSize"], val);
        changed = true;
    }
    if let Some(v) = &a.one_file_system {
        set_path(&mut p.files.extra, &["oneFileSystem"], bool_or_inherit(v));
        changed = true;
    }
    if let Some(v) = &a.ignore_unknown_types {
        set_path(
            &mut p.error_handling.extra,
            &["ignoreUnknownTypes"],
            bool_or_inherit(v),
        );
        changed = true;
    }
    Ok(changed)
}

/// The compression flags. Returns whether anything changed.
fn compression(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = false;
    if let Some(n) = a.compression_max_size {
        p.compression.max_size = n;
        changed = true;
    }
    for (remove, clear, list) in [
        (
            &a.remove_only_compress,
            a.clear_only_compress,
            &mut p.compression.only_compress,
        ),
        (
            &a.remove_never_compress,
            a.clear_never_compress,
            &mut p.compression.never_compress,
        ),
    ] {
        for e in remove {
            let e = if e.starts_with('.') {
                e.clone()
            } else {
                format!(".{e}")
            };
            list.retain(|x| *x != e);
            changed = true;
        }
        if clear {
            list.clear();
            changed = true;
        }
    }
    if let Some(c) = &a.metadata_compression {
        let v = match c.as_str() {
            "inherit" => None,
            "none" => Some(json!("none")),
            name if kopr_format::compression::by_name(name).is_some_and(|c| c.is_supported()) => {
                Some(json!(name))
            }
            name => bail!("unknown compression algorithm {name:?}"),
        };
        set_path(&mut p.extra, &["metadataCompression", "compressorName"], v);
        changed = true;
    }
    Ok(changed)
}

/// The upload and splitter flags. Returns whether anything changed.
fn upload_and_splitter(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = false;
    for (v, flag, field) in [
        (
            &a.max_parallel_file_reads,
            "max-parallel-file-reads",
            "maxParallelFileReads",
        ),
        (
            &a.max_parallel_snapshots,
            "max-parallel-snapshots",
            "maxParallelSnapshots",
        ),
    ] {
        if let Some(v) = v {
            let val = int_or_inherit(flag, v, 1, i64::from(i32::MAX))?;
            set_path(&mut p.extra, &["upload", field], val);
            changed = true;
        }
    }
    if let Some(v) = &a.parallel_upload_above_size_mib {
        let val = int_or_inherit("parallel-upload-above-size-mib", v, 0, i64::MAX >> 20)?
            .and_then(|n| n.as_i64())
            .map(|n| json!(n << 20));
        set_path(&mut p.extra, &["upload", "parallelUploadAboveSize"], val);
        changed = true;
    }
    if let Some(s) = &a.splitter {
        let v = match s.as_str() {
            "inherit" | "" => None,
            name if kopr_format::splitter::supported_splitters().contains(&name) => {
                Some(json!(name))
            }
            name => bail!("unknown splitter {name:?}"),
        };
        set_path(&mut p.extra, &["splitter", "algorithm"], v);
        changed = true;
    }
    Ok(changed)
}

/// The action, logging and OS snapshot flags. Returns whether anything changed.
fn actions_logging_and_os_snapshots(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = false;
    for (v, name, field) in [
        (&a.before_folder_action, "before-folder", "beforeFolder"),
        (&a.after_folder_action, "after-folder", "afterFolder"),
        (
            &a.before_snapshot_root_action,
            "before-snapshot-root",
            "beforeSnapshotRoot",
        ),
        (
            &a.after_snapshot_root_action,
            "after-snapshot-root",
            "afterSnapshotRoot",
        ),
    ] {
        if let Some(v) = v {
            let val = action(a, name, v).with_context(|| format!("invalid {name}-action"))?;
            set_path(&mut p.extra, &["actions", field], val);
            changed = true;
        }
    }
    for (v, flag, path) in [
        (
            &a.log_dir_snapshotted,
            "log-dir-snapshotted",
            ["directories", "snapshotted"],
        ),
        (
            &a.log_dir_ignored,
            "log-dir-ignored",
            ["directories", "ignored"],
        ),
        (
            &a.log_entry_snapshotted,
            "log-entry-snapshotted",
            ["entries", "snapshotted"],
        ),
        (
            &a.log_entry_ignored,
            "log-entry-ignored",
            ["entries", "ignored"],
        ),
        (
            &a.log_entry_cache_hit,
            "log-entry-cache-hit",
            ["entries", "cacheHit"],
        ),
        (
            &a.log_entry_cache_miss,
            "log-entry-cache-miss",
            ["entries", "cacheMiss"],
        ),
    ] {
        if let Some(v) = v {
            let val = int_or_inherit(flag, v, 0, 10)?;
            set_path(&mut p.extra, &["logging", path[0], path[1]], val);
            changed = true;
        }
    }
    if let Some(v) = &a.enable_volume_shadow_copy {
        let val = match v.as_str() {
            "never" => Some(json!(0)),
            "always" => Some(json!(1)),
            "when-available" => Some(json!(2)),
            _ => None,
        };
        set_path(
            &mut p.extra,
            &["osSnapshots", "volumeShadowCopy", "enable"],
            val,
        );
        changed = true;
    }
    Ok(changed)
}

/// Kopia's scheduling flags: an interval, times of day, cron expressions, run-missed, manual
/// (which clears the others and cannot be combined with them).
fn scheduling(p: &mut Policy, a: &PolicySetMoreArgs) -> Result<bool> {
    let mut changed = false;
    let sched = |p: &mut Policy, field: &str, v: Option<Value>| {
        set_path(&mut p.extra, &["scheduling", field], v);
    };
    if a.manual {
        if !a.snapshot_interval.is_empty()
            || !a.snapshot_time.is_empty()
            || a.snapshot_time_crontab.is_some()
        {
            bail!("cannot set manual field when scheduling snapshots");
        }
        for f in ["intervalSeconds", "timeOfDay", "cron"] {
            sched(p, f, None);
        }
        sched(p, "manual", Some(json!(true)));
        eprintln!(" - setting manual snapshot field to true");
        return Ok(true);
    }
    if let Some(v) = a.snapshot_interval.first() {
        let val = if v == "inherit" {
            None
        } else {
            let s = seconds("snapshot-interval", v)?;
            (s > 0).then(|| json!(s))
        };
        sched(p, "intervalSeconds", val);
        changed = true;
    }
    if !a.snapshot_time.is_empty() {
        let val = times_of_day(&a.snapshot_time)?;
        sched(p, "timeOfDay", val);
        changed = true;
    }
    if let Some(c) = &a.snapshot_time_crontab {
        let exprs: Vec<&str> = if c == "inherit" || c == "default" {
            Vec::new()
        } else {
            c.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        };
        for e in &exprs {
            if e.split_whitespace().count() != 5 {
                bail!("invalid scheduling policy: invalid cron expression {e:?}");
            }
        }
        sched(p, "cron", (!exprs.is_empty()).then(|| json!(exprs)));
        changed = true;
    }
    if let Some(v) = &a.run_missed {
        sched(p, "runMissed", bool_or_inherit(v));
        changed = true;
    }
    // Scheduling flags turn manual snapshots off, as in Kopia.
    if changed
        && kopr_format::policy_fields::section(&p.extra, "scheduling")
            .get("manual")
            .is_some_and(|m| m == &json!(true))
    {
        sched(p, "manual", None);
        eprintln!(" - resetting manual snapshot field to false");
    }
    Ok(changed)
}

/// `--snapshot-time` values (`HH:MM`, comma-separated, or `inherit`) as Kopia's `timeOfDay`
/// list, sorted and without duplicates; `None` for inherit or an empty list.
fn times_of_day(values: &[String]) -> Result<Option<Value>> {
    let mut times: Vec<(i64, i64)> = Vec::new();
    let mut inherit = false;
    for t in values.iter().flat_map(|t| t.split(',')) {
        if t == "inherit" {
            inherit = true;
            break;
        }
        let (h, m) = t
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
            .ok_or_else(|| {
                anyhow!("unable to parse time of day: invalid time of day, must be HH:MM")
            })?;
        if !(0..=23).contains(&h) {
            bail!("unable to parse time of day: invalid hour {t:?}, must be between 0 and 23");
        }
        if !(0..=59).contains(&m) {
            bail!("unable to parse time of day: invalid minute {t:?}, must be between 0 and 59");
        }
        times.push((h, m));
    }
    times.sort_unstable();
    times.dedup();
    let val = (!inherit && !times.is_empty()).then(|| {
        Value::Array(
            times
                .iter()
                .map(|(h, m)| json!({"hour": h, "min": m}))
                .collect(),
        )
    });
    Ok(val)
}
