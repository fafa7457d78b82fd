//! The floor of a first snapshot's per-file cost: `lstat`, `open` and `read` of every file of a
//! tree, on as many threads as cores, and nothing else (no hashing, no repository).
//!
//! `cargo run --release -p kopr-repo --example read_tree -- DIR` prints the files, bytes and
//! seconds; `bench/compare.sh` reports it beside the snapshot times of the same tree.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

fn main() {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: read_tree DIR");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    let dirs = Mutex::new(vec![root]);
    let pending = std::sync::atomic::AtomicUsize::new(1);
    let totals = Mutex::new((0u64, 0u64));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                let (mut files, mut bytes) = (0u64, 0u64);
                loop {
                    let next = dirs.lock().map(|mut d| d.pop()).unwrap_or(None);
                    let Some(dir) = next else {
                        if pending.load(std::sync::atomic::Ordering::Acquire) == 0 {
                            break;
                        }
                        std::thread::yield_now();
                        continue;
                    };
                    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let path = e.path();
                        let Ok(md) = std::fs::symlink_metadata(&path) else {
                            continue;
                        };
                        if md.is_dir() {
                            pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                            if let Ok(mut d) = dirs.lock() {
                                d.push(path);
                            }
                        } else if md.is_file() {
                            if let Ok(mut f) = std::fs::File::open(&path) {
                                while let Ok(n) = f.read(&mut buf) {
                                    if n == 0 {
                                        break;
                                    }
                                    bytes += n as u64;
                                }
                                files += 1;
                            }
                        }
                    }
                    pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                }
                if let Ok(mut t) = totals.lock() {
                    t.0 += files;
                    t.1 += bytes;
                }
            });
        }
    });
    let (files, bytes) = totals.into_inner().unwrap_or_default();
    println!(
        "{files} files, {bytes} bytes in {:.3} s",
        start.elapsed().as_secs_f64()
    );
}
