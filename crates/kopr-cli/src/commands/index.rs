//! `index ls`.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::app::IndexCommand;

pub fn run(ctx: &Context, cmd: IndexCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    match cmd {
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
                eprintln!("skipping {id}: {e}");
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
