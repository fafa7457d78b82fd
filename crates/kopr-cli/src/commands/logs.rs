//! `logs list | show | cleanup`: the diagnostic logs Kopia writes into the repository
//! (`_log_<time>_<random>_<start>_<end>_<segment>_<hash>` blobs, each an encrypted gzip stream
//! of JSON lines), grouped into sessions as Kopia's commands do.

use std::collections::HashMap;
use std::io::{Read, Write};

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, Utc};
use kopr_blob::BlobMetadata;
use kopr_repo::maintenance::logs::{logs_to_delete, LOG_BLOB_PREFIX};
use kopr_repo::Repository;

use super::repository::parse_duration_nanos;
use super::{format_timestamp, Context};
use crate::app::{LogSelection, LogsCommand};
use crate::units;

/// One log session: the segments written by one process.
struct LogSession {
    id: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    segments: Vec<BlobMetadata>,
    total_size: u64,
}

pub fn run(ctx: &Context, cmd: LogsCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    // Routes the subcommands only.
    match cmd {
        LogsCommand::List { sel } => list(&repo, &sel),
        LogsCommand::Show { ids, sel } => show(&repo, &ids, &sel),
        LogsCommand::Cleanup {
            max_age,
            max_count,
            max_total_size_mb,
            dry_run,
        } => {
            if !dry_run && cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            cleanup(&repo, &max_age, max_count, max_total_size_mb, dry_run)
        }
    }
}

/// `logs list`: one line per log session.
fn list(repo: &Repository, sel: &LogSelection) -> Result<()> {
    let all = sessions(repo)?;
    let n = all.len();
    let shown = select(all, sel)?;
    let mut out = std::io::stdout().lock();
    for s in &shown {
        writeln!(
            out,
            "{} {} {} {} {}",
            s.id,
            format_timestamp(s.start),
            units::duration(s.end - s.start),
            units::bytes(s.total_size as i64),
            s.segments.len()
        )?;
    }
    if shown.len() < n {
        eprintln!(
            "NOTE: Listed {}/{n} log sessions, pass --all to show all.",
            shown.len()
        );
    }
    Ok(())
}

/// `logs show`: the latest session's log, or the selected ones', decompressed.
fn show(repo: &Repository, ids: &[String], sel: &LogSelection) -> Result<()> {
    let any = sel.any();
    let mut shown = select(sessions(repo)?, sel)?;
    if !ids.is_empty() {
        shown.retain(|s| ids.contains(&s.id));
    }
    if shown.is_empty() {
        bail!("no logs found");
    }
    if !any {
        shown.drain(..shown.len() - 1);
        eprintln!(
            "Showing the latest log ({})",
            format_timestamp(shown[0].start)
        );
    }
    let mut out = std::io::stdout().lock();
    for s in &shown {
        for bm in &s.segments {
            let data = repo
                .storage()
                .get_blob(&bm.id, 0, None)
                .context("error getting log")?;
            let plain =
                kopr_format::blob_crypto::decrypt_blob(&repo.format().encryptor, &data, &bm.id)
                    .context("error decrypting log")?;
            let mut text = Vec::new();
            match flate2::read::GzDecoder::new(&plain[..]).read_to_end(&mut text) {
                Ok(_) => out.write_all(&text)?,
                Err(e) => {
                    out.write_all(&text)?;
                    eprintln!("error showing log: {e}");
                }
            }
        }
    }
    Ok(())
}

/// `logs cleanup`: deletes the log blobs the retention drops (or counts them with `dry_run`).
fn cleanup(
    repo: &Repository,
    max_age: &str,
    max_count: i64,
    max_total_size_mb: i64,
    dry_run: bool,
) -> Result<()> {
    let retention = kopr_format::maintenance::LogRetention {
        max_total_size: max_total_size_mb << 20,
        max_count,
        max_age: std::time::Duration::from_nanos(parse_duration_nanos(max_age)?.max(0) as u64),
    };
    let all = repo.storage().list_all(LOG_BLOB_PREFIX)?;
    let now = repo.contents().clock().now();
    let (doomed, _, _) = logs_to_delete(all, &retention, now);
    if doomed.is_empty() {
        eprintln!("No logs found to delete.");
    } else if dry_run {
        eprintln!("Would delete {} logs.", doomed.len());
    } else {
        for bm in &doomed {
            repo.storage()
                .delete_blob(&bm.id)
                .with_context(|| format!("error expiring logs: {}", bm.id))?;
        }
        eprintln!("Deleted {} logs.", doomed.len());
    }
    Ok(())
}

/// The log sessions of the repository, oldest first; segments in the order written.
fn sessions(repo: &Repository) -> Result<Vec<LogSession>> {
    let mut by_id: HashMap<String, LogSession> = HashMap::new();
    for bm in repo
        .storage()
        .list_all(LOG_BLOB_PREFIX)
        .context("error listing logs")?
    {
        let parts: Vec<&str> = bm.id.split('_').collect();
        let times = (parts.len() >= 8)
            .then(|| Some((parts[4].parse::<i64>().ok()?, parts[5].parse::<i64>().ok()?)))
            .flatten()
            .and_then(|(a, b)| {
                Some((
                    DateTime::from_timestamp(a, 0)?,
                    DateTime::from_timestamp(b, 0)?,
                ))
            });
        let Some((start, end)) = times else {
            tracing::warn!(target: "logs", "skipping unrecognized log: {}", bm.id);
            continue;
        };
        let id = format!("{}_{}", parts[2], parts[3]);
        let s = by_id.entry(id.clone()).or_insert_with(|| LogSession {
            id,
            start,
            end,
            segments: Vec::new(),
            total_size: 0,
        });
        s.start = s.start.min(start);
        s.end = s.end.max(end);
        s.total_size += bm.length;
        s.segments.push(bm);
    }
    let mut all: Vec<LogSession> = by_id.into_values().collect();
    for s in &mut all {
        s.segments
            .sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    }
    all.sort_by(|a, b| {
        let first = |s: &LogSession| (s.segments[0].timestamp, s.start, s.id.clone());
        first(a).cmp(&first(b))
    });
    Ok(all)
}

/// Kopia's selection: all, or those younger/older than a duration, then the latest N.
fn select(mut all: Vec<LogSession>, sel: &LogSelection) -> Result<Vec<LogSession>> {
    if sel.all {
        return Ok(all);
    }
    let now = Utc::now();
    if let Some(d) = &sel.younger_than {
        let d = chrono::Duration::nanoseconds(parse_duration_nanos(d)?);
        all.retain(|s| now - s.start < d);
    }
    if let Some(d) = &sel.older_than {
        let d = chrono::Duration::nanoseconds(parse_duration_nanos(d)?);
        all.retain(|s| now - s.start > d);
    }
    if sel.latest > 0 && all.len() > sel.latest {
        all.drain(..all.len() - sel.latest);
    }
    Ok(all)
}
