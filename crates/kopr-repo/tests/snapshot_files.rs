//! Snapshots of files in awkward states: unreadable, hard-linked, sparse, growing or rewritten
//! while they are read.

use kopr_blob::BlobStorage;
use kopr_testkit::random_bytes;
use std::fs;
use std::sync::Arc;

mod common;
use common::*;

#[cfg(unix)]
#[test]
fn unreadable_files_are_recorded_not_fatal() {
    use std::os::unix::fs::PermissionsExt;
    // Root reads a mode-0000 file; as root, the test also runs as `nobody`, who cannot.
    kopr_testkit::env::rerun_as_nobody("unreadable_files_are_recorded_not_fatal");
    let is_root = kopr_testkit::env::is_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok"), b"fine").unwrap();
    fs::write(src.join("secret"), b"no").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m = snap(&repo, &src);
    if is_root {
        assert_eq!(m.stats.error_count, 0, "root reads mode 0000");
        assert_eq!(m.stats.total_file_count, 2);
        return;
    }
    assert_eq!(m.stats.error_count, 1);
    assert_eq!(m.stats.total_file_count, 1);
    assert_eq!(
        m.root_entry.unwrap().dir_summary.unwrap().failed_entries[0].entry_path,
        "secret"
    );
}

fn repo_bytes(st: &Arc<dyn BlobStorage>) -> u64 {
    st.list_all("").unwrap().iter().map(|b| b.length).sum()
}

/// kopr, like Kopia, does not track hard links: two names of one inode are stored as two file
/// entries that share one object (the bytes are deduplicated, not the inode), and restore writes
/// two independent files with the same bytes.
#[cfg(unix)]
#[test]
fn hard_links_are_two_files_with_one_object() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let data = random_bytes(7, 3 << 20);
    fs::write(src.join("a"), &data).unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    assert_eq!(fs::metadata(src.join("a")).unwrap().nlink(), 2);
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let before = repo_bytes(&st);
    let m = snap(&repo, &src);
    assert_eq!(m.stats.total_file_count, 2, "two names, two files");
    assert_eq!(m.stats.total_file_size, 2 * data.len() as i64);
    let entries = root_entries(&repo, &m);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].object_id, entries[1].object_id,
        "same bytes, same object"
    );
    assert!(
        repo_bytes(&st) - before < data.len() as u64 + (1 << 20),
        "the data is stored once"
    );

    let dst = tmp.path().join("dst");
    let rs = restore_all(&repo, &m, &dst);
    assert_eq!(rs.files, 2);
    assert_eq!(fs::read(dst.join("a")).unwrap(), data);
    assert_eq!(fs::read(dst.join("b")).unwrap(), data);
    // Restored as two files, not as one inode (Kopia's behaviour too).
    let (ma, mb) = (
        fs::metadata(dst.join("a")).unwrap(),
        fs::metadata(dst.join("b")).unwrap(),
    );
    assert_eq!((ma.nlink(), mb.nlink()), (1, 1));
    assert_ne!(ma.ino(), mb.ino());
}

#[test]
fn sparse_file_restores_byte_for_byte_and_its_zeros_dedup() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let tail = random_bytes(11, 1 << 20);
    {
        let mut f = fs::File::create(src.join("sparse")).unwrap();
        f.set_len(63 << 20).unwrap();
        f.seek(SeekFrom::Start(63 << 20)).unwrap();
        f.write_all(&tail).unwrap();
    }
    assert_eq!(fs::metadata(src.join("sparse")).unwrap().len(), 64 << 20);
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let before = repo_bytes(&st);
    let m = snap(&repo, &src);
    let grown = repo_bytes(&st) - before;
    assert_eq!(m.stats.total_file_size, 64 << 20);
    // Zero chunks are identical, so they are stored once: a couple of chunks plus the tail,
    // not 64 MiB.
    assert!(
        grown < 20 << 20,
        "repository grew by {grown} bytes for a 64 MiB file of 1 MiB data"
    );

    let dst = tmp.path().join("dst");
    restore_all(&repo, &m, &dst);
    let got = fs::read(dst.join("sparse")).unwrap();
    assert_eq!(got.len(), 64 << 20);
    assert!(got[..63 << 20].iter().all(|&b| b == 0), "the hole is zeros");
    assert!(got[63 << 20..] == tail[..], "the data at the end is intact");
}

/// Kopia's semantics for a file that changes while it is read: the snapshot records what was
/// read (up to the end of file seen by the reads), and the entry's size is the object's length.
/// Here a writer keeps appending a known byte stream, so what was read must be a prefix of it.
#[test]
fn file_growing_while_read_is_stored_as_a_consistent_prefix() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let stream = Arc::new(random_bytes(21, 96 << 20));
    let initial = 8 << 20;
    let path = src.join("growing.log");
    fs::write(&path, &stream[..initial]).unwrap();
    fs::write(src.join("other"), b"steady").unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(initial));
    let writer = {
        let (stop, written, stream, path) =
            (stop.clone(), written.clone(), stream.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            let mut at = initial;
            while !stop.load(Ordering::Relaxed) && at < stream.len() {
                let end = (at + (128 << 10)).min(stream.len());
                f.write_all(&stream[at..end]).unwrap();
                at = end;
                written.store(at, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    while written.load(Ordering::Relaxed) == initial {
        std::thread::yield_now();
    }
    let m = snap(&repo, &src);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    assert_eq!(m.stats.error_count, 0);
    let entry = root_entries(&repo, &m)
        .into_iter()
        .find(|e| e.name == "growing.log")
        .unwrap();
    let stored = kopr_repo::object::read_object(repo.contents(), &entry.object_id).unwrap();
    assert_eq!(
        entry.file_size,
        stored.len() as i64,
        "the size recorded is the bytes stored"
    );
    assert!(stored.len() >= initial, "{} bytes", stored.len());
    assert!(
        stored[..] == stream[..stored.len()],
        "what was read is a prefix of what was written"
    );
    let summary = m.root_entry.as_ref().unwrap().dir_summary.clone().unwrap();
    assert_eq!(summary.total_file_size, stored.len() as i64 + 6);
    assert_eq!(m.stats.total_file_size, stored.len() as i64 + 6);

    let dst = tmp.path().join("dst");
    restore_all(&repo, &m, &dst);
    assert!(fs::read(dst.join("growing.log")).unwrap() == stored);

    // Once the writer stopped, the next snapshot reads the file again and gets all of it.
    let final_len = written.load(Ordering::Relaxed);
    let m2 = snap(&repo, &src);
    let e2 = root_entries(&repo, &m2)
        .into_iter()
        .find(|e| e.name == "growing.log")
        .unwrap();
    assert_eq!(e2.file_size, final_len as i64);
    assert!(
        kopr_repo::object::read_object(repo.contents(), &e2.object_id).unwrap()[..]
            == stream[..final_len]
    );
}

/// A file rewritten in place while it is read: the snapshot completes and stores exactly the
/// file's length of bytes, each of which one of the versions held at that offset.
#[test]
fn file_rewritten_while_read_stores_bytes_of_its_versions() {
    use std::io::{Seek, SeekFrom, Write};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let len = 32usize << 20;
    let path = src.join("rewritten");
    fs::write(&path, vec![0xAAu8; len]).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");

    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, passes, path) = (stop.clone(), passes.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            let blocks = [vec![0xAAu8; 1 << 20], vec![0xBBu8; 1 << 20]];
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                f.seek(SeekFrom::Start(0)).unwrap();
                for _ in 0..len >> 20 {
                    f.write_all(&blocks[n % 2]).unwrap();
                }
                n += 1;
                passes.store(n as u64, Ordering::Relaxed);
            }
        })
    };
    while passes.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let m = snap(&repo, &src);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    assert_eq!(m.stats.error_count, 0);
    let entry = root_entries(&repo, &m).pop().unwrap();
    assert_eq!(entry.file_size, len as i64);
    let stored = kopr_repo::object::read_object(repo.contents(), &entry.object_id).unwrap();
    assert_eq!(stored.len(), len);
    assert!(stored.iter().all(|&b| b == 0xAA || b == 0xBB));
    let dst = tmp.path().join("dst");
    restore_all(&repo, &m, &dst);
    assert!(fs::read(dst.join("rewritten")).unwrap() == stored);
}

#[test]
fn small_files_are_stored_as_the_object_writer_stores_them() {
    // Files shorter than the splitter's shortest chunk skip the object writer: their objects
    // must be the writer's, on both sides of that length and of the read buffer's (1 MiB).
    use kopr_repo::object::{ObjectWriter, WriterOptions};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "FIXED-128K");
    let k = 128 << 10;
    let sizes = [
        0,
        1,
        4000,
        k - 1,
        k,
        k + 1,
        3 * k,
        (1 << 20) - 1,
        (1 << 20) + 7,
    ];
    let data = random_bytes(11, (1 << 20) + 7);
    for n in sizes {
        fs::write(src.join(format!("f{n}")), &data[..n]).unwrap();
    }
    let m = snap(&repo, &src);
    assert_eq!(m.stats.total_file_count, sizes.len() as i32);
    let entries = root_entries(&repo, &m);
    for n in sizes {
        let e = entries
            .iter()
            .find(|e| e.name == format!("f{n}"))
            .expect("file entry");
        let mut w = ObjectWriter::new(repo.contents(), WriterOptions::default()).unwrap();
        w.write_bytes(&data[..n]).unwrap();
        assert_eq!(e.object_id, w.result().unwrap(), "{n} bytes");
        assert_eq!(e.file_size, n as i64);
        let stored = kopr_repo::object::read_object(repo.contents(), &e.object_id).unwrap();
        assert_eq!(stored, &data[..n], "{n} bytes");
    }
}

#[test]
fn short_files_stored_together_get_the_objects_of_one_at_a_time() {
    // Short files are read whole and stored a batch at a time, their contents hashed side by
    // side: each must still get the object its bytes alone give, with BLAKE3 (hashed side by
    // side) and with another hash (one at a time), and repeated bytes must be stored once.
    for hash in ["BLAKE3-256-128", "BLAKE2B-256-128"] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let st: Arc<dyn BlobStorage> = Arc::new(
            kopr_blob::filesystem::FilesystemStorage::create(tmp.path().join("repo")).unwrap(),
        );
        let opts = kopr_repo::format_manager::CreateOptions {
            key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
            hash: hash.into(),
            ..Default::default()
        };
        kopr_repo::Repository::create(&*st, &opts, "pw").unwrap();
        let repo = kopr_repo::Repository::open(st.clone(), "pw", kopr_repo::OpenOptions::default())
            .unwrap();
        let data = random_bytes(5, 1 << 16);
        // Lengths around blocks (64 bytes) and chunks (1 KiB) of BLAKE3, and up to 6 chunks;
        // more files than one batch; every 10th file a copy of the one before.
        let mut files: Vec<(String, usize, usize)> = Vec::new();
        for i in 0..700usize {
            let (start, len) = match (i % 10, files.last()) {
                (9, Some(prev)) => (prev.1, prev.2),
                _ => {
                    let len = match i % 7 {
                        0 => (i / 7) % 5 * 1024,
                        1 => (i / 7) % 17 * 64,
                        2 => (i / 7) % 5 * 1024 + 1,
                        _ => (i * 7919) % 6200,
                    };
                    ((i * 131) % 1000, len)
                }
            };
            fs::create_dir_all(src.join(format!("d{}", i % 3))).unwrap();
            let name = format!("d{}/f{i:03}", i % 3);
            fs::write(src.join(&name), &data[start..start + len]).unwrap();
            files.push((name, start, len));
        }
        let m = snap(&repo, &src);
        assert_eq!(m.stats.total_file_count, 700, "{hash}");
        let distinct: std::collections::HashSet<&[u8]> =
            files.iter().map(|(_, s, l)| &data[*s..s + l]).collect();
        // One data content (no prefix) per distinct file body.
        let data_contents = repo
            .contents()
            .list_contents(false)
            .unwrap()
            .into_iter()
            .filter(|e| e.content_id.prefix().is_none())
            .count();
        assert_eq!(data_contents, distinct.len(), "{hash}");
        let root = root_entries(&repo, &m);
        for d in &root {
            let bytes = kopr_repo::object::read_object(repo.contents(), &d.object_id).unwrap();
            let dir = kopr_format::snapshot::DirManifest::decode(&bytes).unwrap();
            for e in dir.entries {
                let (_, start, len) = files
                    .iter()
                    .find(|f| f.0 == format!("{}/{}", d.name, e.name))
                    .unwrap();
                let body = &data[*start..start + len];
                let id = repo.contents().content_id_for(body, None).unwrap();
                assert_eq!(
                    e.object_id,
                    kopr_format::object_id::ObjectId::direct(id),
                    "{hash} {}",
                    e.name
                );
                let stored = kopr_repo::object::read_object(repo.contents(), &e.object_id).unwrap();
                assert_eq!(stored, body, "{hash} {}", e.name);
            }
        }
    }
}

/// A file new to the snapshot is listed by name and type only, and the worker that reads it
/// reads its metadata from the open file; a file of the previous snapshot is stat'ed by the
/// walk. Either way its entry holds what `lstat` says: mode bits (setuid and sticky too),
/// owner, modification time to the nanosecond and size, and the directory's summary the
/// latest time.
#[cfg(unix)]
#[test]
fn file_entries_hold_the_files_metadata_whoever_read_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let files = [
        ("empty", 0, 0o600, 1_600_000_000, 1),
        ("short", 10, 0o644, 1_700_000_000, 123_456_789),
        ("setuid", 3_000, 0o4750, 1_650_000_000, 999_999_999),
        ("sticky", 70_000, 0o1640, 1_690_000_000, 0),
        ("large", 3 << 20, 0o755, 1_710_000_000, 500),
    ];
    let write = |name: &str, len: usize, mode: u32, secs: i64, nanos: u32| {
        let p = src.join(name);
        fs::write(&p, random_bytes(len as u64, len)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(secs, nanos)).unwrap();
    };
    for &(name, len, mode, secs, nanos) in &files {
        write(name, len, mode, secs, nanos);
    }
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let check = |m: &kopr_format::snapshot::SnapshotManifest, count: usize| {
        let root = m.root_entry.as_ref().unwrap();
        let entries = kopr_repo::snapshot::read_dir(&repo, &root.object_id).unwrap();
        assert_eq!(entries.len(), count);
        let mut latest = 0;
        for e in &entries {
            let md = fs::symlink_metadata(src.join(&e.name)).unwrap();
            let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
            assert_eq!(e.permissions.0, md.mode() & 0o7777, "{}", e.name);
            assert_eq!((e.user_id, e.group_id), (md.uid(), md.gid()), "{}", e.name);
            assert_eq!(e.mod_time, mtime, "{}", e.name);
            assert_eq!(e.file_size, md.len() as i64, "{}", e.name);
            latest = latest.max(mtime);
        }
        let summary = root.dir_summary.as_ref().unwrap();
        assert_eq!(summary.max_mod_time, latest);
        assert_eq!(summary.total_file_count, count as i64);
    };
    let first = snap(&repo, &src);
    assert_eq!(first.stats.non_cached_files, 5);
    check(&first, 5);
    // A new file (read by a worker), one changed (stat'ed by the walk, then read), the rest
    // unchanged (stat'ed and reused).
    write("new", 5_000, 0o640, 1_720_000_000, 42);
    write("short", 12, 0o600, 1_730_000_000, 7);
    let second = snap(&repo, &src);
    assert_eq!(second.stats.cached_files, 4);
    assert_eq!(second.stats.non_cached_files, 2);
    check(&second, 6);
}
