//! `content stats | ls | show`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context as _, Result};
use kopr_format::compression::{self, HeaderId};
use kopr_format::index::{ContentId, IndexEntry};
use serde_json::json;

use super::{format_timestamp, print_histogram, Context};
use crate::app::{ContentCommand, ContentListArgs};
use crate::units;

pub fn run(ctx: &Context, cmd: ContentCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    let cm = repo.contents();
    match cmd {
        ContentCommand::Delete { ids } => super::repair::content_delete(ctx, &cfg, &repo, &ids),
        ContentCommand::Rewrite(a) => super::repair::content_rewrite(ctx, &cfg, &repo, &a),
        ContentCommand::Stats { raw, json } => stats(&cm.list_contents(false)?, raw, json),
        ContentCommand::Verify {
            full,
            download_percent,
            include_deleted,
            json: as_json,
        } => verify(&repo, full, download_percent, include_deleted, as_json),
        ContentCommand::Ls(args) => {
            list(&cm.list_contents(args.deleted || args.deleted_only)?, &args)
        }
        ContentCommand::Show { ids, json } => {
            let mut out = std::io::stdout().lock();
            for id in ids {
                let cid: ContentId = id
                    .parse()
                    .with_context(|| format!("invalid content ID {id:?}"))?;
                let data = cm.get_content(&cid)?;
                if json {
                    let v: serde_json::Value = serde_json::from_slice(&data)
                        .with_context(|| format!("content {id} is not JSON"))?;
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    out.write_all(&data)?;
                }
            }
            Ok(())
        }
    }
}

/// Kopia's name of a compression header id.
pub fn compression_name(h: u32) -> Option<&'static str> {
    compression::by_header_id(HeaderId(h)).map(|c| c.name())
}

#[derive(Default)]
struct Totals {
    count: i64,
    original: i64,
    packed: i64,
}

fn stats(entries: &[IndexEntry], raw: bool, as_json: bool) -> Result<()> {
    let mut total = Totals::default();
    let mut by_method: BTreeMap<u32, Totals> = BTreeMap::new();
    for e in entries {
        for t in [
            &mut total,
            by_method.entry(e.compression_header_id).or_default(),
        ] {
            t.count += 1;
            t.original += i64::from(e.original_length);
            t.packed += i64::from(e.packed_length);
        }
    }
    if as_json {
        let v = kopr_repo::content_stats::compute(entries);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let size = |v: i64| if raw { v.to_string() } else { units::bytes(v) };
    println!("Count: {}", total.count);
    println!("Total Bytes: {}", size(total.original));
    if total.packed < total.original {
        println!(
            "Total Packed: {} (compression {})",
            size(total.packed),
            units::compression_percentage(total.original, total.packed)
        );
    }
    if by_method.len() > 1 {
        println!("By Method:");
        if let Some(t) = by_method.get(&0) {
            println!(
                "  {:<22} count: {} size: {}",
                "(uncompressed)",
                t.count,
                size(t.original)
            );
        }
        let mut named: Vec<(&str, &Totals)> = by_method
            .iter()
            .filter_map(|(h, t)| Some((compression_name(*h)?, t)))
            .collect();
        named.sort_by_key(|(n, _)| *n);
        for (name, t) in named {
            println!(
                "  {:<22} count: {} size: {} packed: {} compression: {}",
                name,
                t.count,
                size(t.original),
                size(t.packed),
                units::compression_percentage(t.original, t.packed)
            );
        }
    }
    if total.count == 0 {
        return Ok(());
    }
    println!("Average: {}", size(total.original / total.count));
    println!("Histogram:");
    println!();
    print_histogram(entries.iter().map(|e| i64::from(e.packed_length)), &size);
    Ok(())
}

fn compression_info(e: &IndexEntry) -> String {
    if e.compression_header_id == 0 {
        return "-".into();
    }
    let mut s = compression_name(e.compression_header_id)
        .map(str::to_string)
        .unwrap_or_else(|| format!("compression-{:x}", e.compression_header_id));
    if e.original_length > 0 {
        s.push(' ');
        s.push_str(&units::compression_percentage(
            i64::from(e.original_length),
            i64::from(e.packed_length),
        ));
    }
    s
}

fn list(entries: &[IndexEntry], args: &ContentListArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut count = 0i64;
    let mut total = 0i64;
    for e in entries {
        if args.deleted_only && !e.deleted {
            continue;
        }
        let id = e.content_id.to_string();
        if let Some(p) = &args.prefix {
            if !id.starts_with(p.as_str()) {
                continue;
            }
        }
        count += 1;
        total += i64::from(e.packed_length);
        let deleted = if e.deleted { " (deleted)" } else { "" };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&entry_json(e))?)?;
        } else if args.compression {
            writeln!(
                out,
                "{id} length {} packed {} {} {deleted}",
                e.original_length,
                e.packed_length,
                compression_info(e)
            )?;
        } else if args.long {
            let ts = chrono::DateTime::from_timestamp(e.timestamp_seconds, 0).unwrap_or_default();
            writeln!(
                out,
                "{id} {} {} {} {}+{}{deleted} {}",
                e.original_length,
                format_timestamp(ts),
                e.pack_blob_id,
                e.pack_offset,
                e.packed_length,
                compression_info(e)
            )?;
        } else {
            writeln!(out, "{id}")?;
        }
    }
    if args.summary {
        writeln!(out, "Total: {count} contents, {total} total size")?;
    }
    Ok(())
}

/// A content's index entry as JSON (Kopia's field names).
pub fn entry_json(e: &IndexEntry) -> serde_json::Value {
    json!({
        "contentID": e.content_id.to_string(),
        "packFile": e.pack_blob_id,
        "packOffset": e.pack_offset,
        "packedLength": e.packed_length,
        "originalLength": e.original_length,
        "timestamp": chrono::DateTime::from_timestamp(e.timestamp_seconds, 0).unwrap_or_default(),
        "deleted": e.deleted,
        "formatVersion": e.format_version,
        "compression": e.compression_header_id,
        "encryptionKeyID": e.encryption_key_id,
    })
}

fn verify(
    repo: &kopr_repo::Repository,
    full: bool,
    download_percent: f64,
    include_deleted: bool,
    as_json: bool,
) -> Result<()> {
    if !(0.0..=100.0).contains(&download_percent) {
        anyhow::bail!("invalid --download-percent {download_percent}: use 0 to 100");
    }
    let percent = if full { 100.0 } else { download_percent };
    let report = kopr_repo::verify::verify_contents(repo, percent, include_deleted)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.problems {
            eprintln!(
                "content {} in pack {}: {}",
                p.content_id, p.pack_blob_id, p.problem
            );
            for u in &p.used_by {
                eprintln!("  used by snapshot {u}");
            }
        }
        eprintln!(
            "Finished verifying {} contents ({} downloaded), found {} errors.",
            report.verified,
            report.downloaded,
            report.problems.len()
        );
    }
    if !report.problems.is_empty() {
        anyhow::bail!("encountered {} errors", report.problems.len());
    }
    Ok(())
}
