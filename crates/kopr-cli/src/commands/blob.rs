//! `blob ls | stats | show | delete | gc`.

use std::io::Write;

use anyhow::{Context as _, Result};
use kopr_repo::maintenance::blobs::{retention, unreferenced_blobs};
use kopr_repo::maintenance::SafetyParameters;
use kopr_repo::Repository;
use serde_json::json;

use super::{format_timestamp, go_json_indent, print_histogram, require_dangerous, Context};
use crate::app::BlobCommand;
use crate::units;

pub fn run(ctx: &Context, cmd: BlobCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    let st = repo.storage();
    match cmd {
        BlobCommand::Show { decrypt, ids } => {
            let mut out = std::io::stdout().lock();
            for id in ids {
                show(&repo, &id, decrypt, &mut out).context("error presenting blob")?;
            }
            Ok(())
        }
        BlobCommand::Delete { ids } => {
            require_dangerous(ctx)?;
            if cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            for id in ids {
                st.delete_blob(&id)
                    .with_context(|| format!("error deleting {id}"))?;
            }
            Ok(())
        }
        BlobCommand::Gc {
            delete,
            parallel: _,
            prefix,
            safety,
        } => {
            require_dangerous(ctx)?;
            let safety = SafetyParameters::by_name(&safety)
                .ok_or_else(|| anyhow::anyhow!("invalid --safety {safety:?}: use full or none"))?;
            let dry_run = delete != "yes";
            if !dry_run && cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            gc(&repo, prefix.as_deref(), dry_run, &safety)
        }
        BlobCommand::Ls {
            prefix,
            min_size,
            max_size,
            data_only,
            json: as_json,
        } => {
            let filter = (min_size, max_size, data_only);
            ls(&repo, prefix.as_deref(), filter, as_json)
        }
        BlobCommand::Stats { prefix, raw } => {
            let blobs = st.list_all(prefix.as_deref().unwrap_or(""))?;
            let size = |v: i64| if raw { v.to_string() } else { units::bytes(v) };
            let total: i64 = blobs.iter().map(|b| b.length as i64).sum();
            println!("Count: {}", blobs.len());
            println!("Total: {}", size(total));
            if blobs.is_empty() {
                return Ok(());
            }
            println!("Average: {}", size(total / blobs.len() as i64));
            println!("Histogram:");
            println!();
            print_histogram(blobs.iter().map(|b| b.length as i64), &size);
            Ok(())
        }
    }
}

/// `blob ls`: blobs under `prefix`, sorted by id, within `(min_size, max_size)` and data packs
/// only with `data_only`.
fn ls(
    repo: &Repository,
    prefix: Option<&str>,
    (min_size, max_size, data_only): (Option<u64>, Option<u64>, bool),
    as_json: bool,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut blobs = repo.storage().list_all(prefix.unwrap_or(""))?;
    blobs.sort_by(|a, b| a.id.cmp(&b.id));
    for b in blobs {
        if data_only && !b.id.starts_with('p') {
            continue;
        }
        if min_size.is_some_and(|m| b.length < m) || max_size.is_some_and(|m| b.length > m) {
            continue;
        }
        if as_json {
            writeln!(
                out,
                "{}",
                json!({"id": b.id, "length": b.length, "timestamp": b.timestamp})
            )?;
        } else {
            writeln!(
                out,
                "{:<70} {:>10} {}",
                b.id,
                b.length,
                format_timestamp(b.timestamp)
            )?;
        }
    }
    Ok(())
}

/// Kopia's `blob show`: the blob as stored, decrypted with `--decrypt` for the blob kinds that
/// are encrypted as a whole (`_` logs, `n` legacy indexes, `m` compaction logs, `l` cleanup
/// markers, and, beyond Kopia's list, `x` epoch indexes and `s` session markers); `m` and `l`
/// blobs are JSON and printed indented.
fn show(repo: &Repository, id: &str, decrypt: bool, out: &mut dyn Write) -> Result<()> {
    let mut data = repo
        .storage()
        .get_blob(id, 0, None)
        .context("error reading blob")?;
    let first = id.as_bytes().first().copied().unwrap_or(b' ');
    if decrypt && matches!(first, b'_' | b'n' | b'm' | b'l' | b'x' | b's') {
        data = kopr_format::blob_crypto::decrypt_blob(&repo.format().encryptor, &data, id)
            .context("error decrypting blob")?;
    }
    if matches!(first, b'm' | b'l') {
        let text = std::str::from_utf8(&data)
            .ok()
            .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
            .ok_or_else(|| anyhow::anyhow!("invalid JSON"))?;
        data = go_json_indent(text).into_bytes();
    }
    out.write_all(&data)?;
    Ok(())
}

/// Kopia's `blob gc`: pack blobs (`p`, `q`, or those under `prefix`) that no index entry
/// references, older than the safety margin and not part of a live write session, are
/// listed, and deleted with `--delete=yes`.
fn gc(
    repo: &Repository,
    prefix: Option<&str>,
    dry_run: bool,
    safety: &SafetyParameters,
) -> Result<()> {
    let prefixes: Vec<&str> = match prefix {
        Some(p) => vec![p],
        None => vec!["p", "q"],
    };
    let sessions = repo.contents().active_sessions()?;
    let cutoff = repo.contents().clock().now() + chrono::Duration::seconds(1);
    let mut unused = unreferenced_blobs(repo, &prefixes)?;
    unused.sort_by(|a, b| a.id.cmp(&b.id));
    let (mut count, mut total, mut kept, mut kept_total, mut deleted, mut deleted_total) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for bm in &unused {
        if retention(bm, cutoff, &sessions, safety).is_some() {
            kept += 1;
            kept_total += bm.length;
            continue;
        }
        count += 1;
        total += bm.length;
        if dry_run {
            eprintln!(
                "unreferenced {} ({})",
                bm.id,
                units::bytes(bm.length as i64)
            );
        } else {
            repo.storage()
                .delete_blob(&bm.id)
                .with_context(|| format!("error deleting {}", bm.id))?;
            tracing::debug!(target: "blob-gc", blob = %bm.id, length = bm.length, "deleted unreferenced blob");
            deleted += 1;
            deleted_total += bm.length;
        }
    }
    eprintln!(
        "Found {count} unreferenced pack blobs to delete ({})",
        units::bytes(total as i64)
    );
    if kept > 0 {
        eprintln!(
            "Preserved {kept} unreferenced pack blobs younger than the safety margin or in live sessions ({})",
            units::bytes(kept_total as i64)
        );
    }
    if dry_run {
        if count > 0 {
            eprintln!("Pass --delete=yes to delete.");
        }
    } else {
        eprintln!(
            "Deleted total {deleted} unreferenced blobs ({})",
            units::bytes(deleted_total as i64)
        );
    }
    Ok(())
}
