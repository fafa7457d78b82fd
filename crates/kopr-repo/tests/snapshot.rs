//! Snapshots of real directory trees: round trips byte for byte with metadata, deduplication
//! of unchanged trees, small changes writing little, listing and deleting, policies, checkpoints,
//! progress. Awkward files are in `snapshot_files.rs`, restore/verify/diff/stats in
//! `snapshot_read.rs`.

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, load_snapshot, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;
use std::fs;
use std::sync::Arc;

mod common;
use common::*;

#[test]
fn tree_round_trips_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    assert_eq!(m.stats.error_count, 0);
    assert!(m.stats.total_file_count >= 7);
    let root = m.root_entry.clone().unwrap();
    assert!(
        root.object_id.to_string().starts_with('k'),
        "directories are k contents: {}",
        root.object_id
    );
    let summ = root.dir_summary.clone().unwrap();
    assert_eq!(
        summ.total_dir_count, 32,
        "root + empty-dir + 30 nested, each counting itself"
    );
    assert_eq!(summ.total_symlink_count, 2);

    // reopen from storage: the snapshot is listed and restores identically
    drop(repo);
    let st: Arc<dyn BlobStorage> =
        Arc::new(FilesystemStorage::open(tmp.path().join("repo")).unwrap());
    let repo = Repository::open(st, "pw", OpenOptions::default()).unwrap();
    let listed = list_snapshots(&repo, Some(&source(&src))).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, m.id);
    assert_eq!(
        load_snapshot(&repo, &m.id).unwrap().root_entry,
        m.root_entry
    );
    let dst = tmp.path().join("dst");
    let rs = restore(&repo, &root, &dst, RestoreOptions::default()).unwrap();
    assert!(rs.files >= 7 && rs.symlinks == 2, "{rs:?}");
    let (a, b) = (walk(&src), walk(&dst));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{:?}", x.0);
    }
    // restoring again over it is refused unless asked
    assert!(restore(&repo, &root, &dst, RestoreOptions::default()).is_err());
    restore(
        &repo,
        &root,
        &dst,
        RestoreOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn unchanged_tree_writes_no_new_data_packs_and_reuses_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    snap(&repo, &src);
    let packs = st.list_all("p").unwrap();
    let m2 = snap(&repo, &src);
    assert_eq!(st.list_all("p").unwrap(), packs, "no new p blobs");
    assert_eq!(m2.stats.non_cached_files, 0);
    assert!(m2.stats.cached_files >= 7);
    assert_eq!(list_snapshots(&repo, None).unwrap().len(), 2);
}

#[test]
fn one_changed_byte_in_a_large_file_writes_only_nearby_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = random_bytes(9, 24 << 20);
    fs::write(src.join("big"), &data).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    snap(&repo, &src);
    let before = repo.contents().write_stats();
    data[12 << 20] ^= 1;
    fs::write(src.join("big"), &data).unwrap();
    let m = snap(&repo, &src);
    let after = repo.contents().write_stats();
    let new_bytes = after.written_bytes - before.written_bytes;
    // one or two data chunks (≤ 2 MiB each) plus the indirect list and directory
    assert!(
        new_bytes < 5 << 20,
        "wrote {new_bytes} bytes for a one-byte change"
    );
    assert!(after.deduplicated_contents > before.deduplicated_contents + 5);
    let dst = tmp.path().join("dst");
    restore_all(&repo, &m, &dst);
    assert_eq!(fs::read(dst.join("big")).unwrap(), data);
}

#[test]
fn deleted_snapshots_disappear_from_listings() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m1 = snap(&repo, &src);
    let m2 = snap(&repo, &src);
    repo.manifests().delete(m1.id.manifest_id()).unwrap();
    repo.flush().unwrap();
    let reopened = Repository::open(st, "pw", OpenOptions::default()).unwrap();
    let ids: Vec<kopr_format::snapshot::SnapshotId> = list_snapshots(&reopened, None)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![m2.id]);
}

#[test]
fn kopiaignore_rules_exclude_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("cache/deep")).unwrap();
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join(".kopiaignore"), "*.tmp\ncache/\n").unwrap();
    fs::write(src.join("keep.txt"), b"k").unwrap();
    fs::write(src.join("drop.tmp"), b"1234").unwrap();
    fs::write(src.join("cache/deep/x"), b"x").unwrap();
    fs::write(src.join("sub/.kopiaignore"), "!important.tmp\nsecret\n").unwrap();
    fs::write(src.join("sub/important.tmp"), b"i").unwrap();
    fs::write(src.join("sub/other.tmp"), b"o").unwrap();
    fs::write(src.join("sub/secret"), b"s").unwrap();
    fs::write(
        src.join("secret"),
        b"top-level secret is not covered by sub's rules",
    )
    .unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m = snap(&repo, &src);
    assert_eq!(
        m.stats.excluded_file_count, 3,
        "drop.tmp, sub/other.tmp, sub/secret"
    );
    assert_eq!(m.stats.excluded_dir_count, 1);
    let dst = tmp.path().join("dst");
    restore_all(&repo, &m, &dst);
    let got: Vec<String> = walk(&dst)
        .into_iter()
        .map(|e| e.0.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        vec![
            ".kopiaignore",
            "keep.txt",
            "secret",
            "sub",
            "sub/.kopiaignore",
            "sub/important.tmp"
        ]
    );
}

/// A global policy compressing all but `.zip` files, and a policy of `si` keeping the latest
/// two snapshots only; checks what `si` inherits.
fn set_policies_keep_latest_two_and_compress_but_zip(repo: &Repository, si: &SourceInfo) {
    use kopr_format::policy::Policy;
    use kopr_repo::policy;
    let mut global = Policy::kopia_default();
    global.compression.compressor_name = "zstd-fastest".into();
    global.compression.never_compress = vec![".zip".into()];
    policy::set(repo, &SourceInfo::default(), &global).unwrap();
    let mut mine = Policy::default();
    mine.retention.keep_latest = Some(2);
    mine.retention.keep_hourly = Some(0);
    mine.retention.keep_daily = Some(0);
    mine.retention.keep_weekly = Some(0);
    mine.retention.keep_monthly = Some(0);
    mine.retention.keep_annual = Some(0);
    policy::set(repo, si, &mine).unwrap();
    repo.flush().unwrap();
    let eff = policy::effective(repo, si).unwrap();
    assert_eq!(eff.retention.keep_latest, Some(2));
    assert_eq!(eff.compression.compressor_name, "zstd-fastest");
}

/// Pins snapshot `id` (its manifest rewritten with a pin); returns the new manifest id.
fn pin(
    repo: &Repository,
    id: &kopr_format::snapshot::SnapshotId,
) -> kopr_format::manifest::ManifestId {
    let (entry, mut pinned): (_, kopr_format::snapshot::SnapshotManifest) =
        repo.manifests().get(id.manifest_id()).unwrap();
    pinned.pins = vec!["keep".into()];
    repo.manifests().delete(&entry.id).unwrap();
    let pinned_id = repo.manifests().put(entry.labels.clone(), &pinned).unwrap();
    repo.flush().unwrap();
    pinned_id
}

#[test]
fn policies_inherit_and_expire_old_snapshots_but_never_pinned_ones() {
    use kopr_repo::policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "compress me ".repeat(1000)).unwrap();
    fs::write(src.join("b.zip"), "zipped already ".repeat(1000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    set_policies_keep_latest_two_and_compress_but_zip(&repo, &si);
    let mut ids = Vec::new();
    for i in 0..4 {
        fs::write(src.join("n"), format!("{i}")).unwrap();
        ids.push(
            create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {}).unwrap(),
        );
    }
    // compression policy applied per file
    let dm = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(
            repo.contents(),
            &ids[0].root_entry.as_ref().unwrap().object_id,
        )
        .unwrap(),
    )
    .unwrap();
    let info = |name: &str| {
        let e = dm.entries.iter().find(|e| e.name == name).unwrap();
        repo.contents()
            .content_info(&e.object_id.content_id().unwrap())
            .unwrap()
            .unwrap()
    };
    assert_ne!(info("a.txt").compression_header_id, 0);
    assert_eq!(info("b.zip").compression_header_id, 0);

    // pin the oldest: it survives expiry
    let pinned_id = pin(&repo, &ids[0].id);
    let dry = policy::expire(&repo, &si, false).unwrap();
    assert_eq!(
        dry.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].id.clone()]
    );
    assert_eq!(
        list_snapshots(&repo, Some(&si)).unwrap().len(),
        4,
        "dry run deletes nothing"
    );
    policy::expire(&repo, &si, true).unwrap();
    let left: Vec<kopr_format::snapshot::SnapshotId> = list_snapshots(&repo, Some(&si))
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        left,
        vec![pinned_id.into(), ids[2].id.clone(), ids[3].id.clone()]
    );
}

#[test]
fn canceled_snapshot_is_a_checkpoint_and_resuming_reuses_its_files() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // More files than the upload queue holds (a few per worker), so that cancelling from the
    // progress callback always stops the walk before it has handed out every file.
    for d in 0..4 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..30 {
            fs::write(
                src.join(format!("d{d}/f{f}")),
                random_bytes(d * 10 + f, 50_000),
            )
            .unwrap();
        }
    }
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = UploadOptions {
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let m1 = create_snapshot(&repo, &src, &source(&src), &opts, &mut |p| {
        if p.hashed_files >= 3 {
            cancel.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(m1.incomplete_reason, "canceled");
    let done = m1.stats.total_file_count;
    assert!(
        (3..120).contains(&done),
        "checkpoint holds part of the tree: {done}"
    );
    assert_eq!(list_snapshots(&repo, None).unwrap().len(), 1);

    let m2 = snap(&repo, &src);
    assert!(m2.incomplete_reason.is_empty());
    assert_eq!(m2.stats.total_file_count, 120);
    assert_eq!(
        m2.stats.cached_files, done,
        "files of the checkpoint are not read again"
    );
    let dst = tmp.path().join("dst");
    restore_all(&repo, &m2, &dst);
    assert_eq!(
        walk(&src)
            .into_iter()
            .map(|e| (e.0, e.2))
            .collect::<Vec<_>>(),
        walk(&dst)
            .into_iter()
            .map(|e| (e.0, e.2))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_single_file_can_be_snapshotted_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("report.bin");
    fs::write(&file, random_bytes(5, 300_000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m = snap(&repo, &file);
    let root = m.root_entry.clone().unwrap();
    assert_eq!(root.entry_type, kopr_format::snapshot::EntryType::File);
    assert_eq!(root.file_size, 300_000);
    assert_eq!(
        (m.stats.total_file_count, m.stats.total_directory_count),
        (1, 0)
    );
    let m2 = snap(&repo, &file);
    assert_eq!(m2.root_entry.unwrap().object_id, root.object_id);
    let dst = tmp.path().join("restored.bin");
    restore(&repo, &root, &dst, RestoreOptions::default()).unwrap();
    assert_eq!(fs::read(&dst).unwrap(), fs::read(&file).unwrap());
}

#[test]
fn progress_counts_every_file_and_the_estimate_matches_the_tree() {
    use kopr_repo::snapshot::{Progress, ProgressCounters};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in 0..3 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..5 {
            fs::write(
                src.join(format!("d{d}/f{f}")),
                random_bytes(d * 10 + f, 10_000 * (f as usize + 1)),
            )
            .unwrap();
        }
    }
    fs::write(src.join(".kopiaignore"), "skipped\n").unwrap();
    fs::write(src.join("skipped"), vec![1u8; 123_456]).unwrap();
    let (files, bytes) = (16u64, 3 * 150_000 + 8);
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let counters = Arc::new(ProgressCounters::default());
    let opts = UploadOptions {
        progress: Some(counters.clone()),
        estimate: true,
        ..Default::default()
    };
    let mut last = Progress::default();
    let m = create_snapshot(&repo, &src, &source(&src), &opts, &mut |p| {
        assert!(p.done_files() >= last.done_files() && p.done_bytes() >= last.done_bytes());
        last = p.clone();
        // Hold the upload until the pre-walk in the background has finished.
        let t = std::time::Instant::now();
        while !counters.get().estimate_done && t.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    })
    .unwrap();
    assert_eq!(m.stats.total_file_count as u64, files);
    let p = counters.get();
    assert_eq!((p.hashed_files, p.hashed_bytes), (files, bytes));
    assert_eq!((p.cached_files, p.hashing_files, p.errors), (0, 0, 0));
    assert!(p.estimate_done);
    assert_eq!(
        (p.estimated_files, p.estimated_bytes),
        (files, bytes),
        "the estimate applies the ignore rules"
    );
    assert_eq!(last.done_files(), files);

    // Unchanged: everything is cached, and the previous totals are the estimate at once.
    let counters = Arc::new(ProgressCounters::default());
    let opts = UploadOptions {
        progress: Some(counters.clone()),
        ..Default::default()
    };
    let mut first = None;
    create_snapshot(&repo, &src, &source(&src), &opts, &mut |p| {
        first.get_or_insert_with(|| p.clone());
    })
    .unwrap();
    let first = first.unwrap();
    assert_eq!(
        (first.estimated_files, first.estimated_bytes),
        (files, bytes)
    );
    assert!(!first.estimate_done);
    let p = counters.get();
    assert_eq!((p.cached_files, p.cached_bytes), (files, bytes));
    assert_eq!((p.hashed_files, p.hashed_bytes), (0, 0));
}

/// Counts the files and directories (itself included) of a directory on disk.
fn counts_on_disk(dir: &std::path::Path) -> (i64, i64) {
    let (mut files, mut dirs) = (0, 1);
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let (f, d) = counts_on_disk(&e.path());
            files += f;
            dirs += d;
        } else {
            files += 1;
        }
    }
    (files, dirs)
}

/// Checks every directory object under `oid` (the directory `dir` on disk): its summary counts
/// what is below it, and its subdirectories' entries carry their own summaries.
fn check_summaries(
    repo: &Repository,
    oid: &kopr_format::object_id::ObjectId,
    dir: &std::path::Path,
) -> usize {
    use kopr_format::snapshot::{DirManifest, EntryType};
    let bytes = kopr_repo::object::read_object(repo.contents(), oid).unwrap();
    let m = DirManifest::decode(&bytes).unwrap();
    let s = m.summary.as_ref().unwrap();
    let (files, dirs) = counts_on_disk(dir);
    assert_eq!(
        (s.total_file_count, s.total_dir_count),
        (files, dirs),
        "{}",
        dir.display()
    );
    let mut checked = 1;
    for e in &m.entries {
        if e.entry_type == EntryType::Directory {
            let sub = e.dir_summary.as_ref().unwrap();
            assert_eq!(
                counts_on_disk(&dir.join(&e.name)),
                (sub.total_file_count, sub.total_dir_count)
            );
            checked += check_summaries(repo, &e.object_id, &dir.join(&e.name));
        }
    }
    checked
}

/// Directories are stored by the workers, children before parents whatever thread stores
/// them: on a tree with many more directories than the workers' queue holds, wide and deep,
/// every directory's summary and entries are right, the tree restores byte for byte, and an
/// unchanged tree gives the same root object again.
#[test]
fn directories_stored_by_the_workers_sum_up_and_repeat_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for a in 0..12 {
        for b in 0..12 {
            let d = src.join(format!("a{a:02}")).join(format!("b{b:02}"));
            fs::create_dir_all(&d).unwrap();
            for f in 0..(a + b) % 5 {
                fs::write(
                    d.join(format!("f{f}")),
                    random_bytes((a * 100 + b * 10 + f) as u64, 100 * f + a * 7 + b),
                )
                .unwrap();
            }
        }
    }
    let mut deep = src.join("deep");
    for i in 0..40 {
        deep = deep.join(format!("level{i}"));
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("x"), format!("{i}")).unwrap();
    }
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = snap(&repo, &src);
    assert_eq!(m.stats.error_count, 0);
    let root = m.root_entry.clone().unwrap();
    assert_eq!(
        check_summaries(&repo, &root.object_id, &src),
        1 + 12 + 144 + 1 + 40
    );
    let dst = tmp.path().join("dst");
    restore(&repo, &root, &dst, RestoreOptions::default()).unwrap();
    assert_eq!(walk(&src), walk(&dst));
    let again = snap(&repo, &src);
    assert_eq!(again.root_entry.unwrap().object_id, root.object_id);
}

/// The policy's compression size limits apply to a file the walk listed without its size (its
/// worker learns the size when it opens it) as to one the walk stat'ed.
#[test]
fn compression_size_limits_apply_to_files_whoever_sized_them() {
    use kopr_format::policy::Policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let text = |n: usize| "compress me ".repeat(n);
    fs::write(src.join("small.txt"), text(10)).unwrap(); // 120 bytes
    fs::write(src.join("middle.txt"), text(100)).unwrap(); // 1,200 bytes
    fs::write(src.join("big.txt"), text(1000)).unwrap(); // 12,000 bytes
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    let mut global = Policy::kopia_default();
    global.compression.compressor_name = "zstd-fastest".into();
    global.compression.min_size = 1_000;
    global.compression.max_size = 10_000;
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    let compressed = |m: &kopr_format::snapshot::SnapshotManifest| {
        let mut out: Vec<(String, bool)> = root_entries(&repo, m)
            .iter()
            .map(|e| {
                let info = repo
                    .contents()
                    .content_info(&e.object_id.content_id().unwrap())
                    .unwrap()
                    .unwrap();
                (e.name.clone(), info.compression_header_id != 0)
            })
            .collect();
        out.sort();
        out
    };
    let want = vec![
        ("big.txt".to_string(), false),
        ("middle.txt".to_string(), true),
        ("small.txt".to_string(), false),
    ];
    let first = create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(compressed(&first), want, "sized by the workers");
    // Changed files of the previous snapshot are stat'ed by the walk.
    fs::write(src.join("small.txt"), text(11)).unwrap();
    fs::write(src.join("middle.txt"), text(101)).unwrap();
    fs::write(src.join("big.txt"), text(1001)).unwrap();
    let second = create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(second.stats.non_cached_files, 3);
    assert_eq!(compressed(&second), want, "sized by the walk");
}

/// The names in a snapshot's root directory, sorted.
fn root_names(repo: &Repository, m: &kopr_format::snapshot::SnapshotManifest) -> Vec<String> {
    let mut names: Vec<String> = root_entries(repo, m).into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

/// Kopia's `files.maxFileSize`: files over the size are left out of the snapshot (and not
/// counted as excluded, as Kopia does not), on a first snapshot and on the next one alike;
/// directories are kept whatever their size.
#[test]
fn files_over_the_policys_max_file_size_are_left_out() {
    use kopr_format::policy::Policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("small"), vec![1u8; 1000]).unwrap();
    fs::write(src.join("limit"), vec![2u8; 2000]).unwrap();
    fs::write(src.join("large"), vec![3u8; 2001]).unwrap();
    fs::write(src.join("dir/large"), vec![4u8; 5000]).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    let mut global = Policy::kopia_default();
    global
        .files
        .extra
        .insert("maxFileSize".into(), serde_json::json!(2000));
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    for round in ["first", "next"] {
        let m = create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(root_names(&repo, &m), ["dir", "limit", "small"], "{round}");
        let dir = root_entries(&repo, &m)
            .into_iter()
            .find(|e| e.name == "dir")
            .unwrap();
        assert!(kopr_repo::snapshot::read_dir(&repo, &dir.object_id)
            .unwrap()
            .is_empty());
        assert_eq!(m.stats.total_file_count, 2, "{round}");
        assert_eq!(m.stats.excluded_file_count, 0, "{round}");
    }
}

/// Kopia's `files.oneFileSystem`: a filesystem mounted inside the tree is left out (its
/// mount point too); without the policy it is walked. Needs root to mount a tmpfs.
#[cfg(target_os = "linux")]
#[test]
fn a_mount_inside_the_tree_is_left_out_on_one_file_system() {
    use kopr_format::policy::Policy;
    use std::process::Command;
    if !kopr_testkit::env::is_root() {
        kopr_testkit::env::skip(
            "a_mount_inside_the_tree_is_left_out_on_one_file_system",
            "mounting a tmpfs needs root",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mnt = src.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fs::write(src.join("here"), b"on the tree's filesystem").unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "kopr-test",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        kopr_testkit::env::skip(
            "a_mount_inside_the_tree_is_left_out_on_one_file_system",
            "cannot mount a tmpfs here",
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    fs::write(mnt.join("there"), b"on another filesystem").unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    let snap = || create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {});
    let walked = snap().unwrap();
    assert_eq!(root_names(&repo, &walked), ["here", "mnt"]);
    assert_eq!(walked.stats.total_file_count, 2);
    let estimated = |p: &Policy| {
        kopr_repo::snapshot::estimate::estimate(&src, p, 10)
            .unwrap()
            .total_file_count
    };
    let mut global = Policy::kopia_default();
    assert_eq!(estimated(&global), 2);
    global
        .files
        .extra
        .insert("oneFileSystem".into(), serde_json::json!(true));
    assert_eq!(estimated(&global), 1);
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    let kept = snap().unwrap();
    assert_eq!(root_names(&repo, &kept), ["here"]);
    assert_eq!(kept.stats.total_file_count, 1);
}

/// Kopia's `metadataCompression`: directory listings and a large file's chunk list are
/// compressed with it (`zstd-fastest` when unset), and stored plain under `none`.
#[test]
fn directories_and_chunk_lists_follow_the_policys_metadata_compression() {
    use kopr_format::policy::Policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("large"), random_bytes(7, 10 << 20)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let si = source(&src);
    // Whether the root directory's content and the large file's chunk list are compressed.
    let compressed = |m: &kopr_format::snapshot::SnapshotManifest| {
        let is = |oid: &kopr_format::object_id::ObjectId| {
            let id = oid.content_id().unwrap();
            let info = repo.contents().content_info(&id).unwrap().unwrap();
            info.compression_header_id != 0
        };
        let large = root_entries(&repo, m).remove(0).object_id;
        (
            is(&m.root_entry.as_ref().unwrap().object_id),
            is(&large.index_object_id().expect("chunked")),
        )
    };
    let mut global = Policy::kopia_default();
    global.extra.remove("metadataCompression");
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    let snap = || create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {});
    assert_eq!(compressed(&snap().unwrap()), (true, true), "unset");
    global.extra.insert(
        "metadataCompression".into(),
        serde_json::json!({"compressorName": "none"}),
    );
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    // The file is unchanged and reused: a new one gets a new chunk list.
    fs::write(src.join("large"), random_bytes(8, 10 << 20)).unwrap();
    assert_eq!(compressed(&snap().unwrap()), (false, false), "none");
}

/// Kopia's `splitter.algorithm` in a policy: file data is cut by it instead of the
/// repository's splitter, files shorter than the repository's shortest cut included (700 KiB
/// is one chunk for the repository's DYNAMIC-4M, two for FIXED-512K).
#[test]
fn file_data_is_cut_by_the_policys_splitter() {
    use kopr_format::policy::Policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1, 3 << 19)).unwrap();
    fs::write(src.join("b"), random_bytes(2, 7 << 19)).unwrap();
    fs::write(src.join("c"), random_bytes(5, 700 << 10)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    // The chunk lengths of each file.
    let chunks = |m: &kopr_format::snapshot::SnapshotManifest| -> Vec<Vec<u64>> {
        // A directory lists its entries by name.
        root_entries(&repo, m)
            .iter()
            .map(|e| match e.object_id.index_object_id() {
                None => vec![e.file_size as u64],
                Some(index) => {
                    let list: serde_json::Value = serde_json::from_slice(
                        &kopr_repo::object::read_object(repo.contents(), &index).unwrap(),
                    )
                    .unwrap();
                    list["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["l"].as_u64().unwrap())
                        .collect()
                }
            })
            .collect()
    };
    let snap = || create_snapshot(&repo, &src, &si, &UploadOptions::default(), &mut |_| {});
    let repository_cut = chunks(&snap().unwrap());
    assert_eq!(repository_cut[0], [3 << 19], "one chunk under DYNAMIC-4M");
    assert_eq!(repository_cut[2], [700 << 10]);
    let mut global = Policy::kopia_default();
    global.extra.insert(
        "splitter".into(),
        serde_json::json!({"algorithm": "FIXED-512K"}),
    );
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    // New files, so that nothing is reused from the first snapshot.
    fs::write(src.join("a"), random_bytes(3, 3 << 19)).unwrap();
    fs::write(src.join("b"), random_bytes(4, 7 << 19)).unwrap();
    fs::write(src.join("c"), random_bytes(6, 700 << 10)).unwrap();
    let policy_cut = chunks(&snap().unwrap());
    assert_eq!(policy_cut[0], [1 << 19; 3]);
    assert_eq!(policy_cut[1], [1 << 19; 7]);
    assert_eq!(policy_cut[2], [1 << 19, 188 << 10]);
}

/// Kopia's `retention.ignoreIdenticalSnapshots`: a snapshot whose root is the same object as
/// the newest complete snapshot's is not saved (that snapshot is the outcome); a change saves
/// one again; without the policy identical snapshots are saved.
#[test]
fn identical_snapshots_are_not_saved_when_the_policy_says_so() {
    use kopr_format::policy::Policy;
    use kopr_repo::snapshot::{create_snapshot_outcome, list_snapshots, Created};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"one").unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    let snap = || create_snapshot_outcome(&repo, &src, &si, &UploadOptions::default(), &mut |_| {});
    let count = || list_snapshots(&repo, Some(&si)).unwrap().len();
    let Created::Saved(first) = snap().unwrap() else {
        panic!("the first snapshot is saved");
    };
    assert!(matches!(snap().unwrap(), Created::Saved(_)), "no policy");
    assert_eq!(count(), 2);
    let mut global = Policy::kopia_default();
    global.retention.ignore_identical_snapshots = Some(true);
    kopr_repo::policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    repo.flush().unwrap();
    match snap().unwrap() {
        Created::Identical(m) => {
            assert_eq!(
                m.root_entry.unwrap().object_id,
                first.root_entry.unwrap().object_id
            );
            assert!(m.start_time > first.start_time, "the newest of the two");
        }
        other => panic!("saved again: {other:?}"),
    }
    assert_eq!(count(), 2);
    fs::write(src.join("f"), b"two").unwrap();
    assert!(matches!(snap().unwrap(), Created::Saved(_)), "changed");
    assert_eq!(count(), 3);
}
