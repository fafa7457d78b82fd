//! `index ls`.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::app::IndexCommand;

pub fn run(ctx: &Context, cmd: IndexCommand) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    match cmd {
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
