//! `snapshot ls`: snapshots by source, with retention reasons and storage statistics.

use super::*;

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

/// `snapshot list`.
pub(super) fn list(cfg: &ConnectionConfig, repo: &Repository, a: LsArgs) -> Result<()> {
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
