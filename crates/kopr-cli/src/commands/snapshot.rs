//! `snapshot create | ls | restore | delete`, `ls` and `show`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{
    DirEntry, DirManifest, EntryType, Permissions, SnapshotManifest, SourceInfo,
};
use kopr_repo::object::{read_object, ObjectReader};
use kopr_repo::snapshot::{self as snap, ProgressCounters, RestoreOptions, UploadOptions};
use kopr_repo::Repository;

use super::{format_timestamp, Context};
use crate::app::SnapshotCommand;
use crate::config::ConnectionConfig;
use crate::progress::SnapshotBar;
use crate::units;
use clap::Args;
use std::path::PathBuf;

/// Creates a snapshot of local directory or file.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files or directories to create snapshot(s) of.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Free-form snapshot description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Compression for file contents (e.g. zstd-fastest); none by default, as Kopia's policy.
    #[arg(long)]
    pub compression: Option<String>,
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}

/// List snapshots of files and directories.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// File or directory to show history of.
    pub source: Option<PathBuf>,
    /// Show all snapshots (not just current username/host).
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Include manifest item ID.
    #[arg(long = "manifest-id", short = 'm')]
    pub manifest_id: bool,
    /// Include incomplete snapshots (checkpoints and canceled ones).
    #[arg(long)]
    pub incomplete: bool,
    /// Compute and show storage statistics.
    #[arg(long = "storage-stats")]
    pub storage_stats: bool,
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}

/// Restore a directory or file from a snapshot into the specified target path.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot ID or root object ID (optionally with /sub/path).
    pub source: String,
    /// Where to restore.
    pub target: PathBuf,
    /// Overwrite existing files and directories.
    #[arg(long, visible_alias = "overwrite-files")]
    pub overwrite: bool,
    /// Owners are restored by default (as Kopia); kept for older scripts.
    #[arg(long = "restore-owners", hide = true)]
    pub restore_owners: bool,
    /// Skip owners during restore.
    #[arg(long = "skip-owners")]
    pub skip_owners: bool,
    /// Restore everything that can be restored, listing what could not.
    #[arg(long = "ignore-errors")]
    pub ignore_errors: bool,
}

/// Verify snapshots: directories are read, the contents of a share of the files are read,
/// authenticated and decoded, and those of the others must have index entries. Objects
/// shared by several snapshots are checked once.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot IDs to verify (all snapshots when none).
    pub ids: Vec<String>,
    /// Percentage of files whose contents are read (the others are checked in the index).
    /// Kopia's default is 0; kopr reads every file unless told otherwise.
    #[arg(long = "verify-files-percent", default_value_t = 100.0)]
    pub verify_files_percent: f64,
}

/// Displays differences between two snapshots (or directory object IDs).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First snapshot ID or object ID.
    pub first: String,
    /// Second snapshot ID or object ID.
    pub second: String,
}

/// Remove old snapshots according to defined expiration policies.
#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Sources (paths) to apply retention to.
    pub paths: Vec<PathBuf>,
    /// Expire all sources.
    #[arg(long)]
    pub all: bool,
    /// Whether to actually delete snapshots.
    #[arg(long)]
    pub delete: bool,
}

/// Add or remove pins preventing snapshot deletion.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Snapshot ID or root object ID.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Add pins.
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove pins.
    #[arg(long)]
    pub remove: Vec<String>,
}

/// Explicitly delete a snapshot by providing a snapshot ID.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Snapshot IDs to be deleted.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Confirm deletion.
    #[arg(long)]
    pub delete: bool,
}

fn source_for(cfg: &ConnectionConfig, path: &Path) -> Result<SourceInfo> {
    let abs = std::fs::canonicalize(path)
        .with_context(|| format!("invalid source {}", path.display()))?;
    Ok(SourceInfo {
        host: cfg.hostname.clone(),
        user_name: cfg.username.clone(),
        path: abs.to_string_lossy().into_owned(),
    })
}

/// Go's `os.FileMode.String()` for the modes kopr records: the type letter (`d`, `L`), then
/// `u` (setuid), `g` (setgid) and `t` (sticky) in Go's order, then `rwx` bits (`urwxr-xr-x`).
pub fn mode_string(t: EntryType, p: Permissions) -> String {
    let mut s = String::with_capacity(13);
    match t {
        EntryType::Directory => s.push('d'),
        EntryType::Symlink => s.push('L'),
        _ => {}
    }
    for (bit, c) in [(0o4000, 'u'), (0o2000, 'g'), (0o1000, 't')] {
        if p.0 & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if p.0 & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn ts(nanos: i64) -> String {
    format_timestamp(kopr_format::snapshot::utc_nanos::to_time(nanos))
}

pub fn run(ctx: &Context, cmd: SnapshotCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    match cmd {
        SnapshotCommand::Pin(a) => pin(&cfg, &repo, a),
        SnapshotCommand::Create(a) => create(&cfg, &repo, a),
        SnapshotCommand::Ls(a) => list(&cfg, &repo, a),
        SnapshotCommand::Restore(a) => restore(&repo, a),
        SnapshotCommand::Verify(a) => verify(&repo, a),
        SnapshotCommand::Diff(a) => diff(&repo, a),
        SnapshotCommand::Expire(a) => expire(&cfg, &repo, a),
        SnapshotCommand::Delete(a) => delete(&repo, a),
    }
}

/// `snapshot pin`.
fn pin(cfg: &ConnectionConfig, repo: &Repository, a: PinArgs) -> Result<()> {
    let PinArgs { ids, add, remove } = a;
    super::extra::pin(cfg, repo, &ids, &add, &remove)
}

/// `snapshot create`.
fn create(cfg: &ConnectionConfig, repo: &Repository, a: CreateArgs) -> Result<()> {
    if let Some(c) = &a.compression {
        if kopr_format::compression::by_name(c).is_none_or(|c| !c.is_supported()) {
            bail!("unknown compression algorithm {c:?}");
        }
    }
    if cfg.read_only {
        return Err(super::ReadOnlyConnection.into());
    }
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let c = cancel.clone();
        // A second Ctrl-C while the first is honoured ends the process as usual.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nCanceling: saving a checkpoint of what was uploaded ...");
        });
    }
    let mut failures: Vec<String> = Vec::new();
    for src in &a.sources {
        if let Some(e) = create_one(cfg, repo, &a, src, &cancel)? {
            failures.push(e);
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => bail!("{}", failures[0]),
        n => bail!("{n} sources failed: {}", failures.join(" ")),
    }
}

/// Snapshots one source, prints the result, applies its retention; returns the source's
/// fatal errors, if any.
fn create_one(
    cfg: &ConnectionConfig,
    repo: &Repository,
    a: &CreateArgs,
    src: &Path,
    cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<String>> {
    let si = source_for(cfg, src)?;
    let started = Instant::now();
    // The bar is for people: only on a terminal, never with --json.
    let tty = std::io::stderr().is_terminal() && !a.json;
    if !a.json {
        eprintln!("Snapshotting {si} ...");
    }
    let counters = std::sync::Arc::new(ProgressCounters::default());
    let bar = tty.then(|| SnapshotBar::start(counters.clone()));
    let result = snap::create_snapshot(
        repo,
        src,
        &si,
        &UploadOptions {
            compression: a.compression.clone(),
            description: a.description.clone(),
            cancel: Some(cancel.clone()),
            progress: Some(counters),
            estimate: tty,
        },
        &mut |_| {},
    );
    if let Some(bar) = bar {
        bar.finish();
    }
    let m = result?;
    let root = m
        .root_entry
        .as_ref()
        .map(|r| r.object_id.to_string())
        .unwrap_or_default();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        let st = &m.stats;
        println!(
            "Created snapshot with root {root} and ID {} in {:.1}s: {} files ({}), {} cached, {} directories, {} errors",
            m.id,
            started.elapsed().as_secs_f64(),
            st.total_file_count,
            units::bytes(st.total_file_size),
            st.cached_files,
            st.total_directory_count,
            st.error_count
        );
    }
    // As Kopia: the source's retention policy runs after every snapshot.
    let expired =
        kopr_repo::policy::expire(repo, &si, true).context("unable to apply retention policy")?;
    if !expired.is_empty() && !a.json {
        eprintln!(
            "Deleted {} snapshot(s) of {si} per its retention policy.",
            expired.len()
        );
    }
    if !m.incomplete_reason.is_empty() {
        bail!(
            "snapshot {} of {si} is incomplete ({}); run the same command again to resume",
            m.id,
            m.incomplete_reason
        );
    }
    Ok(report_errors(&m, &si))
}

/// `snapshot list`.
fn list(cfg: &ConnectionConfig, repo: &Repository, a: LsArgs) -> Result<()> {
    let filter = match &a.source {
        Some(p) => Some(source_for(cfg, p)?),
        None => None,
    };
    let mut list = snap::list_snapshots(repo, filter.as_ref())?;
    if filter.is_none() && !a.all {
        list.retain(|m| m.source.host == cfg.hostname && m.source.user_name == cfg.username);
    }
    let groups = source_groups(repo, list, a.storage_stats)?;
    // Retention still sees every snapshot; only the listing hides checkpoints.
    let shown = |m: &SnapshotManifest| a.incomplete || m.incomplete_reason.is_empty();
    if a.json {
        return print_json(&groups, &shown);
    }
    let mut first = true;
    for g in &groups {
        if !g.snaps.iter().any(&shown) {
            continue; // only checkpoints, hidden
        }
        if !first {
            println!();
        }
        first = false;
        println!("{}", g.source);
        for (i, m) in g.snaps.iter().enumerate().filter(|(_, m)| shown(m)) {
            if let Some(line) = snapshot_line(g, i, m, a.manifest_id) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// The snapshots of one source, oldest first, with why each is kept and, when asked, the
/// storage each added.
struct SourceGroup {
    source: SourceInfo,
    snaps: Vec<SnapshotManifest>,
    reasons: Vec<Vec<String>>,
    usage: Vec<(snap::StorageUsage, snap::StorageUsage)>,
}

fn source_groups(
    repo: &Repository,
    list: Vec<SnapshotManifest>,
    storage_stats: bool,
) -> Result<Vec<SourceGroup>> {
    let mut by_source: std::collections::BTreeMap<SourceInfo, Vec<SnapshotManifest>> =
        Default::default();
    for m in list {
        by_source.entry(m.source.clone()).or_default().push(m);
    }
    let mut groups = Vec::with_capacity(by_source.len());
    for (source, snaps) in by_source {
        let pol = kopr_repo::policy::effective(repo, &source)?;
        let reasons = kopr_repo::policy::retention_reasons(&pol, &snaps);
        let usage = if storage_stats {
            snap::storage_stats(repo, &snaps)?
        } else {
            Vec::new()
        };
        groups.push(SourceGroup {
            source,
            snaps,
            reasons,
            usage,
        });
    }
    Ok(groups)
}

/// Kopia's `--json` shape: each manifest with its `retentionReason` and, with
/// `--storage-stats`, `storageStats` {newData, runningTotal}, source by source.
fn print_json(groups: &[SourceGroup], shown: &dyn Fn(&SnapshotManifest) -> bool) -> Result<()> {
    let mut out = Vec::new();
    for g in groups {
        for (i, m) in g.snaps.iter().enumerate().filter(|(_, m)| shown(m)) {
            let mut v = serde_json::to_value(m)?;
            if let Some((new, total)) = g.usage.get(i) {
                v["storageStats"] = serde_json::json!({ "newData": new, "runningTotal": total });
            }
            if !g.reasons[i].is_empty() {
                v["retentionReason"] = serde_json::json!(g.reasons[i]);
            }
            out.push(v);
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One line of `snapshot ls`, as Kopia prints it.
fn snapshot_line(
    g: &SourceGroup,
    i: usize,
    m: &SnapshotManifest,
    manifest_id: bool,
) -> Option<String> {
    let root = m.root_entry.as_ref()?;
    let size = root
        .dir_summary
        .as_ref()
        .map(|s| s.total_file_size)
        .unwrap_or(root.file_size);
    let mut bits = vec![
        units::bytes(size),
        mode_string(root.entry_type, root.permissions),
    ];
    if manifest_id {
        bits.push(format!("manifest:{}", m.id));
    }
    if let Some(s) = &root.dir_summary {
        bits.push(format!("files:{}", s.total_file_count));
        bits.push(format!("dirs:{}", s.total_dir_count));
        if s.fatal_error_count > 0 {
            bits.push(format!("errors:{}", s.fatal_error_count));
        }
    }
    if !m.incomplete_reason.is_empty() {
        bits.insert(0, format!("incomplete:{}", m.incomplete_reason));
    }
    if let Some((new, _)) = g.usage.get(i) {
        bits.push(format!(
            "new-data:{}",
            units::bytes(new.packed_content_bytes)
        ));
        bits.push(format!("new-files:{}", new.file_objects));
        bits.push(format!("new-dirs:{}", new.dir_objects));
        bits.push(format!(
            "compression:{}",
            units::compression_percentage(new.original_content_bytes, new.packed_content_bytes)
        ));
    }
    if !g.reasons[i].is_empty() {
        bits.push(format!("({})", g.reasons[i].join(",")));
    }
    if !m.pins.is_empty() {
        bits.push(format!("pins:{}", m.pins.join(",")));
    }
    Some(format!(
        "  {} {} {}",
        ts(m.start_time),
        root.object_id,
        bits.join(" ")
    ))
}

/// `snapshot restore`.
fn restore(repo: &Repository, a: RestoreArgs) -> Result<()> {
    let RestoreArgs {
        source,
        target,
        overwrite,
        restore_owners: _,
        skip_owners,
        ignore_errors,
    } = a;
    let entry = resolve(repo, &source)?;
    let started = Instant::now();
    // Ctrl-C leaves no temporary file behind (complete files stay).
    let _ = ctrlc::set_handler(|| {
        snap::remove_restore_temporaries();
        eprintln!("\nRestore interrupted.");
        std::process::exit(130);
    });
    let st = snap::restore_reporting(
        repo,
        &entry,
        &target,
        RestoreOptions {
            overwrite,
            restore_owners: !skip_owners,
            ignore_errors,
        },
        &mut |path, err| eprintln!("not restored: {}", error_about(path, err)),
    )?;
    println!(
        "Restored {} files, {} directories and {} symbolic links ({}) in {:.1}s.",
        st.files,
        st.dirs,
        st.symlinks,
        units::bytes(st.bytes as i64),
        started.elapsed().as_secs_f64()
    );
    if st.failed > 0 {
        eprintln!(
            "Ignored {} error(s): the entries listed above were not restored.",
            st.failed
        );
    }
    Ok(())
}

/// `snapshot verify`.
fn verify(repo: &Repository, a: VerifyArgs) -> Result<()> {
    let VerifyArgs {
        ids,
        verify_files_percent,
    } = a;
    if !(0.0..=100.0).contains(&verify_files_percent) {
        bail!("--verify-files-percent must be between 0 and 100, got {verify_files_percent}");
    }
    let opts = snap::VerifyOptions {
        files_percent: verify_files_percent,
    };
    let mut seen = std::collections::HashSet::new();
    let snaps = if ids.is_empty() {
        snap::list_snapshots(repo, None)?
    } else {
        ids.iter()
            .map(|id| {
                snap::load_snapshot(repo, id).with_context(|| format!("snapshot {id} not found"))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let mut errors = 0usize;
    let (mut objects, mut bytes) = (0u64, 0u64);
    for m in &snaps {
        let Some(root) = &m.root_entry else { continue };
        let r = snap::verify_with(repo, root, &m.source.path, &opts, &mut seen);
        objects += r.objects;
        bytes += r.bytes;
        for e in &r.errors {
            eprintln!(
                "error: snapshot {} ({} at {}): {e}",
                m.id,
                m.source,
                ts(m.start_time)
            );
        }
        errors += r.errors.len();
    }
    println!(
        "Verified {} snapshots, {objects} objects, {} of data: {errors} errors.",
        snaps.len(),
        units::bytes(bytes as i64)
    );
    if errors > 0 {
        bail!("{errors} errors found while verifying snapshots");
    }
    Ok(())
}

/// `snapshot diff`.
fn diff(repo: &Repository, a: DiffArgs) -> Result<()> {
    let DiffArgs { first, second } = a;
    let (a, b) = (resolve(repo, &first)?, resolve(repo, &second)?);
    if a.entry_type != EntryType::Directory || b.entry_type != EntryType::Directory {
        bail!("diff compares directories");
    }
    for c in snap::diff(repo, &a, &b)? {
        let (what, path, t) = match &c {
            snap::Change::Added(p, t) => ("added", p, t),
            snap::Change::Removed(p, t) => ("removed", p, t),
            snap::Change::Modified(p, t) => ("changed", p, t),
        };
        let kind = match t {
            EntryType::Directory => "directory",
            EntryType::Symlink => "symlink",
            _ => "file",
        };
        println!("{what} {kind} {path}");
    }
    Ok(())
}

/// `snapshot expire`.
fn expire(cfg: &ConnectionConfig, repo: &Repository, a: ExpireArgs) -> Result<()> {
    let ExpireArgs { paths, all, delete } = a;
    let sources: Vec<SourceInfo> = if all {
        let mut v: Vec<SourceInfo> = snap::list_snapshots(repo, None)?
            .into_iter()
            .map(|m| m.source)
            .collect();
        v.sort();
        v.dedup();
        v
    } else if paths.is_empty() {
        bail!("specify paths to expire or --all");
    } else {
        paths
            .iter()
            .map(|p| source_for(cfg, p))
            .collect::<Result<_>>()?
    };
    for si in sources {
        let expired = kopr_repo::policy::expire(repo, &si, delete)?;
        if expired.is_empty() {
            println!("{si}: nothing to expire");
            continue;
        }
        let verb = if delete { "Deleted" } else { "Would delete" };
        println!("{si}: {verb} {} snapshots:", expired.len());
        for m in &expired {
            println!("  {} {}", ts(m.start_time), m.id);
        }
        if !delete {
            println!("(pass --delete to actually delete)");
        }
    }
    Ok(())
}

/// `snapshot delete`.
fn delete(repo: &Repository, a: DeleteArgs) -> Result<()> {
    let DeleteArgs { ids, delete } = a;
    for id in &ids {
        let m =
            snap::load_snapshot(repo, id).with_context(|| format!("snapshot {id} not found"))?;
        if !delete {
            println!(
                "Would delete snapshot {id} of {} at {} (pass --delete to confirm)",
                m.source,
                ts(m.start_time)
            );
            continue;
        }
        repo.manifests().delete(repo.contents(), id)?;
        println!(
            "Deleted snapshot {id} of {} at {}",
            m.source,
            ts(m.start_time)
        );
    }
    repo.flush()?;
    Ok(())
}

/// `path: error`, without the path twice when the error names it already.
fn error_about(path: &Path, err: &kopr_repo::RepoError) -> String {
    let msg = err.to_string();
    let p = path.display().to_string();
    if msg.starts_with(&p) {
        msg
    } else {
        format!("{p}: {msg}")
    }
}

/// Prints the entries a snapshot could not read; returns Kopia's `Found N fatal error(s)`
/// when errors that the error-handling policy does not ignore occurred.
fn report_errors(m: &SnapshotManifest, si: &SourceInfo) -> Option<String> {
    let summary = m.root_entry.as_ref().and_then(|r| r.dir_summary.as_ref())?;
    let fatal = summary.fatal_error_count;
    let label = if fatal > 0 { "error" } else { "ignored error" };
    for fe in &summary.failed_entries {
        eprintln!("{label}: {}: {}", fe.entry_path, fe.error);
    }
    if summary.ignored_error_count > 0 {
        eprintln!(
            "Ignored {} error(s) while snapshotting {si}.",
            summary.ignored_error_count
        );
    }
    (fatal > 0).then(|| format!("Found {fatal} fatal error(s) while snapshotting {si}."))
}

/// Resolves `ID[/sub/path]` where ID is a snapshot manifest id or an object id.
pub(crate) fn resolve(repo: &Repository, spec: &str) -> Result<DirEntry> {
    let (head, rest) = spec.split_once('/').unwrap_or((spec, ""));
    let mut entry = match snap::load_snapshot(repo, head) {
        Ok(m) => m
            .root_entry
            .ok_or_else(|| anyhow!("snapshot {head} has no root"))?,
        Err(_) => {
            let oid: ObjectId = head
                .parse()
                .with_context(|| format!("{head:?} is neither a snapshot ID nor an object ID"))?;
            let is_dir = oid.content_id().and_then(|c| c.prefix()) == Some(b'k')
                || read_object(repo.contents(), &oid)
                    .ok()
                    .is_some_and(|b| DirManifest::decode(&b).is_ok());
            DirEntry {
                name: String::new(),
                entry_type: if is_dir {
                    EntryType::Directory
                } else {
                    EntryType::File
                },
                permissions: Permissions(0),
                file_size: 0,
                mod_time: 0,
                user_id: 0,
                group_id: 0,
                object_id: oid,
                dir_summary: None,
            }
        }
    };
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        if entry.entry_type != EntryType::Directory {
            bail!("{part}: parent is not a directory");
        }
        let dm = DirManifest::decode(&read_object(repo.contents(), &entry.object_id)?)?;
        entry = dm
            .entries
            .into_iter()
            .find(|e| e.name == part)
            .ok_or_else(|| anyhow!("{part} not found in {spec}"))?;
    }
    Ok(entry)
}

pub fn ls(ctx: &Context, spec: &str, long: bool, recursive: bool, show_oid: bool) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let entry = resolve(&repo, spec)?;
    if entry.entry_type != EntryType::Directory {
        bail!("{spec} is not a directory");
    }
    list_dir(&repo, &entry.object_id, "", long, recursive, show_oid)
}

fn list_dir(
    repo: &Repository,
    oid: &ObjectId,
    prefix: &str,
    long: bool,
    recursive: bool,
    show_oid: bool,
) -> Result<()> {
    let dm = DirManifest::decode(&read_object(repo.contents(), oid)?)?;
    let mut out = std::io::stdout().lock();
    for e in &dm.entries {
        let name = if e.entry_type == EntryType::Directory {
            format!("{prefix}{}/", e.name)
        } else {
            format!("{prefix}{}", e.name)
        };
        let size = e
            .dir_summary
            .as_ref()
            .map(|s| s.total_file_size)
            .unwrap_or(e.file_size);
        let errors = match &e.dir_summary {
            Some(s) if s.fatal_error_count > 0 => format!(" ({} errors)", s.fatal_error_count),
            _ => String::new(),
        };
        if long {
            // Kopia's columns: mode, size, time (a directory's newest time below it, from
            // its summary), object id, name.
            let time = e
                .dir_summary
                .as_ref()
                .map(|s| s.max_mod_time)
                .unwrap_or(e.mod_time);
            writeln!(
                out,
                "{} {:>12} {} {:<34} {name}{errors}",
                mode_string(e.entry_type, e.permissions),
                size,
                ts(time),
                e.object_id.to_string(),
            )?;
        } else if show_oid {
            writeln!(out, "{:<34} {name}{errors}", e.object_id.to_string())?;
        } else {
            writeln!(out, "{name}{errors}")?;
        }
        if recursive && e.entry_type == EntryType::Directory {
            drop(out);
            list_dir(repo, &e.object_id, &name, long, recursive, show_oid)?;
            out = std::io::stdout().lock();
        }
    }
    Ok(())
}

pub fn show(ctx: &Context, spec: &str) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let entry = resolve(&repo, spec)?;
    let mut r = ObjectReader::open(repo.contents(), &entry.object_id)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut r, &mut out)?;
    Ok(())
}
