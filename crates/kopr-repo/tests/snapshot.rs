//! Snapshots of real directory trees: round trips byte for byte with metadata, deduplication
//! of unchanged trees, small changes writing little, listing and deleting.

use kopr_testkit::random_bytes;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, load_snapshot, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::{OpenOptions, Repository};

fn repo_at(dir: &Path, splitter: &str) -> (Arc<dyn BlobStorage>, Repository) {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::create(dir).unwrap());
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
        splitter: splitter.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").unwrap();
    let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
    (st, r)
}

fn source(p: &Path) -> SourceInfo {
    SourceInfo {
        host: "host".into(),
        user_name: "user".into(),
        path: p.to_string_lossy().into_owned(),
    }
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(root.join("small.txt"), b"hello kopr\n").unwrap();
    fs::write(root.join("zürich ünïcödé ☃.txt"), "grüezi".repeat(100)).unwrap();
    fs::write(root.join("l".repeat(255)), b"long name").unwrap();
    let mut deep = root.to_path_buf();
    for i in 0..30 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"deep").unwrap();
    fs::write(root.join("big.bin"), random_bytes(1, 5 << 20)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink("small.txt", root.join("link")).unwrap();
        std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
        fs::set_permissions(root.join("small.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(root.join("exec.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn walk(root: &Path) -> Vec<(PathBuf, String, Vec<u8>, u32, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            #[cfg(unix)]
            let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
            #[cfg(not(unix))]
            let mode = 0;
            let mtime = md
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            if md.file_type().is_symlink() {
                out.push((
                    rel,
                    "link".into(),
                    fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                    0,
                    0,
                ));
            } else if md.is_dir() {
                out.push((rel, "dir".into(), vec![], mode, mtime));
                stack.push(p);
            } else {
                out.push((rel, "file".into(), fs::read(&p).unwrap(), mode, mtime));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tree_round_trips_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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
    create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let packs = st.list_all("p").unwrap();
    let m2 = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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
    create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let before = repo.contents().write_stats();
    data[12 << 20] ^= 1;
    fs::write(src.join("big"), &data).unwrap();
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let after = repo.contents().write_stats();
    let new_bytes = after.written_bytes - before.written_bytes;
    // one or two data chunks (≤ 2 MiB each) plus the indirect list and directory
    assert!(
        new_bytes < 5 << 20,
        "wrote {new_bytes} bytes for a one-byte change"
    );
    assert!(after.deduplicated_contents > before.deduplicated_contents + 5);
    let dst = tmp.path().join("dst");
    restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(dst.join("big")).unwrap(), data);
}

#[test]
fn deleted_snapshots_disappear_from_listings() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m1 = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let m2 = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    repo.manifests().delete(repo.contents(), &m1.id).unwrap();
    repo.flush().unwrap();
    let reopened = Repository::open(st, "pw", OpenOptions::default()).unwrap();
    let ids: Vec<String> = list_snapshots(&reopened, None)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![m2.id]);
}

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
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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

#[test]
fn verify_reports_every_damaged_file_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let (st, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        m.stats.excluded_file_count, 3,
        "drop.tmp, sub/other.tmp, sub/secret"
    );
    assert_eq!(m.stats.excluded_dir_count, 1);
    let dst = tmp.path().join("dst");
    restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
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
    let a = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    fs::write(src.join("d/change"), b"v2!").unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    fs::write(src.join("new"), b"n").unwrap();
    let b = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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
fn policies_inherit_and_expire_old_snapshots_but_never_pinned_ones() {
    use kopr_format::policy::Policy;
    use kopr_repo::policy;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "compress me ".repeat(1000)).unwrap();
    fs::write(src.join("b.zip"), "zipped already ".repeat(1000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let si = source(&src);
    let mut global = Policy::kopia_default();
    global.compression.compressor_name = "zstd-fastest".into();
    global.compression.never_compress = vec![".zip".into()];
    policy::set(&repo, &SourceInfo::default(), &global).unwrap();
    let mut mine = Policy::default();
    mine.retention.keep_latest = Some(2);
    mine.retention.keep_hourly = Some(0);
    mine.retention.keep_daily = Some(0);
    mine.retention.keep_weekly = Some(0);
    mine.retention.keep_monthly = Some(0);
    mine.retention.keep_annual = Some(0);
    policy::set(&repo, &si, &mine).unwrap();
    repo.flush().unwrap();
    let eff = policy::effective(&repo, &si).unwrap();
    assert_eq!(eff.retention.keep_latest, Some(2));
    assert_eq!(eff.compression.compressor_name, "zstd-fastest");

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
    let (entry, mut pinned): (_, kopr_format::snapshot::SnapshotManifest) =
        repo.manifests().get(repo.contents(), &ids[0].id).unwrap();
    pinned.pins = vec!["keep".into()];
    repo.manifests().delete(repo.contents(), &entry.id).unwrap();
    let pinned_id = repo
        .manifests()
        .put(repo.contents(), entry.labels.clone(), &pinned)
        .unwrap();
    repo.flush().unwrap();

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
    let left: Vec<String> = list_snapshots(&repo, Some(&si))
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, vec![pinned_id, ids[2].id.clone(), ids[3].id.clone()]);
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

    let m2 = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(m2.incomplete_reason.is_empty());
    assert_eq!(m2.stats.total_file_count, 120);
    assert_eq!(
        m2.stats.cached_files, done,
        "files of the checkpoint are not read again"
    );
    let dst = tmp.path().join("dst");
    restore(
        &repo,
        m2.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
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
fn storage_stats_count_new_data_per_snapshot() {
    use kopr_repo::snapshot::storage_stats;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1, 100_000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    fs::write(src.join("b"), random_bytes(2, 50_000)).unwrap();
    create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
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

#[test]
fn a_single_file_can_be_snapshotted_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("report.bin");
    fs::write(&file, random_bytes(5, 300_000)).unwrap();
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-4M-BUZHASH");
    let m = create_snapshot(
        &repo,
        &file,
        &source(&file),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let root = m.root_entry.clone().unwrap();
    assert_eq!(root.entry_type, kopr_format::snapshot::EntryType::File);
    assert_eq!(root.file_size, 300_000);
    assert_eq!(
        (m.stats.total_file_count, m.stats.total_directory_count),
        (1, 0)
    );
    let m2 = create_snapshot(
        &repo,
        &file,
        &source(&file),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(m2.root_entry.unwrap().object_id, root.object_id);
    let dst = tmp.path().join("restored.bin");
    restore(&repo, &root, &dst, RestoreOptions::default()).unwrap();
    assert_eq!(fs::read(&dst).unwrap(), fs::read(&file).unwrap());
}

fn repo_bytes(st: &Arc<dyn BlobStorage>) -> u64 {
    st.list_all("").unwrap().iter().map(|b| b.length).sum()
}

fn snap(repo: &Repository, src: &Path) -> kopr_format::snapshot::SnapshotManifest {
    create_snapshot(
        repo,
        src,
        &source(src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

fn root_entries(
    repo: &Repository,
    m: &kopr_format::snapshot::SnapshotManifest,
) -> Vec<kopr_format::snapshot::DirEntry> {
    let root = m.root_entry.as_ref().unwrap();
    let bytes = kopr_repo::object::read_object(repo.contents(), &root.object_id).unwrap();
    kopr_format::snapshot::DirManifest::decode(&bytes)
        .unwrap()
        .entries
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
    let rs = restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
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
    restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
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
    restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
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
    restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
    assert!(fs::read(dst.join("rewritten")).unwrap() == stored);
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

/// Files of every directory are read by one pool while the walk goes on (no directory waits for
/// its files before the next is walked): each directory's summary still counts exactly its own
/// subtree, and the tree restores byte for byte with its times (restored by parallel workers,
/// directories' times set last).
#[test]
fn wide_tree_read_by_one_pool_has_exact_summaries_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
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
    // Restoring over existing files: with overwrite they are replaced; without, a non-empty
    // target directory is refused as a whole and an existing file is refused by name, and a
    // refused restore changes nothing and leaves no temporary files behind.
    let d07 = entries.iter().find(|e| e.name == "d07").unwrap();
    let into = tmp.path().join("into");
    fs::create_dir_all(into.join("s0")).unwrap();
    fs::write(into.join("big"), b"mine").unwrap();
    let e = restore(
        &repo,
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
    let occupied = tmp.path().join("occupied");
    fs::create_dir_all(&occupied).unwrap();
    fs::write(occupied.join("big"), b"mine").unwrap();
    let e = restore(&repo, d07, &occupied, RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let bigfile = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(repo.contents(), &d07.object_id).unwrap(),
    )
    .unwrap()
    .entries
    .into_iter()
    .find(|e| e.name == "big")
    .unwrap();
    let e = restore(
        &repo,
        &bigfile,
        &into.join("big"),
        RestoreOptions::default(),
    )
    .unwrap_err();
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

/// Storage that counts the reads of each blob.
#[derive(Debug)]
struct CountingStorage {
    inner: Arc<dyn BlobStorage>,
    gets: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl BlobStorage for CountingStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> kopr_blob::Result<Vec<u8>> {
        *self.gets.lock().unwrap().entry(id.to_string()).or_default() += 1;
        self.inner.get_blob(id, offset, length)
    }
    fn get_metadata(&self, id: &str) -> kopr_blob::Result<kopr_blob::BlobMetadata> {
        self.inner.get_metadata(id)
    }
    fn put_blob(
        &self,
        id: &str,
        data: &[u8],
        opts: &kopr_blob::PutOptions,
    ) -> kopr_blob::Result<()> {
        self.inner.put_blob(id, data, opts)
    }
    fn delete_blob(&self, id: &str) -> kopr_blob::Result<()> {
        self.inner.delete_blob(id)
    }
    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(kopr_blob::BlobMetadata) -> kopr_blob::Result<()>,
    ) -> kopr_blob::Result<()> {
        self.inner.list_blobs(prefix, cb)
    }
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
}

#[test]
fn restore_reads_each_data_pack_once() {
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
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    drop(repo);

    let counting = Arc::new(CountingStorage {
        inner: Arc::new(FilesystemStorage::open(tmp.path().join("repo")).unwrap()),
        gets: Default::default(),
    });
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
    let rs = restore(
        &repo,
        m.root_entry.as_ref().unwrap(),
        &dst,
        RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(rs.files, 20 * 102 + 2, "{rs:?}");
    kopr_testkit::assert_same_tree(&src, &dst);
    let gets = counting.gets.lock().unwrap().clone();
    let data_reads: Vec<(&String, &u64)> =
        gets.iter().filter(|(id, _)| id.starts_with('p')).collect();
    assert!(!data_reads.is_empty());
    for (id, n) in &data_reads {
        assert!(packs.contains(id), "{id} is a data pack");
        assert_eq!(**n, 1, "data pack {id} read {n} times; all reads: {gets:?}");
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
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let root = m.root_entry.clone().unwrap();
    let dm = kopr_format::snapshot::DirManifest::decode(
        &kopr_repo::object::read_object(repo.contents(), &root.object_id).unwrap(),
    )
    .unwrap();
    let pack_of = |oid: &kopr_format::object_id::ObjectId| -> Vec<String> {
        kopr_repo::snapshot::object_content_ids(&repo, oid)
            .unwrap()
            .iter()
            .map(|c| {
                repo.contents()
                    .content_info(c)
                    .unwrap()
                    .unwrap()
                    .pack_blob_id
            })
            .filter(|p| p.starts_with('p'))
            .collect()
    };
    let big = dm.entries.iter().find(|e| e.name == "big").unwrap();
    let mut big_packs = pack_of(&big.object_id);
    big_packs.sort();
    big_packs.dedup();
    assert!(big_packs.len() >= 2, "{big_packs:?}");
    // Lose a pack holding part of `big` (not the one of the small files, if they have one).
    let small_packs: Vec<String> = dm
        .entries
        .iter()
        .filter(|e| e.name != "big")
        .flat_map(|e| pack_of(&e.object_id))
        .collect();
    let lost = big_packs
        .iter()
        .find(|p| !small_packs.contains(p))
        .unwrap()
        .clone();
    drop(repo);
    st.delete_blob(&lost).unwrap();
    let repo = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();

    let dst = tmp.path().join("dst");
    let err = restore(&repo, &root, &dst, RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains(&lost), "{err}");
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
    assert!(failed[0].1.contains(&lost), "{failed:?}");
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

/// The bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
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
    let (_, repo) = repo_at(&tmp.path().join("repo"), "DYNAMIC-1M-BUZHASH");
    let m = create_snapshot(
        &repo,
        &src,
        &source(&src),
        &UploadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    drop(repo);
    let root = m.root_entry.unwrap();
    let counting = Arc::new(CountingStorage {
        inner: Arc::new(FilesystemStorage::open(tmp.path().join("repo")).unwrap()),
        gets: Default::default(),
    });
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
    // The directories come from their metadata pack, fetched whole once rather than with a
    // request per directory.
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
    let cached = bytes_under(&cache.join("contents"));
    assert!(cached > 200 * 4000, "{cached}");

    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("two"));
    assert_eq!(pack_reads(), 0, "{:?}", counting.gets.lock().unwrap());

    // A damaged cached copy (same length) is read from storage instead.
    let mut victims = Vec::new();
    for shard in fs::read_dir(cache.join("contents")).unwrap().flatten() {
        for e in fs::read_dir(shard.path()).unwrap().flatten() {
            victims.push(e.path());
        }
    }
    for v in &victims {
        let mut b = fs::read(v).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(v, b).unwrap();
    }
    counting.gets.lock().unwrap().clear();
    restore_equal(&repo, &root, &src, &tmp.path().join("three"));
    assert!(pack_reads() > 0);
    drop(repo);

    // The cache stays within its limit.
    fs::remove_dir_all(&cache).unwrap();
    let repo = open(100_000);
    restore_equal(&repo, &root, &src, &tmp.path().join("four"));
    let cached = bytes_under(&cache.join("contents"));
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
    assert_eq!(bytes_under(&cache.join("contents")), 0);
}
