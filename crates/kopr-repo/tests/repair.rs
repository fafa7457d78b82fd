//! Damage and repair: lost index blobs rebuilt from the packs' own index copies, and
//! `content verify` naming every missing or corrupt content with the snapshots and paths
//! that need it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use kopr_blob::memory::MemoryStorage;
use kopr_blob::{BlobStorage, PutOptions};
use kopr_format::snapshot::SourceInfo;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::verify::verify_contents;
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;

fn setup(tmp: &Path) -> (Arc<dyn BlobStorage>, kopr_format::snapshot::SnapshotId) {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, "pw").unwrap();
    let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
    let dir = tmp.join("data");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.bin"), random_bytes(1, 3 << 20)).unwrap();
    std::fs::write(dir.join("sub/b.bin"), random_bytes(2, 100_000)).unwrap();
    let src = SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: dir.to_string_lossy().into_owned(),
    };
    let m = create_snapshot(&r, &dir, &src, &UploadOptions::default(), &mut |_| {}).unwrap();
    (st, m.id)
}

#[test]
fn lost_index_blobs_are_rebuilt_from_the_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, id) = setup(tmp.path());
    for b in st.list_all("x").unwrap() {
        st.delete_blob(&b.id).unwrap();
    }
    let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
    assert!(list_snapshots(&r, None).unwrap().is_empty(), "index gone");
    let mut recovered = 0;
    for prefix in ["p", "q"] {
        for b in st.list_all(prefix).unwrap() {
            let entries = r.contents().pack_local_index(&b.id).unwrap();
            recovered += entries.len();
            r.contents().add_recovered_entries(entries).unwrap();
        }
    }
    assert!(recovered > 3);
    r.contents().flush().unwrap();
    drop(r);
    let r = Repository::open(st, "pw", OpenOptions::default()).unwrap();
    let snaps = list_snapshots(&r, None).unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, id);
    let dest = tmp.path().join("restored");
    restore(
        &r,
        snaps[0].root_entry.as_ref().unwrap(),
        &dest,
        RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(dest.join("a.bin")).unwrap(),
        random_bytes(1, 3 << 20)
    );
    assert_eq!(
        std::fs::read(dest.join("sub/b.bin")).unwrap(),
        random_bytes(2, 100_000)
    );
    assert!(verify_contents(&r, 100.0, false)
        .unwrap()
        .problems
        .is_empty());
}

#[test]
fn verify_names_missing_and_corrupt_contents_with_their_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, id) = setup(tmp.path());
    let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
    let clean = verify_contents(&r, 100.0, false).unwrap();
    assert!(clean.problems.is_empty());
    assert_eq!(clean.downloaded, clean.verified);

    // flip one byte inside the first content of the data pack
    let pack = st.list_all("p").unwrap().remove(0);
    let mut bytes = st.get_blob(&pack.id, 0, None).unwrap();
    bytes[40] ^= 0x01;
    st.put_blob(&pack.id, &bytes, &PutOptions::default())
        .unwrap();
    // without downloading, the pack looks fine; with, the flipped content is found
    assert!(verify_contents(&r, 0.0, false).unwrap().problems.is_empty());
    let report = verify_contents(&r, 100.0, false).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let p = &report.problems[0];
    assert_eq!(p.pack_blob_id, pack.id);
    assert!(
        p.used_by
            .iter()
            .any(|u| u == &format!("{id} /a.bin") || u == &format!("{id} /sub/b.bin")),
        "{p:?}"
    );

    // a missing metadata pack: every content in it is reported, with the directories using them
    let q = st.list_all("q").unwrap();
    for b in &q {
        st.delete_blob(&b.id).unwrap();
    }
    let report = verify_contents(&r, 0.0, false).unwrap();
    let missing: HashSet<&str> = report
        .problems
        .iter()
        .filter(|p| p.problem == "pack blob is missing")
        .map(|p| p.pack_blob_id.as_str())
        .collect();
    assert_eq!(missing.len(), q.len(), "{report:#?}");
}
