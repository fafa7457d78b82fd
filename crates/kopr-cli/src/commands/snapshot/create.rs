//! `snapshot create`: snapshots sources, reports fatal errors, applies retention.

use super::*;

/// Creates a snapshot of local directory or file.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files or directories to create snapshot(s) of.
    #[arg(required_unless_present = "all")]
    pub sources: Vec<PathBuf>,
    /// Create snapshots for files or directories previously backed up by this user on this
    /// computer (except those whose policy says manual snapshots only).
    #[arg(long, conflicts_with = "sources")]
    pub all: bool,
    /// Free-form snapshot description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Compression for file contents (e.g. zstd-fastest, or none) instead of the policy's.
    #[arg(long)]
    pub compression: Option<String>,
    /// Output result in JSON format to stdout.
    #[arg(long)]
    pub json: bool,
}

/// `snapshot create`.
pub(super) fn create(cfg: &ConnectionConfig, repo: &Repository, a: CreateArgs) -> Result<()> {
    if let Some(c) = &a.compression {
        // `none` resolves to no compressor; a name known only for reading is refused too.
        match kopr_format::compression::resolve(Some(c)) {
            Ok(comp) if comp.is_none_or(|comp| comp.is_supported()) => {}
            _ => bail!("unknown compression algorithm {c:?}"),
        }
    }
    if cfg.read_only {
        return Err(super::super::ReadOnlyConnection.into());
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
    let mut sources = a.sources.clone();
    if a.all {
        sources.extend(local_backup_paths(cfg, repo)?);
    }
    if sources.is_empty() {
        bail!("no snapshot sources");
    }
    let mut failures: Vec<String> = Vec::new();
    for src in &sources {
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

/// Kopia's `--all`: the paths this user@host snapshotted before, except those whose
/// effective scheduling policy is manual.
fn local_backup_paths(cfg: &ConnectionConfig, repo: &Repository) -> Result<Vec<PathBuf>> {
    let mut sources: Vec<SourceInfo> = snap::list_snapshots(repo, None)?
        .into_iter()
        .map(|m| m.source)
        .filter(|s| s.host == cfg.hostname && s.user_name == cfg.username)
        .collect();
    sources.sort();
    sources.dedup();
    let mut out = Vec::new();
    for si in sources {
        let p = kopr_repo::policy::effective(repo, &si)?;
        let manual = kopr_format::policy_fields::section(&p.extra, "scheduling")
            .get("manual")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if !manual {
            out.push(PathBuf::from(&si.path));
        }
    }
    Ok(out)
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
    let tty = crate::progress::enabled() && !a.json;
    if !a.json {
        eprintln!("Snapshotting {si} ...");
    }
    let counters = std::sync::Arc::new(ProgressCounters::default());
    let bar = tty.then(|| SnapshotBar::start(counters.clone()));
    let outcome = snap::create_snapshot_outcome(
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
    let result = match outcome {
        Ok(snap::Created::Saved(m)) => Ok(m),
        // As Kopia: nothing printed on stdout, no retention applied.
        Ok(snap::Created::Identical(_)) => {
            eprintln!(
                "Not saving snapshot because no files have been changed since previous snapshot"
            );
            return Ok(None);
        }
        Err(e) => Err(e),
    };
    crate::commands::notification::snapshot_created(repo, &si, &result);
    let m = result?;
    print_created(&m, &si, started, a.json)?;
    apply_retention(repo, &si, a.json)?;
    if !m.incomplete_reason.is_empty() {
        bail!(
            "snapshot {} of {si} is incomplete ({}); run the same command again to resume",
            m.id,
            m.incomplete_reason
        );
    }
    Ok(report_errors(&m, &si))
}

/// Logs the new snapshot and prints its summary (or its manifest with `--json`).
fn print_created(
    m: &kopr_format::snapshot::SnapshotManifest,
    si: &kopr_format::snapshot::SourceInfo,
    started: Instant,
    json: bool,
) -> Result<()> {
    let root = m
        .root_entry
        .as_ref()
        .map(|r| r.object_id.to_string())
        .unwrap_or_default();
    // A record for the logs, not the console (which prints the summary below).
    tracing::debug!(
        target: "uploader",
        source = %si,
        manifest = %m.id,
        root = %root,
        files = m.stats.total_file_count,
        bytes = m.stats.total_file_size,
        cached = m.stats.cached_files,
        errors = m.stats.error_count,
        "uploading finished"
    );
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
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
    Ok(())
}

/// As Kopia: the source's retention policy runs after every snapshot.
fn apply_retention(
    repo: &Repository,
    si: &kopr_format::snapshot::SourceInfo,
    json: bool,
) -> Result<()> {
    let expired =
        kopr_repo::policy::expire(repo, si, true).context("unable to apply retention policy")?;
    for old in &expired {
        tracing::debug!(target: "retention", source = %si, manifest = %old.id, "expired snapshot");
    }
    if !expired.is_empty() && !json {
        eprintln!(
            "Deleted {} snapshot(s) of {si} per its retention policy.",
            expired.len()
        );
    }
    Ok(())
}

/// Prints the entries a snapshot could not read; returns Kopia's `Found N fatal error(s)`
/// when errors that the error-handling policy does not ignore occurred.
fn report_errors(m: &SnapshotManifest, si: &SourceInfo) -> Option<String> {
    let summary = m.root_entry.as_ref().and_then(|r| r.dir_summary.as_ref())?;
    let fatal = summary.fatal_error_count;
    let label = if fatal > 0 { "error" } else { "ignored error" };
    for fe in &summary.failed_entries {
        eprintln!("{label}: {}: {}", fe.entry_path, fe.error);
        // The same for the log file and the repository's log (the console has it above).
        tracing::warn!(
            target: crate::logging::QUIET_TARGET,
            path = %fe.entry_path,
            fatal = fatal > 0,
            "{}",
            fe.error
        );
    }
    if summary.ignored_error_count > 0 {
        eprintln!(
            "Ignored {} error(s) while snapshotting {si}.",
            summary.ignored_error_count
        );
    }
    (fatal > 0).then(|| format!("Found {fatal} fatal error(s) while snapshotting {si}."))
}
