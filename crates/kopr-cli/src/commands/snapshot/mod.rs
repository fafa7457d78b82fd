//! `snapshot …`: the dispatcher and the helpers the subcommands share (sources, object paths,
//! mode strings), plus the top-level `ls` and `show`. Each subcommand lives in its own module
//! with its flags: `create`, `list`, `restore` (restore, verify, diff), `expire` (expire,
//! delete, pin).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use kopr_format::snapshot::{DirEntry, EntryType, Permissions, SnapshotManifest, SourceInfo};
use kopr_repo::object::ObjectReader;
use kopr_repo::snapshot::{self as snap, ProgressCounters, RestoreOptions, UploadOptions};
use kopr_repo::Repository;

use super::{format_timestamp, Context};
use crate::app::SnapshotCommand;
use crate::config::ConnectionConfig;
use crate::progress::SnapshotBar;
use crate::units;

mod create;
mod estimate;
mod expire;
mod fix;
mod history;
mod list;
mod migrate;
mod restore;

use clap::Args;
use create::create;
pub use create::CreateArgs;
pub use estimate::EstimateArgs;
use expire::{delete, expire, pin};
pub use expire::{DeleteArgs, ExpireArgs, PinArgs};
pub use fix::FixCommand;
pub use history::HistoryArgs;
use list::list;
pub use list::LsArgs;
pub use migrate::MigrateArgs;
use restore::{diff, restore, verify};
pub use restore::{DiffArgs, RestoreArgs, VerifyArgs};
use std::path::PathBuf;

pub(super) fn source_for(cfg: &ConnectionConfig, path: &Path) -> Result<SourceInfo> {
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

pub(super) fn ts(nanos: i64) -> String {
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
        SnapshotCommand::Estimate(a) => estimate::estimate(&cfg, &repo, a),
        SnapshotCommand::CopyHistory(a) => history::copy_or_move(&cfg, &repo, a, false),
        SnapshotCommand::MoveHistory(a) => history::copy_or_move(&cfg, &repo, a, true),
        SnapshotCommand::Fix(c) => fix::run(&cfg, &repo, c),
        SnapshotCommand::Migrate(a) => migrate::migrate(ctx, &cfg, &repo, a),
    }
}

/// Resolves `ID[/sub/path]` where ID is a snapshot manifest id or an object id.
pub(crate) fn resolve(repo: &Repository, spec: &str) -> Result<DirEntry> {
    Ok(snap::resolve(repo, spec)?)
}

pub fn ls(ctx: &Context, spec: &str, long: bool, recursive: bool, show_oid: bool) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let entry = resolve(&repo, spec)?;
    if entry.entry_type != EntryType::Directory {
        bail!("{spec} is not a directory");
    }
    let mut out = std::io::stdout().lock();
    // A failed write stops the walk; the write's own error is what is reported.
    let mut write_error = None;
    let walked = snap::walk_tree(
        &repo,
        &entry,
        "",
        &mut snap::VisitFn(
            |path: &str, e: &DirEntry| -> kopr_repo::Result<snap::Visit> {
                let Some(rel) = path.strip_prefix('/') else {
                    return Ok(snap::Visit::Descend); // the listed directory itself
                };
                let is_dir = e.entry_type == EntryType::Directory;
                let name = if is_dir {
                    format!("{rel}/")
                } else {
                    rel.to_string()
                };
                if let Err(err) = print_entry(&mut out, e, &name, long, show_oid) {
                    write_error = Some(err);
                    return Err(kopr_repo::RepoError::Canceled);
                }
                Ok(if recursive && is_dir {
                    snap::Visit::Descend
                } else {
                    snap::Visit::Skip
                })
            },
        ),
    );
    if let Some(err) = write_error {
        return Err(err.into());
    }
    Ok(walked?)
}

/// One line of `ls`: Kopia's columns with `-l` (mode, size, time, object id, name), the object
/// id and name with `--show-object-id`, else the name.
fn print_entry(
    out: &mut impl Write,
    e: &DirEntry,
    name: &str,
    long: bool,
    show_oid: bool,
) -> std::io::Result<()> {
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
        // A directory's time is the newest time below it, from its summary.
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
        )
    } else if show_oid {
        writeln!(out, "{:<34} {name}{errors}", e.object_id.to_string())
    } else {
        writeln!(out, "{name}{errors}")
    }
}

pub fn show(ctx: &Context, spec: &str) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let entry = resolve(&repo, spec)?;
    let mut r = ObjectReader::open(repo.contents(), &entry.object_id)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut r, &mut out)?;
    Ok(())
}
