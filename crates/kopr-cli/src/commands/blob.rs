//! `blob ls | stats`.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use super::{format_timestamp, print_histogram, Context};
use crate::app::BlobCommand;
use crate::units;

pub fn run(ctx: &Context, cmd: BlobCommand) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    let st = repo.storage();
    match cmd {
        BlobCommand::Ls {
            prefix,
            min_size,
            max_size,
            data_only,
            json: as_json,
        } => {
            let mut out = std::io::stdout().lock();
            let mut blobs = st.list_all(prefix.as_deref().unwrap_or(""))?;
            blobs.sort_by(|a, b| a.id.cmp(&b.id));
            for b in blobs {
                if data_only && !b.id.starts_with('p') {
                    continue;
                }
                if min_size.is_some_and(|m| b.length < m) || max_size.is_some_and(|m| b.length > m)
                {
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
