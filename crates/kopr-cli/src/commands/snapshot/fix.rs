//! `snapshot fix invalid-files | remove-files`: snapshots rewritten without unreadable files or
//! without named files, with Kopia's flags and log lines. Without `--commit` the new trees are
//! computed and reported, the manifests stay; with it each changed snapshot gets a new
//! manifest (new id) and the old one is deleted, as Kopia's `UpdateSnapshot` does.

use super::*;
use anyhow::anyhow;
use kopr_repo::snapshot::fix::{self, DirRewriter, FailedEntry};

/// `snapshot fix …`
#[derive(Debug, clap::Subcommand)]
pub enum FixCommand {
    /// Remove references to any invalid (unreadable) files from snapshots.
    #[command(name = "invalid-files")]
    InvalidFiles(InvalidFilesArgs),
    /// Remove references to the specified files from snapshots.
    #[command(name = "remove-files")]
    RemoveFiles(RemoveFilesArgs),
}

/// Flags both fixes take.
#[derive(Debug, Args)]
pub struct CommonFixArgs {
    /// Manifest IDs.
    #[arg(long = "manifest-id")]
    pub manifest_ids: Vec<String>,
    /// Source to target (username@hostname:/path).
    #[arg(long)]
    pub source: Vec<String>,
    /// Update snapshot manifests.
    #[arg(long)]
    pub commit: bool,
    /// Parallelism (accepted for Kopia's scripts; kopr rewrites one directory at a time).
    #[arg(long, default_value_t = 0)]
    pub parallel: usize,
    /// Handling of invalid directories.
    #[arg(long = "invalid-directory-handling", default_value = "stub", value_parser = ["fail", "stub", "keep"])]
    pub invalid_directory_handling: String,
}

/// `snapshot fix invalid-files` flags.
#[derive(Debug, Args)]
pub struct InvalidFilesArgs {
    #[command(flatten)]
    pub common: CommonFixArgs,
    /// How to handle invalid files.
    #[arg(long = "invalid-file-handling", default_value = "stub", value_parser = ["fail", "stub", "keep", "remove"])]
    pub invalid_file_handling: String,
    /// Verify a percentage of files by fully downloading them [0.0 .. 100.0].
    #[arg(long = "verify-files-percent", default_value_t = 0.0)]
    pub verify_files_percent: f64,
}

/// `snapshot fix remove-files` flags.
#[derive(Debug, Args)]
pub struct RemoveFilesArgs {
    #[command(flatten)]
    pub common: CommonFixArgs,
    /// Remove files by their object ID.
    #[arg(long = "object-id")]
    pub object_ids: Vec<String>,
    /// Remove files by filename (wildcards are supported).
    #[arg(long)]
    pub filename: Vec<String>,
}

/// Go's `path.Match` for one name: `*`, `?`, `[...]` (with `^` or `!` negation and ranges),
/// `\` escapes. An unterminated class is an error.
fn wildcard(pat: &[u8], name: &[u8]) -> Result<bool> {
    match pat.first() {
        None => Ok(name.is_empty()),
        Some(b'*') => {
            for i in 0..=name.len() {
                if name[..i].contains(&b'/') {
                    break;
                }
                if wildcard(&pat[1..], &name[i..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some(b'?') => match name.first() {
            Some(&c) if c != b'/' => wildcard(&pat[1..], &name[1..]),
            _ => Ok(false),
        },
        Some(b'[') => {
            let end = pat[1..]
                .iter()
                .position(|&b| b == b']')
                .map(|p| p + 1)
                .ok_or_else(|| anyhow!("invalid wildcard: syntax error in pattern"))?;
            let Some(&c) = name.first() else {
                return Ok(false);
            };
            let mut class = &pat[1..end];
            let negate = matches!(class.first(), Some(b'^') | Some(b'!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            if hit != negate {
                wildcard(&pat[end + 1..], &name[1..])
            } else {
                Ok(false)
            }
        }
        Some(b'\\') if pat.len() > 1 => match name.first() {
            Some(&c) if c == pat[1] => wildcard(&pat[2..], &name[1..]),
            _ => Ok(false),
        },
        Some(&p) => match name.first() {
            Some(&c) if c == p => wildcard(&pat[1..], &name[1..]),
            _ => Ok(false),
        },
    }
}

/// The snapshots to fix: those named, those of the sources, else all.
fn targets(
    cfg: &ConnectionConfig,
    repo: &Repository,
    c: &CommonFixArgs,
) -> Result<Vec<SnapshotManifest>> {
    let mut out = Vec::new();
    for id in &c.manifest_ids {
        out.push(
            snap::load_snapshot(repo, &id.into())
                .with_context(|| format!("error loading snapshots: {id}"))?,
        );
    }
    for src in &c.source {
        eprintln!("Listing snapshots for source {src:?}...");
        let si = crate::commands::policy::parse_target(cfg, Some(src), false)
            .context("unable to parse source")?;
        let m = snap::list_snapshots(repo, Some(&si))?;
        if m.is_empty() {
            bail!("no snapshots for {src}");
        }
        out.extend(m);
    }
    if out.is_empty() {
        eprintln!("Listing all snapshots...");
        out = snap::list_snapshots(repo, None)?;
    }
    Ok(out)
}

/// Kopia's `+1.2 KB` / `-3 B` change of a root's total size, empty when equal.
fn size_delta(old: &SnapshotManifest, new: &SnapshotManifest) -> String {
    let size = |m: &SnapshotManifest| {
        m.root_entry
            .as_ref()
            .and_then(|r| r.dir_summary.as_ref())
            .map(|s| s.total_file_size)
    };
    match (size(old), size(new)) {
        (Some(a), Some(b)) if b > a => format!("+{}", units::bytes(b - a)),
        (Some(a), Some(b)) if b < a => format!("-{}", units::bytes(a - b)),
        _ => String::new(),
    }
}

fn rewrite_all(
    cfg: &ConnectionConfig,
    repo: &Repository,
    c: &CommonFixArgs,
    mut rw: DirRewriter<'_>,
) -> Result<()> {
    if c.commit && cfg.read_only {
        return Err(crate::commands::ReadOnlyConnection.into());
    }
    let mut manifests = targets(cfg, repo, c)?;
    manifests.sort_by(|a, b| {
        a.source
            .cmp(&b.source)
            .then(a.start_time.cmp(&b.start_time))
    });
    let mut updated = 0;
    let mut current: Option<SourceInfo> = None;
    for mut man in manifests {
        if current.as_ref() != Some(&man.source) {
            eprintln!("Processing snapshot {}", man.source);
            current = Some(man.source.clone());
        }
        let old = man.clone();
        if !rw.rewrite_manifest(&mut man).with_context(|| {
            format!(
                "error rewriting manifest: error processing snapshot {}",
                old.id
            )
        })? {
            eprintln!("  {} unchanged ({})", ts(man.start_time), man.id);
            continue;
        }
        if c.commit {
            man.id = Default::default();
            let new_id = repo.manifests().put(man.source.labels(), &man)?;
            repo.manifests().delete(old.id.manifest_id())?;
            man.id = new_id.into();
        }
        eprintln!(
            "  {} replaced manifest from {} to {}",
            ts(man.start_time),
            old.id,
            man.id
        );
        let root = |m: &SnapshotManifest| {
            m.root_entry
                .as_ref()
                .map(|r| r.object_id.to_string())
                .unwrap_or_default()
        };
        eprintln!("    diff {} {}", root(&old), root(&man));
        let d = size_delta(&old, &man);
        if !d.is_empty() {
            eprintln!("    delta:{d}");
        }
        updated += 1;
    }
    if updated == 0 {
        eprintln!("No changes.");
    } else if c.commit {
        repo.flush()?;
        eprintln!("Fixed and committed {updated} snapshots.");
    } else {
        eprintln!("Fixed {updated} snapshots, but snapshot manifests were not updated. Pass --commit to update snapshots.");
    }
    Ok(())
}

fn handling(name: &str) -> Result<FailedEntry> {
    FailedEntry::by_name(name).ok_or_else(|| anyhow!("invalid handling {name:?}"))
}

/// `snapshot fix …`.
pub(super) fn run(cfg: &ConnectionConfig, repo: &Repository, cmd: FixCommand) -> Result<()> {
    match cmd {
        FixCommand::RemoveFiles(a) => {
            if a.object_ids.is_empty() && a.filename.is_empty() {
                bail!("must specify files to remove");
            }
            for f in &a.filename {
                wildcard(f.as_bytes(), b"")?;
            }
            let dirs = handling(&a.common.invalid_directory_handling)?;
            let (oids, names) = (a.object_ids.clone(), a.filename.clone());
            let rewrite = move |_: &Repository,
                                path: &str,
                                e: &DirEntry|
                  -> kopr_repo::Result<Option<DirEntry>> {
                let by_name = names
                    .iter()
                    .any(|n| wildcard(n.as_bytes(), e.name.as_bytes()).unwrap_or(false));
                if by_name || oids.contains(&e.object_id.to_string()) {
                    eprintln!("will remove file {path}");
                    return Ok(None);
                }
                Ok(Some(e.clone()))
            };
            let rw = DirRewriter::new(repo, dirs, Box::new(rewrite));
            rewrite_all(cfg, repo, &a.common, rw)
        }
        FixCommand::InvalidFiles(a) => {
            if !(0.0..=100.0).contains(&a.verify_files_percent) {
                bail!(
                    "invalid --verify-files-percent {}: use 0 to 100",
                    a.verify_files_percent
                );
            }
            let dirs = handling(&a.common.invalid_directory_handling)?;
            let files = handling(&a.invalid_file_handling)?;
            let packs = fix::pack_lengths(repo)?;
            let percent = a.verify_files_percent;
            let rewrite = move |repo: &Repository,
                                path: &str,
                                e: &DirEntry|
                  -> kopr_repo::Result<Option<DirEntry>> {
                if e.entry_type == EntryType::Directory {
                    return Ok(Some(e.clone()));
                }
                let download = percent > 0.0 && rand::random::<f64>() * 100.0 < percent;
                match fix::verify_file(repo, e, &packs, download) {
                    Ok(()) => Ok(Some(e.clone())),
                    Err(err) => {
                        eprintln!("removing invalid file {path} due to: {err}");
                        fix::on_failure(repo, files, e, &err)
                    }
                }
            };
            let rw = DirRewriter::new(repo, dirs, Box::new(rewrite));
            rewrite_all(cfg, repo, &a.common, rw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_as_gos_path_match() {
        let m = |p: &str, n: &str| wildcard(p.as_bytes(), n.as_bytes()).unwrap();
        assert!(m("*.log", "a.log"));
        assert!(!m("*.log", "a.logx"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(m("exact", "exact"));
        assert!(wildcard(b"[ab", b"a").is_err());
    }
}
