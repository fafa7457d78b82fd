//! `snapshot restore | verify | diff`.

use super::*;

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
    /// Restore parallelism: file ranges read and written at once (1 = one at a time).
    #[arg(long, default_value_t = snap::DEFAULT_RESTORE_READERS as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
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

/// `snapshot restore`.
pub(super) fn restore(repo: &Repository, a: RestoreArgs) -> Result<()> {
    let RestoreArgs {
        source,
        target,
        overwrite,
        restore_owners: _,
        skip_owners,
        ignore_errors,
        parallel,
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
            parallel: usize::from(parallel),
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
pub(super) fn verify(repo: &Repository, a: VerifyArgs) -> Result<()> {
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
                snap::load_snapshot(repo, &id.into())
                    .with_context(|| format!("snapshot {id} not found"))
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
pub(super) fn diff(repo: &Repository, a: DiffArgs) -> Result<()> {
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

/// `path: error`, without the path twice when the error names it already.
pub(super) fn error_about(path: &Path, err: &kopr_repo::RepoError) -> String {
    let msg = err.to_string();
    let p = path.display().to_string();
    if msg.starts_with(&p) {
        msg
    } else {
        format!("{p}: {msg}")
    }
}
