//! Full maintenance on a synthetic repository with many contents and snapshots, to measure
//! its time and peak memory (run each step as its own process so peak RSS is its own):
//!
//! ```sh
//! cargo run --release -p kopr-repo --example gc_scale -- build /tmp/gcrepo 1000000 20
//! cargo run --release -p kopr-repo --example gc_scale -- gc /tmp/gcrepo
//! ```
//!
//! `build DIR CONTENTS SNAPSHOTS [FILE_BYTES]` writes snapshots of 1000-file directories in
//! which each snapshot replaces a tenth of the directories with new files, then deletes the
//! older half of the snapshots. With `FILE_BYTES`, files are that many incompressible bytes
//! and the directories written together interleave their files in the same packs (as a
//! parallel upload does), so deleted data shares packs with live data. `gc DIR
//! [MAX_UNUSED_PERCENT]` runs one full cycle with `--safety=none` (with the
//! `max-unused-percent` parameter set first when given; 100 turns the rewrite of partly
//! unused packs off) and prints the time, the contents in use, the process's peak RSS, and
//! the pack bytes stored against the packed bytes of the live contents.
//!
//! ```sh
//! cargo run --release -p kopr-repo --example gc_scale -- build /tmp/sp 30000 10 4096
//! cp -r /tmp/sp /tmp/sp100
//! cargo run --release -p kopr-repo --example gc_scale -- gc /tmp/sp100 100  # rule off
//! cargo run --release -p kopr-repo --example gc_scale -- gc /tmp/sp 5       # default
//! ```

use std::sync::Arc;
use std::time::Instant;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{
    DirEntry, DirManifest, EntryType, Permissions, SnapshotManifest, SourceInfo, DIRECTORY_PREFIX,
    DIRECTORY_STREAM,
};
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, Observer, RunOptions, SafetyParameters};
use kopr_repo::object::{write_object, WriterOptions};
use kopr_repo::{OpenOptions, Repository};

const FILES_PER_DIR: usize = 1000;

struct Print(Instant);
impl Observer for Print {
    fn log(&self, msg: &str) {
        eprintln!(
            "[{:7.2}s {:5} MiB] {msg}",
            self.0.elapsed().as_secs_f64(),
            peak_rss_kib() / 1024
        );
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open(dir: &str) -> Repository {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(dir).expect("storage"));
    Repository::open(st, "pw", OpenOptions::default()).expect("open")
}

/// `len` incompressible bytes determined by `seed` (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn file_data(dir_no: u64, f: u64, file_bytes: usize) -> Vec<u8> {
    if file_bytes == 0 {
        format!("synthetic file {dir_no}/{f} {}", dir_no * 1_000_003 + f).into_bytes()
    } else {
        noise(dir_no * 1_000_003 + f, file_bytes)
    }
}

/// Writes the directories `dir_nos`, their files interleaved (file 0 of each, then file 1 of
/// each, ...) when `file_bytes` is set.
fn write_dirs(repo: &Repository, dir_nos: &[u64], file_bytes: usize) -> Vec<DirEntry> {
    if file_bytes == 0 {
        return dir_nos
            .iter()
            .map(|&d| write_dir(repo, d, 0, &[]))
            .collect();
    }
    let mut ids: Vec<Vec<kopr_format::index::ContentId>> = vec![Vec::new(); dir_nos.len()];
    for f in 0..FILES_PER_DIR as u64 {
        for (i, &d) in dir_nos.iter().enumerate() {
            let cid = repo
                .contents()
                .write_content(&file_data(d, f, file_bytes), None, None)
                .expect("write");
            ids[i].push(cid);
        }
    }
    dir_nos
        .iter()
        .zip(ids)
        .map(|(&d, ids)| write_dir(repo, d, file_bytes, &ids))
        .collect()
}

/// Writes one directory; its files' contents are `written` when given, else written here.
fn write_dir(
    repo: &Repository,
    dir_no: u64,
    file_bytes: usize,
    written: &[kopr_format::index::ContentId],
) -> DirEntry {
    let mut entries = Vec::with_capacity(FILES_PER_DIR);
    for f in 0..FILES_PER_DIR as u64 {
        let data = file_data(dir_no, f, file_bytes);
        let cid = match written.get(f as usize) {
            Some(c) => *c,
            None => repo
                .contents()
                .write_content(&data, None, None)
                .expect("write"),
        };
        entries.push(DirEntry {
            name: format!("f{f:04}"),
            entry_type: EntryType::File,
            permissions: Permissions(0o644),
            file_size: data.len() as i64,
            mod_time: 1_700_000_000_000_000_000,
            user_id: 0,
            group_id: 0,
            object_id: ObjectId::direct(cid),
            dir_summary: None,
        });
    }
    let dm = DirManifest {
        stream: DIRECTORY_STREAM.into(),
        entries,
        summary: None,
    };
    let oid = write_object(
        repo.contents(),
        &dm.encode(),
        WriterOptions {
            prefix: Some(DIRECTORY_PREFIX),
            compression: kopr_format::compression::by_name("zstd-fastest"),
            metadata_compression: kopr_format::compression::by_name("zstd-fastest"),
            splitter: None,
        },
    )
    .expect("dir");
    DirEntry {
        name: format!("d{dir_no}"),
        entry_type: EntryType::Directory,
        permissions: Permissions(0o755),
        file_size: 0,
        mod_time: 1_700_000_000_000_000_000,
        user_id: 0,
        group_id: 0,
        object_id: oid,
        dir_summary: None,
    }
}

fn build(dir: &str, contents: u64, snapshots: u64, file_bytes: usize) {
    let repo = create_repository(dir);
    // contents = dirs * 1000 * (1 + 0.1 * (snapshots - 1))
    let dirs = ((contents as f64 / FILES_PER_DIR as f64) / (1.0 + 0.1 * (snapshots - 1) as f64))
        .ceil()
        .max(10.0) as u64;
    let churn = (dirs / 10).max(1);
    let t = Instant::now();
    let all: Vec<u64> = (0..dirs).collect();
    let mut current: Vec<DirEntry> = write_dirs(&repo, &all, file_bytes);
    let mut next_dir = dirs;
    let mut ids = Vec::new();
    for s in 0..snapshots {
        if s > 0 {
            let new: Vec<u64> = (next_dir..next_dir + churn).collect();
            for (i, e) in write_dirs(&repo, &new, file_bytes).into_iter().enumerate() {
                let slot = ((s * churn + i as u64) % dirs) as usize;
                current[slot] = e;
            }
            next_dir += churn;
        }
        let (src, m) = snapshot_of(&repo, &current, s);
        let id = repo.manifests().put(src.labels(), &m).expect("manifest");
        ids.push(id);
        repo.flush().expect("flush");
    }
    for id in &ids[..ids.len() / 2] {
        repo.manifests().delete(id).expect("delete");
    }
    repo.flush().expect("flush");
    let written = next_dir * FILES_PER_DIR as u64;
    println!(
        "built {written} file contents in {next_dir} directories, {snapshots} snapshots (older half deleted) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// A new repository in `dir` (insecure key derivation: it is a benchmark), owned by this user
/// for maintenance.
fn create_repository(dir: &str) -> Repository {
    let st = FilesystemStorage::create(dir).expect("create storage");
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&st, &opts, "pw").expect("create repo");
    let repo = open(dir);
    let mut p = params::get_params(&repo).expect("params");
    p.owner = params::this_user(&repo);
    params::set_params(&repo, &p).expect("params");
    repo
}

/// Snapshot `s` of the root directory holding `current`: its directory object is written, the
/// manifest is returned with its source.
fn snapshot_of(repo: &Repository, current: &[DirEntry], s: u64) -> (SourceInfo, SnapshotManifest) {
    let mut entries = current.to_vec();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let root = DirManifest {
        stream: DIRECTORY_STREAM.into(),
        entries,
        summary: None,
    };
    let oid = write_object(
        repo.contents(),
        &root.encode(),
        WriterOptions {
            prefix: Some(DIRECTORY_PREFIX),
            compression: kopr_format::compression::by_name("zstd-fastest"),
            metadata_compression: kopr_format::compression::by_name("zstd-fastest"),
            splitter: None,
        },
    )
    .expect("root");
    let src = SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: "/data".into(),
    };
    let m = SnapshotManifest {
        source: src.clone(),
        start_time: 1_700_000_000_000_000_000 + s as i64,
        end_time: 1_700_000_000_000_000_000 + s as i64,
        root_entry: Some(DirEntry {
            name: "data".into(),
            entry_type: EntryType::Directory,
            permissions: Permissions(0o755),
            file_size: 0,
            mod_time: 0,
            user_id: 0,
            group_id: 0,
            object_id: oid,
            dir_summary: None,
        }),
        id: Default::default(),
        description: String::new(),
        stats: Default::default(),
        incomplete_reason: String::new(),
        tags: Default::default(),
        storage_stats: None,
        pins: Vec::new(),
    };
    (src, m)
}

/// Bytes of pack blobs (`p` and `q`) in storage, and packed bytes of the live contents.
fn space(repo: &Repository) -> (u64, u64) {
    let mut stored = 0;
    for prefix in ["p", "q"] {
        stored += repo
            .storage()
            .list_all(prefix)
            .expect("list")
            .iter()
            .map(|b| b.length)
            .sum::<u64>();
    }
    let mut live = 0;
    repo.contents()
        .for_each_committed(false, &mut |e| {
            live += u64::from(e.packed_length);
            Ok(())
        })
        .expect("index");
    (stored, live)
}

fn gc(dir: &str, max_unused: Option<u32>) {
    let repo = open(dir);
    if let Some(n) = max_unused {
        let mut p = params::get_params(&repo).expect("params");
        p.max_unused_percent = Some(n);
        params::set_params(&repo, &p).expect("params");
        repo.flush().expect("flush");
    }
    let (stored_before, _) = space(&repo);
    let opened = peak_rss_kib();
    let t = Instant::now();
    let (used, snaps) = maintenance::gc::find_in_use_contents(&repo).expect("walk");
    let walk = t.elapsed();
    println!(
        "walk: {} contents in use by {snaps} snapshots in {:.2}s, set {} KiB",
        used.len(),
        walk.as_secs_f64(),
        used.memory_bytes() / 1024
    );
    drop(used);
    let t = Instant::now();
    maintenance::run(
        &repo,
        &RunOptions {
            mode: Mode::Full,
            safety: SafetyParameters::none(),
            force: true,
        },
        &Print(Instant::now()),
    )
    .expect("maintenance");
    println!(
        "full cycle (safety none): {:.2}s; peak RSS after open {} MiB, overall {} MiB",
        t.elapsed().as_secs_f64(),
        opened / 1024,
        peak_rss_kib() / 1024
    );
    let repo = open(dir);
    let (stored, live) = space(&repo);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "packs stored: {:.1} MiB before, {:.1} MiB after; live contents {:.1} MiB packed; stored/live {:.3} (max-unused-percent {})",
        mib(stored_before),
        mib(stored),
        mib(live),
        stored as f64 / live.max(1) as f64,
        params::get_params(&repo).expect("params").effective_max_unused_percent()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("build") if args.len() >= 5 => build(
            &args[2],
            args[3].parse().expect("contents"),
            args[4].parse().expect("snapshots"),
            args.get(5).map_or(0, |a| a.parse().expect("file bytes")),
        ),
        Some("gc") if args.len() >= 3 => gc(
            &args[2],
            args.get(3).map(|a| a.parse().expect("max unused percent")),
        ),
        _ => {
            eprintln!(
                "usage: gc_scale build DIR CONTENTS SNAPSHOTS [FILE_BYTES] | gc DIR [MAX_UNUSED_PERCENT]"
            );
            std::process::exit(2);
        }
    }
}
