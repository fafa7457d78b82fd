//! `repository scan` (kopr's own): every Kopia repository under a storage location — a
//! filesystem directory, or a bucket or container and a prefix, as Velero keeps one per
//! namespace under `velero/kopia/<namespace>/` — opened read-only, in parallel, with what an
//! operator of a fleet asks first: size, snapshots, the newest one, the maintenance owner,
//! the last quick and full maintenance and how they ended, and what a full cycle would free
//! now (the computation of `maintenance explain`).
//!
//! Every repository is opened through [`ReadOnlyStorage`]: a scan can never write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use kopr_blob::readonly::ReadOnlyStorage;
use kopr_blob::BlobStorage;
use kopr_repo::maintenance::{explain, params, schedule, SafetyParameters};
use kopr_repo::{OpenOptions, Repository};
use serde::Serialize;

use super::{format_timestamp, Context};
use crate::app::{AzureArgs, FilesystemArgs, GcsArgs, S3Args};
use crate::config::StorageConfig;
use crate::{storage, units};

/// The format blob whose presence makes a repository.
const FORMAT_BLOB: &str = "kopia.repository";

/// `repository scan` flags.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Output result in JSON format to stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Repositories opened at once.
    #[arg(long, global = true, default_value_t = 4)]
    pub parallel: usize,
    /// Where to look.
    #[command(subcommand)]
    pub target: ScanStorage,
}

/// Storage kinds `repository scan` searches.
#[derive(Debug, Subcommand)]
pub enum ScanStorage {
    /// Find repositories in directories below a filesystem path.
    Filesystem {
        #[command(flatten)]
        fs: FilesystemArgs,
        /// Only below this subdirectory of --path.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Find repositories under a prefix of an S3 bucket.
    S3 {
        #[command(flatten)]
        s3: S3Args,
    },
    /// Find repositories under a prefix of an Azure blob container.
    Azure {
        #[command(flatten)]
        azure: AzureArgs,
    },
    /// Find repositories under a prefix of a Google Cloud Storage bucket.
    Gcs {
        #[command(flatten)]
        gcs: GcsArgs,
    },
}

/// One maintenance run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The task.
    pub task: String,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// Whether it succeeded.
    pub success: bool,
    /// Its error, if it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The newest snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSnapshot {
    /// Manifest id.
    pub id: kopr_format::snapshot::SnapshotId,
    /// `user@host:path`.
    pub source: String,
    /// When it started.
    pub start_time: DateTime<Utc>,
}

/// What a scan found about one repository.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSummary {
    /// Where it is (path, or bucket/prefix).
    pub location: String,
    /// Bytes of all its blobs.
    pub size: u64,
    /// Its blobs.
    pub blob_count: u64,
    /// Complete snapshots.
    pub snapshot_count: usize,
    /// The newest complete snapshot.
    pub last_snapshot: Option<LastSnapshot>,
    /// Maintenance owner (`user@host`).
    pub maintenance_owner: String,
    /// When the next quick and full cycles are due.
    pub next_quick: Option<DateTime<Utc>>,
    /// When the next full cycle is due.
    pub next_full: Option<DateTime<Utc>>,
    /// The newest run of a quick-cycle task.
    pub last_quick: Option<RunSummary>,
    /// The newest run of a full-cycle task.
    pub last_full: Option<RunSummary>,
    /// Pack blobs a full cycle run now would delete.
    pub full_cycle_frees_blobs: u64,
    /// Their bytes.
    pub full_cycle_frees_bytes: u64,
    /// Why the repository could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Tasks only full cycles run; every other task runs in quick cycles (too).
fn is_full_task(task: &str) -> bool {
    task == "snapshot-gc" || task.starts_with("full-") || task == "extend-blob-retention-time"
}

/// The storage config of the search root.
fn root_config(t: &ScanStorage) -> Result<StorageConfig> {
    Ok(match t {
        ScanStorage::Filesystem { fs, prefix } => {
            storage::filesystem_config(&fs.path.join(prefix))?
        }
        ScanStorage::S3 { s3 } => storage::s3_config(&storage::s3_options(s3)?)?,
        ScanStorage::Azure { azure } => storage::azure_config(&storage::azure_options(azure))?,
        ScanStorage::Gcs { gcs } => storage::gcs_config(&storage::gcs_options(gcs)?)?,
    })
}

/// Directories below `dir` (itself included) that hold a filesystem repository; a
/// repository's own directories are not searched further.
fn find_filesystem(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join(format!("{FORMAT_BLOB}.f")).is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| anyhow!("cannot read {}: {e}", dir.display()))?;
    let mut subdirs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for d in subdirs {
        find_filesystem(&d, out)?;
    }
    Ok(())
}

/// Every repository below the root: its storage config and where it is, for humans.
fn find_repositories(root: &StorageConfig) -> Result<Vec<(StorageConfig, String)>> {
    if root.kind == "filesystem" {
        let path = root
            .config
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| anyhow!("invalid filesystem storage config: no path"))?;
        let mut dirs = Vec::new();
        find_filesystem(Path::new(path), &mut dirs)?;
        return dirs
            .into_iter()
            .map(|d| Ok((storage::filesystem_config(&d)?, d.display().to_string())))
            .collect();
    }
    let st = storage::open(root)?;
    let prefix = root
        .config
        .get("prefix")
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    let container = root
        .config
        .get("bucket")
        .or_else(|| root.config.get("container"))
        .and_then(|b| b.as_str())
        .unwrap_or_default()
        .to_string();
    let mut found: Vec<String> = st
        .list_all("")?
        .into_iter()
        .filter_map(|b| b.id.strip_suffix(FORMAT_BLOB).map(str::to_string))
        // A blob merely ending in the name (`xkopia.repository`) is not a format blob.
        .filter(|sub| sub.is_empty() || sub.ends_with('/'))
        .collect();
    found.sort();
    Ok(found
        .into_iter()
        .map(|sub| {
            let mut cfg = root.clone();
            let full = format!("{prefix}{sub}");
            cfg.config["prefix"] = serde_json::Value::String(full.clone());
            (cfg, format!("{}://{container}/{full}", root.kind))
        })
        .collect())
}

/// Opens one repository read-only and summarizes it.
fn summarize(cfg: &StorageConfig, location: &str, password: &str) -> RepoSummary {
    let mut s = RepoSummary {
        location: location.to_string(),
        ..RepoSummary::default()
    };
    if let Err(e) = fill(cfg, password, &mut s) {
        s.error = Some(format!("{e:#}").replace('\n', " "));
    }
    s
}

fn fill(cfg: &StorageConfig, password: &str, s: &mut RepoSummary) -> Result<()> {
    let st: Arc<dyn BlobStorage> = Arc::new(ReadOnlyStorage::new(storage::open(cfg)?));
    let blobs = st.list_all("")?;
    s.blob_count = blobs.len() as u64;
    s.size = blobs.iter().map(|b| b.length).sum();
    let repo = Repository::open(st, password, OpenOptions::default()).map_err(|e| match e {
        kopr_repo::RepoError::InvalidPassword => anyhow!("invalid repository password"),
        e => anyhow!(e).context("unable to open repository"),
    })?;
    let snaps: Vec<_> = kopr_repo::snapshot::list_snapshots(&repo, None)?
        .into_iter()
        .filter(|m| m.incomplete_reason.is_empty())
        .collect();
    s.snapshot_count = snaps.len();
    s.last_snapshot = snaps.last().map(|m| LastSnapshot {
        id: m.id.clone(),
        source: m.source.to_string(),
        start_time: kopr_format::snapshot::utc_nanos::to_time(m.start_time),
    });
    let p = params::get_params(&repo)?;
    s.maintenance_owner = p.owner.clone();
    let sched = schedule::get_schedule(&repo)?;
    s.next_quick = sched.next_quick;
    s.next_full = sched.next_full;
    let newest = |full: bool| {
        sched
            .runs
            .iter()
            .filter(|(task, _)| is_full_task(task) == full)
            .flat_map(|(task, runs)| runs.iter().map(move |r| (task, r)))
            .max_by_key(|(_, r)| r.start)
            .map(|(task, r)| RunSummary {
                task: task.clone(),
                start: r.start,
                end: r.end,
                success: r.success,
                error: r.error.clone(),
            })
    };
    s.last_quick = newest(false);
    s.last_full = newest(true);
    let x = explain::explain(&repo, &SafetyParameters::full())?;
    s.full_cycle_frees_blobs = x.full_cycle_now.blobs;
    s.full_cycle_frees_bytes = x.full_cycle_now.bytes;
    Ok(())
}

fn run_line(r: &Option<RunSummary>) -> String {
    match r {
        None => "never".into(),
        Some(r) if r.success => format!("{} ({}, ok)", format_timestamp(r.start), r.task),
        Some(r) => format!(
            "{} ({}, ERROR: {})",
            format_timestamp(r.start),
            r.task,
            r.error
        ),
    }
}

fn print_text(all: &[RepoSummary]) {
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}", s.location);
        if let Some(e) = &s.error {
            println!("  ERROR: {e}");
            continue;
        }
        println!(
            "  Size:               {} in {} blobs",
            units::bytes(s.size as i64),
            s.blob_count
        );
        let last = match &s.last_snapshot {
            Some(l) => format!(
                ", last {} ({} {})",
                format_timestamp(l.start_time),
                l.source,
                l.id
            ),
            None => String::new(),
        };
        println!("  Snapshots:          {}{last}", s.snapshot_count);
        println!("  Maintenance owner:  {}", s.maintenance_owner);
        println!("  Last quick run:     {}", run_line(&s.last_quick));
        println!("  Last full run:      {}", run_line(&s.last_full));
        println!(
            "  Full cycle now:     would free {} blobs ({})",
            s.full_cycle_frees_blobs,
            units::bytes(s.full_cycle_frees_bytes as i64)
        );
    }
}

/// `repository scan`.
pub fn run(ctx: &Context, a: ScanArgs) -> Result<()> {
    let root = root_config(&a.target)?;
    let found = find_repositories(&root)?;
    if found.is_empty() {
        bail!("no Kopia repository found (no {FORMAT_BLOB} blob) under the given location");
    }
    let password = ctx.password("Enter password to open the repositories: ", true)?;
    let results: Mutex<Vec<Option<RepoSummary>>> = Mutex::new(vec![None; found.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..a.parallel.clamp(1, found.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cfg, location)) = found.get(i) else {
                    return;
                };
                let s = summarize(cfg, location, &password);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(s);
                }
            });
        }
    });
    let all: Vec<RepoSummary> = results
        .into_inner()
        .map_err(|_| anyhow!("a scanning thread panicked"))?
        .into_iter()
        .flatten()
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print_text(&all);
    }
    let failed = all.iter().filter(|s| s.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} repositories could not be read", all.len());
    }
    Ok(())
}
