//! The floor of a restore from S3: fetch every pack blob (`p` prefix) of a bucket whole, on
//! READERS threads, doing nothing with the bytes. `bench/compare.sh` prints it beside kopr's
//! restore from the same bucket, as `read_tree` is printed beside the small-files snapshot.
//!
//!     cargo run --release -p kopr-blob --example s3_fetch -- ENDPOINT BUCKET [READERS=8]
//!
//! Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; the endpoint is plain
//! HTTP (`host:port`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use kopr_blob::s3::{S3Options, S3Storage};
use kopr_blob::BlobStorage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoint), Some(bucket)) = (args.get(1), args.get(2)) else {
        return Err("usage: s3_fetch ENDPOINT BUCKET [READERS]".into());
    };
    let readers: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(8);
    let endpoint = endpoint.trim_start_matches("http://").to_string();
    let storage = S3Storage::new(S3Options {
        bucket: bucket.clone(),
        endpoint,
        do_not_use_tls: true,
        ..S3Options::default()
    })?;
    let mut packs = Vec::new();
    storage.list_blobs("p", &mut |m| {
        packs.push(m.id);
        Ok(())
    })?;
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let total = Mutex::new(0u64);
    std::thread::scope(|s| {
        for _ in 0..readers {
            s.spawn(|| {
                while let Some(id) = packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match storage.get_blob(id, 0, None) {
                        Ok(b) => *total.lock().unwrap_or_else(|e| e.into_inner()) += b.len() as u64,
                        Err(e) => eprintln!("{id}: {e}"),
                    }
                }
            });
        }
    });
    let bytes = *total.lock().unwrap_or_else(|e| e.into_inner());
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} packs, {:.1} MiB in {secs:.2} s ({:.0} MiB/s) on {readers} readers",
        packs.len(),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / (1 << 20) as f64 / secs
    );
    Ok(())
}
