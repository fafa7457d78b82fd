//! `index ls | recover | epoch list`.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::app::{IndexCommand, IndexEpochCommand};

pub fn run(ctx: &Context, cmd: IndexCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    match cmd {
        IndexCommand::Epoch(IndexEpochCommand::List) => epoch_list(&repo),
        IndexCommand::Inspect(a) => super::repair::index_inspect(&repo, &a),
        IndexCommand::Optimize(a) => super::repair::index_optimize(ctx, &cfg, &repo, &a),
        IndexCommand::Recover {
            blob_prefixes,
            blobs,
            ignore_errors,
            commit,
        } if commit && cfg.read_only => {
            let _ = (blob_prefixes, blobs, ignore_errors);
            Err(super::ReadOnlyConnection.into())
        }
        IndexCommand::Recover {
            blob_prefixes,
            blobs,
            ignore_errors,
            commit,
        } => recover(&repo, &blob_prefixes, &blobs, ignore_errors, commit),
        IndexCommand::Ls {
            summary,
            sort,
            json: as_json,
        } => {
            let mut blobs = repo.contents().index_blobs()?;
            match sort.as_str() {
                "size" => blobs.sort_by_key(|b| b.length),
                "name" => blobs.sort_by(|a, b| a.id.cmp(&b.id)),
                _ => blobs.sort_by_key(|b| b.timestamp),
            }
            for b in &blobs {
                if as_json {
                    println!(
                        "{}",
                        json!({"blobID": b.id, "length": b.length, "timestamp": b.timestamp})
                    );
                } else {
                    let ts = b
                        .timestamp
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S%.3f %Z");
                    println!("{:<60} {:>10} {} []", b.id, b.length, ts);
                }
            }
            if summary {
                println!("total {} indexes", blobs.len());
            }
            Ok(())
        }
    }
}

fn recover(
    repo: &kopr_repo::Repository,
    prefixes: &[String],
    blobs: &[String],
    ignore_errors: bool,
    commit: bool,
) -> Result<()> {
    let ids: Vec<String> = if !blobs.is_empty() {
        blobs.to_vec()
    } else {
        let prefixes: Vec<String> = if prefixes.is_empty() {
            vec!["p".into(), "q".into()]
        } else {
            prefixes.to_vec()
        };
        let mut ids = Vec::new();
        for p in &prefixes {
            if !p.starts_with('p') && !p.starts_with('q') {
                anyhow::bail!("invalid --blob-prefixes {p:?}: pack blobs start with p or q");
            }
            ids.extend(repo.storage().list_all(p)?.into_iter().map(|b| b.id));
        }
        ids
    };
    let cm = repo.contents();
    let mut recovered = 0u64;
    let mut processed = 0u64;
    for id in &ids {
        let entries = match cm.pack_local_index(id) {
            Ok(e) => e,
            Err(e) if ignore_errors => {
                tracing::warn!(target: "index", "skipping {id}: {e}");
                continue;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e).context(format!("unable to recover from {id}")))
            }
        };
        processed += 1;
        let mut missing = Vec::new();
        for e in entries {
            if cm.content_info(&e.content_id)?.is_none() {
                missing.push(e);
            }
        }
        recovered += missing.len() as u64;
        if commit && !missing.is_empty() {
            cm.add_recovered_entries(missing)?;
        }
    }
    if recovered == 0 {
        eprintln!("No contents recovered.");
        return Ok(());
    }
    if commit {
        cm.flush()?;
        eprintln!("Recovered {recovered} contents from {processed} blobs.");
    } else {
        eprintln!(
            "Found {recovered} contents to recover from {processed} blobs, but not committed. Re-run with --commit"
        );
    }
    Ok(())
}

/// Kopia's `index epoch list`: the write epoch, then from it down to the first epoch not in a
/// range checkpoint the uncompacted index blobs and single-epoch compactions of each, then
/// the range checkpoints.
fn epoch_list(repo: &kopr_repo::Repository) -> Result<()> {
    use super::format_timestamp;
    use crate::units;
    use kopr_blob::BlobMetadata;
    if !repo.format().uses_epoch_manager() {
        anyhow::bail!("epoch manager is not active");
    }
    let snap = repo
        .contents()
        .epochs()
        .current()
        .map_err(|e| anyhow::anyhow!(e).context("unable to determine current epoch"))?;
    let total = |b: &[BlobMetadata]| units::bytes(b.iter().map(|m| m.length as i64).sum());
    println!("Current Epoch: {}", snap.write_epoch);
    if let Some(t) = snap.epoch_start_time.get(&snap.write_epoch) {
        println!("Epoch Started  {}", format_timestamp(*t));
    }
    let first = snap.range_checkpoints.last().map_or(0, |c| c.max_epoch + 1);
    let mut e = snap.write_epoch;
    while e >= first {
        if let Some(blobs) = snap.uncompacted.get(&e).filter(|b| !b.is_empty()) {
            let min = blobs.iter().map(|b| b.timestamp).min().unwrap_or_default();
            let max = blobs.iter().map(|b| b.timestamp).max().unwrap_or_default();
            // Go's Duration.Round(time.Second).
            let span = chrono::Duration::seconds(((max - min).num_milliseconds() + 500) / 1000);
            println!(
                "{e} {} ... {}, {} blobs, {}, span {}",
                format_timestamp(min),
                format_timestamp(max),
                blobs.len(),
                total(blobs),
                units::duration(span)
            );
        }
        if let Some(secs) = snap.single_epoch_compactions.get(&e) {
            if let Some(first_blob) = secs.first() {
                println!(
                    "{e}: {} single-epoch {} blobs, {}",
                    format_timestamp(first_blob.timestamp),
                    secs.len(),
                    total(secs)
                );
            }
        }
        e -= 1;
    }
    for cs in &snap.range_checkpoints {
        println!(
            "{}-{}: range, {} blobs, {}",
            cs.min_epoch,
            cs.max_epoch,
            cs.blobs.len(),
            total(&cs.blobs)
        );
    }
    Ok(())
}
