//! Reading snapshots back: restore (parallel, each pack read once, failures per file, the
//! local content cache), verify, diff and storage statistics.

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_repo::snapshot::{list_snapshots, restore, RestoreOptions};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;
use common::counting::CountingStorage;
use common::*;

#[test]
fn verify_reports_every_damaged_file_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    let root = m.root_entry.unwrap();
    let clean = kopr_repo::snapshot::verify(&repo, &root, "");
    assert!(clean.errors.is_empty(), "{:?}", clean.errors);
    assert!(clean.bytes >= 5 << 20);
    // corrupt the content holding small.txt inside its pack
    let dm = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(repo.contents(), &root.object_id).unwrap(),
    )
    .unwrap();
    let small = dm.entries.iter().find(|e| e.name == "small.txt").unwrap();
    let info = repo
        .contents()
        .content_info(&small.object_id.content_id().unwrap())
        .unwrap()
        .unwrap();
    let mut pack = st.get_blob(&info.pack_blob_id, 0, None).unwrap();
    pack[info.pack_offset as usize + 20] ^= 0x55;
    st.put_blob(&info.pack_blob_id, &pack, &Default::default())
        .unwrap();
    let report = kopr_repo::snapshot::verify(&repo, &root, "");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].starts_with("/small.txt: content "),
        "{}",
        report.errors[0]
    );
    assert!(report.errors[0].contains("corrupt"), "{}", report.errors[0]);

    // With 0% of files read (Kopia's default), files are checked in the index only: the damaged
    // bytes go unnoticed, a content missing from the index does not.
    use kopr_repo::snapshot::{verify_with, VerifyOptions};
    let none = VerifyOptions { files_percent: 0.0 };
    let mut seen = std::collections::HashSet::new();
    let light = verify_with(&repo, &root, "", &none, &mut seen);
    assert!(light.errors.is_empty(), "{:?}", light.errors);
    assert!(light.bytes < clean.bytes, "only directories were read");
    assert_eq!(light.objects, clean.objects);
    // Objects already verified (another snapshot sharing them) are not checked again.
    let again = verify_with(&repo, &root, "", &none, &mut seen);
    assert_eq!((again.objects, again.errors.len()), (0, 0));
    repo.contents()
        .delete_content(&small.object_id.content_id().unwrap())
        .unwrap();
    let light = verify_with(&repo, &root, "", &none, &mut Default::default());
    assert_eq!(light.errors.len(), 1, "{:?}", light.errors);
    assert!(
        light.errors[0].starts_with("/small.txt: ") && light.errors[0].contains("not found"),
        "{}",
        light.errors[0]
    );
}

#[test]
fn diff_lists_added_removed_and_modified_entries() {
    use kopr_format::snapshot::EntryType;
    use kopr_repo::snapshot::{diff, Change};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("same")).unwrap();
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("same/x"), b"x").unwrap();
    fs::write(src.join("d/change"), b"v1").unwrap();
    fs::write(src.join("gone"), b"g").unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let a = snap(&repo, &src);
    fs::write(src.join("d/change"), b"v2!").unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    fs::write(src.join("new"), b"n").unwrap();
    let b = snap(&repo, &src);
    let mut changes = diff(
        &repo,
        a.root_entry.as_ref().unwrap(),
        b.root_entry.as_ref().unwrap(),
    )
    .unwrap();
    changes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        changes,
        vec![
            Change::Added("./new".into(), EntryType::File),
            Change::Modified("./d/change".into(), EntryType::File),
            Change::Removed("./gone".into(), EntryType::File),
        ]
    );
    assert!(diff(
        &repo,
        a.root_entry.as_ref().unwrap(),
        a.root_entry.as_ref().unwrap()
    )
    .unwrap()
    .is_empty());
}

#[test]
fn storage_stats_count_new_data_per_snapshot() {
    use kopr_repo::snapshot::storage_stats;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1, 100_000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    snap(&repo, &src);
    snap(&repo, &src);
    fs::write(src.join("b"), random_bytes(2, 50_000)).unwrap();
    snap(&repo, &src);
    let snaps = list_snapshots(&repo, None).unwrap();
    let st = storage_stats(&repo, &snaps).unwrap();
    assert_eq!(st[0].0.file_objects, 1);
    assert_eq!(st[0].0.original_content_bytes, 100_000);
    assert_eq!(st[0].0.dir_objects, 1);
    assert_eq!(
        st[1].0,
        Default::default(),
        "identical snapshot adds nothing"
    );
    assert_eq!(st[2].0.file_objects, 1);
    assert_eq!(st[2].0.original_content_bytes, 50_000);
    assert_eq!(st[2].0.dir_objects, 1);
    assert_eq!(st[2].1.original_content_bytes, 150_000);
    assert_eq!(st[2].1.file_objects, 2);
}

/// Files of every directory are read by one pool while the walk goes on (no directory waits for
/// its files before the next is walked): each directory's summary still counts exactly its own
/// subtree, and the tree restores byte for byte with its times (restored by parallel workers,
/// directories' times set last).
#[test]
fn wide_tree_read_by_one_pool_has_exact_summaries_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let expected = wide_tree(&src);
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    let total_files: u64 = expected.iter().map(|e| e.1).sum();
    let total_bytes: u64 = expected.iter().map(|e| e.2).sum();
    assert_eq!(m.stats.total_file_count as u64, total_files);
    assert_eq!(m.stats.total_file_size as u64, total_bytes);
    assert_eq!(m.stats.error_count, 0);
    let entries = root_entries(&repo, &m);
    let got: Vec<(String, u64, u64)> = entries
        .iter()
        .map(|e| {
            let s = e.dir_summary.as_ref().unwrap();
            (
                e.name.clone(),
                s.total_file_count as u64,
                s.total_file_size as u64,
            )
        })
        .collect();
    assert_eq!(got, expected);
    let dst = tmp.path().join("dst");
    let root = m.root_entry.clone().unwrap();
    let st = restore(&repo, &root, &dst, RestoreOptions::default()).unwrap();
    assert_eq!((st.files, st.bytes), (total_files, total_bytes));
    assert_eq!(walk(&dst), walk(&src));
    let d07 = entries.iter().find(|e| e.name == "d07").unwrap();
    restores_over_existing_files(&repo, d07, &src, tmp.path());
}

/// 24 top directories of 0 to 2 subdirectories with a file each, and a large file every 5th;
/// returns (directory, files, bytes) per top directory.
fn wide_tree(src: &Path) -> Vec<(String, u64, u64)> {
    let mut expected: Vec<(String, u64, u64)> = Vec::new(); // (dir, files, bytes) per top dir
    for d in 0..24u64 {
        let dir = src.join(format!("d{d:02}"));
        let mut bytes = 0;
        for s in 0..(d % 3) {
            let sub = dir.join(format!("s{s}"));
            fs::create_dir_all(&sub).unwrap();
            let len = (d * 7919 + s * 131) % 40_000;
            fs::write(sub.join("f"), random_bytes(d * 10 + s, len as usize)).unwrap();
            bytes += len;
        }
        fs::create_dir_all(&dir).unwrap();
        let big = if d % 5 == 0 { 3_000_000 } else { 1000 + d };
        fs::write(dir.join("big"), random_bytes(1000 + d, big as usize)).unwrap();
        expected.push((format!("d{d:02}"), 1 + d % 3, bytes + big));
    }
    expected
}

/// Restoring over existing files: with overwrite they are replaced; without, a non-empty
/// target directory is refused as a whole and an existing file is refused by name, and a
/// refused restore changes nothing and leaves no temporary files behind.
fn restores_over_existing_files(
    repo: &Repository,
    d07: &kopr_format::snapshot::DirEntry,
    src: &Path,
    tmp: &Path,
) {
    let into = tmp.join("into");
    fs::create_dir_all(into.join("s0")).unwrap();
    fs::write(into.join("big"), b"mine").unwrap();
    let e = restore(
        repo,
        d07,
        &into,
        RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
    );
    assert!(e.is_ok(), "with overwrite it restores: {e:?}");
    assert_eq!(
        fs::read(into.join("big")).unwrap(),
        fs::read(src.join("d07/big")).unwrap()
    );
    fs::write(into.join("big"), b"mine").unwrap();
    let mut before = walk(&into);
    before.sort();
    let occupied = tmp.join("occupied");
    fs::create_dir_all(&occupied).unwrap();
    fs::write(occupied.join("big"), b"mine").unwrap();
    let e = restore(repo, d07, &occupied, RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let bigfile = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(repo.contents(), &d07.object_id).unwrap(),
    )
    .unwrap()
    .entries
    .into_iter()
    .find(|e| e.name == "big")
    .unwrap();
    let e = restore(repo, &bigfile, &into.join("big"), RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let mut now = walk(&into);
    now.sort();
    assert_eq!(now, before, "the refused restore changed nothing");
    let leftovers = fs::read_dir(&into)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".kopr-restore-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

/// A restore reads no byte of a data pack twice: its reads of a pack are disjoint and coalesce
/// neighbouring contents (parts of a few MiB, so that several readers share a pack).
#[test]
fn restore_reads_each_byte_of_a_data_pack_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Many small files sharing few packs, some identical (one content, several files), an
    // empty one, and files of several chunks.
    for d in 0..20 {
        let dir = src.join(format!("dir{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100u64 {
            let seed = d * 1000 + f;
            let len = 500 + (seed * 7919 % 9000) as usize;
            fs::write(dir.join(format!("f{f:03}")), random_bytes(seed, len)).unwrap();
        }
        fs::write(dir.join("same"), b"the same bytes in every directory").unwrap();
        fs::write(dir.join("empty"), b"").unwrap();
    }
    fs::write(src.join("large-a"), random_bytes(77, 6 << 20)).unwrap();
    let mut b = random_bytes(78, 5 << 20);
    b.extend(random_bytes(77, 6 << 20)); // shares chunks with large-a
    fs::write(src.join("large-b"), b).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    drop(repo);

    let counting = Arc::new(CountingStorage::new(Arc::new(
        FilesystemStorage::open(tmp.path().join("repo")).unwrap(),
    )));
    let packs: Vec<String> = counting
        .list_all("p")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert!(packs.len() >= 2, "several data packs: {packs:?}");
    let repo = Repository::open(counting.clone(), "pw", OpenOptions::default()).unwrap();
    counting.gets.lock().unwrap().clear();
    let dst = tmp.path().join("dst");
    let rs = restore_all(&repo, &m, &dst);
    assert_eq!(rs.files, 20 * 102 + 2, "{rs:?}");
    kopr_testkit::assert_same_tree(&src, &dst);
    let gets = counting.gets.lock().unwrap().clone();
    let mut reads = counting.reads.lock().unwrap().clone();
    reads.retain(|(id, _, _)| id.starts_with('p'));
    assert!(!reads.is_empty());
    reads.sort();
    for w in reads.windows(2) {
        let ((a, a_off, a_len), (b, b_off, _)) = (&w[0], &w[1]);
        assert!(packs.contains(a), "{a} is a data pack");
        let a_len = a_len.expect("a ranged read");
        assert!(
            a != b || a_off + a_len <= *b_off,
            "pack {a}: reads at {a_off}+{a_len} and {b_off} overlap; all reads: {reads:?}"
        );
    }
    // Contents are coalesced: far fewer reads than the ~2,000 small files' contents.
    let mut per_pack: HashMap<&str, u64> = HashMap::new();
    for (id, _, len) in &reads {
        *per_pack.entry(id.as_str()).or_default() += len.unwrap_or(0);
    }
    assert!(
        reads.len() <= 2 * per_pack.len() + 16,
        "{} reads: {reads:?}; gets {gets:?}",
        reads.len()
    );
    for (id, bytes) in per_pack {
        let size = counting.get_metadata(id).unwrap().length;
        assert!(bytes <= size, "{id}: read {bytes} of {size} bytes");
    }
}

/// The `.kopr-restore-` temporaries under `dir`.
fn restore_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e
                .file_name()
                .to_string_lossy()
                .starts_with(".kopr-restore-")
            {
                out.push(e.path());
            }
        }
    }
    out
}

/// A restore reader that panics fails the restore with an error naming the panic, and leaves
/// no temporary file behind (the other readers' files are either whole or absent).
#[test]
fn a_panicking_restore_reader_is_an_error_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for f in 0..8u64 {
        fs::write(src.join(format!("f{f}")), random_bytes(f, 3 << 20)).unwrap();
    }
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    drop(repo);
    let panicking = Arc::new(CountingStorage::new(st));
    let repo = Repository::open(panicking.clone(), "pw", OpenOptions::default()).unwrap();
    // Opening and reading the root directory pass; the second data read panics.
    panicking.calm.store(1, std::sync::atomic::Ordering::SeqCst);
    let dst = tmp.path().join("dst");
    let err = restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("restore reader panicked: storage bug reading p"),
        "{err}"
    );
    assert_eq!(restore_temporaries(&dst), Vec::<PathBuf>::new());
    for f in 0..8u64 {
        let p = dst.join(format!("f{f}"));
        if p.exists() {
            assert_eq!(fs::read(&p).unwrap(), random_bytes(f, 3 << 20), "f{f}");
        }
    }
}

/// A data pack holding part of the entry `big` of `dm` (which spans several packs) and
/// nothing of the other entries.
fn a_pack_only_big_uses(repo: &Repository, dm: &kopr_format::snapshot::DirManifest) -> String {
    let pack_of = |oid: &kopr_format::object_id::ObjectId| -> Vec<String> {
        kopr_repo::snapshot::object_content_ids(repo, oid)
            .unwrap()
            .iter()
            .map(|c| {
                repo.contents()
                    .content_info(c)
                    .unwrap()
                    .unwrap()
                    .pack_blob_id
                    .to_string()
            })
            .filter(|p| p.starts_with('p'))
            .collect()
    };
    let big = dm.entries.iter().find(|e| e.name == "big").unwrap();
    let mut big_packs = pack_of(&big.object_id);
    big_packs.sort();
    big_packs.dedup();
    assert!(big_packs.len() >= 2, "{big_packs:?}");
    let small_packs: Vec<String> = dm
        .entries
        .iter()
        .filter(|e| e.name != "big")
        .flat_map(|e| pack_of(&e.object_id))
        .collect();
    big_packs
        .into_iter()
        .find(|p| !small_packs.contains(p))
        .unwrap()
}

#[test]
fn a_file_spanning_a_missing_pack_fails_alone_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for f in 0..50u64 {
        fs::write(src.join(format!("small{f:02}")), random_bytes(f, 3000)).unwrap();
    }
    // Larger than a pack: its chunks are in several packs.
    fs::write(src.join("big"), random_bytes(99, 45 << 20)).unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    let root = m.root_entry.clone().unwrap();
    let dm = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(repo.contents(), &root.object_id).unwrap(),
    )
    .unwrap();
    let lost = a_pack_only_big_uses(&repo, &dm);
    drop(repo);
    st.delete_blob(&lost).unwrap();
    let repo = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();

    let dst = tmp.path().join("dst");
    let err = restore(&repo, &root, &dst, RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains(lost.as_str()), "{err}");
    assert_eq!(restore_temporaries(&dst), Vec::<PathBuf>::new());

    let dst = tmp.path().join("dst2");
    let mut failed = Vec::new();
    let rs = kopr_repo::snapshot::restore_reporting(
        &repo,
        &root,
        &dst,
        RestoreOptions {
            ignore_errors: true,
            ..Default::default()
        },
        &mut |p, e| failed.push((p.to_path_buf(), e.to_string())),
    )
    .unwrap();
    assert_eq!(rs.failed, 1, "{failed:?}");
    assert_eq!(failed[0].0, dst.join("big"), "{failed:?}");
    assert!(failed[0].1.contains(lost.as_str()), "{failed:?}");
    assert_eq!(rs.files, 50);
    for f in 0..50u64 {
        let name = format!("small{f:02}");
        assert_eq!(
            fs::read(dst.join(&name)).unwrap(),
            random_bytes(f, 3000),
            "{name}"
        );
    }
    assert!(!dst.join("big").exists());
    assert_eq!(restore_temporaries(&dst), Vec::<PathBuf>::new());
}

/// Restores `root` to `dest` and requires the tree to equal `src`.
fn restore_equal(
    repo: &Repository,
    root: &kopr_format::snapshot::DirEntry,
    src: &Path,
    dest: &Path,
) {
    restore(repo, root, dest, RestoreOptions::default()).unwrap();
    kopr_testkit::assert_same_tree(src, dest);
}

#[test]
fn a_second_restore_reads_contents_from_the_bounded_local_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_files_and_a_large_one(&src);
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    drop(repo);
    let root = m.root_entry.unwrap();
    let counting = Arc::new(CountingStorage::new(Arc::new(
        FilesystemStorage::open(tmp.path().join("repo")).unwrap(),
    )));
    let cache = tmp.path().join("cache");
    let open = |limit: u64| {
        let opts = OpenOptions {
            cache_dir: Some(cache.clone()),
            content_cache_bytes: limit,
            ..Default::default()
        };
        Repository::open(counting.clone(), "pw", opts).unwrap()
    };
    let pack_reads = || -> u64 {
        let gets = counting.gets.lock().unwrap();
        gets.iter()
            .filter(|(id, _)| id.starts_with('p') || id.starts_with('q'))
            .map(|(_, n)| n)
            .sum()
    };
    let repo = open(1 << 30);
    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("one"));
    assert!(pack_reads() > 0);
    each_metadata_pack_read_once(&counting);
    let cached = kopr_testkit::tree::bytes_under(&cache.join("contents"));
    assert!(cached > 200 * 4000, "{cached}");

    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("two"));
    assert_eq!(pack_reads(), 0, "{:?}", counting.gets.lock().unwrap());

    // A copy damaged in the middle: the pieces before the damage are written from it, and
    // only the rest is read from storage (no read starts where such a range does).
    let mut ranges = Vec::new();
    for_every_cached_content(&cache, |v| {
        let pack = v.parent().unwrap().file_name().unwrap().to_string_lossy();
        let name = v.file_name().unwrap().to_string_lossy();
        let (start, end) = name.split_once('-').unwrap();
        let hex = |x: &str| u64::from_str_radix(x, 16).unwrap();
        ranges.push((pack.into_owned(), hex(start), hex(end)));
        let mut b = fs::read(v).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        fs::write(v, b).unwrap();
    });
    counting.reads.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("mid"));
    let reads = counting.reads.lock().unwrap().clone();
    let inside = |(id, offset, _): &(String, u64, Option<u64>)| {
        ranges
            .iter()
            .any(|(pack, start, end)| pack == id && start < offset && offset < end)
    };
    assert!(reads.iter().any(inside), "{reads:?} {ranges:?}");

    // A damaged cached copy (same length) is read from storage instead.
    damage_every_cached_content(&cache);
    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("three"));
    assert!(pack_reads() > 0);

    // So is one cut short (its name says a longer range).
    for_every_cached_content(&cache, |v| {
        let b = fs::read(v).unwrap();
        fs::write(v, &b[..b.len() - 1]).unwrap();
    });
    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("three-b"));
    assert!(pack_reads() > 0);
    drop(repo);

    // The cache stays within its limit.
    fs::remove_dir_all(&cache).unwrap();
    let repo = open(100_000);
    restore_equal(&repo, &root, &src, &tmp.path().join("four"));
    let cached = kopr_testkit::tree::bytes_under(&cache.join("contents"));
    assert!(cached <= 100_000, "{cached}");

    // Without a limit nothing is cached.
    fs::remove_dir_all(&cache).unwrap();
    let repo = open(0);
    restore(
        &repo,
        &root,
        &tmp.path().join("five"),
        RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(kopr_testkit::tree::bytes_under(&cache.join("contents")), 0);
}

/// 5 directories of 40 small files, and a large file.
fn small_files_and_a_large_one(src: &Path) {
    for d in 0..5u64 {
        let dir = src.join(format!("dir{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..40u64 {
            fs::write(
                dir.join(format!("f{f:02}")),
                random_bytes(d * 100 + f, 4000),
            )
            .unwrap();
        }
    }
    fs::write(src.join("large"), random_bytes(5, 3 << 20)).unwrap();
}

/// The directories come from their metadata pack, fetched whole once rather than with a
/// request per directory.
fn each_metadata_pack_read_once(counting: &CountingStorage) {
    let metadata_reads: Vec<(String, u64)> = counting
        .gets
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.starts_with('q'))
        .map(|(id, n)| (id.clone(), *n))
        .collect();
    assert!(!metadata_reads.is_empty());
    for (id, n) in metadata_reads {
        assert_eq!(n, 1, "metadata pack {id} read {n} times");
    }
}

/// Flips the last byte of every cached content (the length stays).
fn damage_every_cached_content(cache: &Path) {
    for_every_cached_content(cache, |v| {
        let mut b = fs::read(v).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(v, b).unwrap();
    });
}

fn for_every_cached_content(cache: &Path, mut f: impl FnMut(&Path)) {
    let mut victims = Vec::new();
    for shard in fs::read_dir(cache.join("contents")).unwrap().flatten() {
        for e in fs::read_dir(shard.path()).unwrap().flatten() {
            victims.push(e.path());
        }
    }
    assert!(!victims.is_empty());
    for v in &victims {
        f(v);
    }
}
