//! Compatibility evidence taken from repositories written by Kopia 0.23.1 (the fixtures in
//! `../shared/fixtures/kopia-0.23.1`, described by their `expected.json`), in place of known
//! answers whose source cannot be reproduced:
//!
//! - every index blob Kopia wrote decodes, and kopr's builder re-encodes its entries to the same
//!   bytes (all of them: Kopia 0.23.1 wrote these index blobs without a random suffix);
//! - the copy of its index at the end of every pack decodes and re-encodes to the same bytes
//!   followed by 32 random ones, encrypted with the hash of its plaintext as IV;
//! - every file larger than its splitter's minimum chunk was cut by Kopia into the chunks its
//!   indirect object lists; kopr reads the file back (its SHA-256 is the one `expected.json`
//!   records) and kopr's splitter cuts it at exactly the same offsets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::index::{encode_index_v2_stable, Index, RANDOM_SUFFIX_LEN};
use kopr_format::object_id::ObjectId;
use kopr_format::splitter::split_all;
use kopr_repo::object::{object_entries, read_object};
use kopr_repo::{OpenOptions, Repository};
use sha2::{Digest, Sha256};

/// The fixtures, or `None` after a loud skip (a failure when `CI` is set).
fn fixtures(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/kopia-0.23.1"
    ));
    if dir.is_dir() {
        return Some(dir);
    }
    kopr_testkit::env::skip(
        test,
        &format!("Kopia fixtures not found at {}", dir.display()),
    );
    None
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Opens a copy of fixture `name` (the fixtures stay untouched); returns its `expected.json`.
fn open_fixture(root: &Path, name: &str, tmp: &Path) -> (Repository, serde_json::Value) {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(name).join("expected.json")).unwrap())
            .unwrap();
    let repo_dir = tmp.join(name);
    copy_dir(&root.join(name).join("repo"), &repo_dir);
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(&repo_dir).unwrap());
    let password = expected["password"].as_str().unwrap();
    let repo = Repository::open(st, password, OpenOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (repo, expected)
}

/// The fixtures kopr opens today: Kopia's defaults, other algorithms, every compressor and
/// format version 2 (format 1 and ECC are other work in progress).
const FIXTURES: &[&str] = &["default", "algorithms", "compressors", "format-v2"];

#[test]
fn kopias_index_blobs_reencode_to_the_same_bytes() {
    let Some(root) = fixtures("kopias_index_blobs_reencode_to_the_same_bytes") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in FIXTURES {
        let (repo, _) = open_fixture(&root, name, tmp.path());
        let st = repo.storage();
        for b in st.list_all("x").unwrap() {
            // index blobs: single-epoch (xn), compacted (xs) and range (xr) indexes
            if !["xn", "xs", "xr"].iter().any(|p| b.id.starts_with(p)) {
                continue;
            }
            let data = st.get_blob(&b.id, 0, None).unwrap();
            let plain =
                kopr_format::blob_crypto::decrypt_blob(&repo.format().encryptor, &data, &b.id)
                    .unwrap_or_else(|e| panic!("{name} {}: {e}", b.id));
            let index = Index::parse(plain.clone()).unwrap();
            assert_eq!(index.version(), 2, "{name} {}", b.id);
            let entries: Vec<_> = index.iter().map(|e| e.unwrap()).collect();
            assert!(!entries.is_empty(), "{name} {}", b.id);
            let ours = encode_index_v2_stable(entries).unwrap();
            // Kopia 0.23.1 wrote these with no random suffix: the bytes are equal as a whole
            assert!(
                plain == ours,
                "{name} {}: kopr's encoding ({} bytes) differs from Kopia's ({} bytes)",
                b.id,
                ours.len(),
                plain.len()
            );
            checked += 1;
        }
    }
    assert!(checked >= FIXTURES.len(), "only {checked} index blobs");
}

/// Every file of a directory tree (recursively): relative path and object id. The directory
/// JSON is read field by field here (name, type, obj), so that this test depends on nothing
/// but the object layer and the splitter.
fn files(repo: &Repository, dir: &ObjectId, prefix: &str, out: &mut Vec<(String, ObjectId)>) {
    let dm: serde_json::Value =
        serde_json::from_slice(&read_object(repo.contents(), dir).unwrap()).unwrap();
    assert_eq!(dm["stream"], "kopia:directory");
    for e in dm["entries"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let oid = || -> ObjectId { e["obj"].as_str().unwrap().parse().unwrap() };
        match e["type"].as_str() {
            Some("d") => files(repo, &oid(), &path, out),
            Some("f") => out.push((path, oid())),
            _ => {}
        }
    }
}

#[test]
fn kopias_chunk_boundaries_are_kopr_splitter_boundaries() {
    let Some(root) = fixtures("kopias_chunk_boundaries_are_kopr_splitter_boundaries") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let mut multi_chunk = 0;
        let (repo, expected) = open_fixture(&root, name, tmp.path());
        let splitter = repo.format().config.splitter.clone();
        // sizes and digests of the files as Kopia saw them, by source path and file path
        let mut want = std::collections::BTreeMap::new();
        for s in expected["snapshots"].as_array().unwrap() {
            for e in s["tree"].as_array().into_iter().flatten() {
                if e["type"] == "file" {
                    want.insert(
                        (
                            s["root"].as_str().unwrap().to_string(),
                            e["path"].as_str().unwrap().to_string(),
                        ),
                        e["sha256"].as_str().unwrap().to_string(),
                    );
                }
            }
        }
        // roots from expected.json (not from the manifests: listing them is not what is tested)
        for s in expected["snapshots"].as_array().unwrap() {
            if s["deleted"] == true {
                continue;
            }
            let root_oid: ObjectId = s["root"].as_str().unwrap().parse().unwrap();
            let mut all = Vec::new();
            files(&repo, &root_oid, "", &mut all);
            for (path, oid) in all {
                let chunks = object_entries(repo.contents(), &oid).unwrap();
                if chunks.len() < 2 {
                    continue;
                }
                let data = read_object(repo.contents(), &oid).unwrap();
                let key = (root_oid.to_string(), path.clone());
                let sha = want
                    .get(&key)
                    .unwrap_or_else(|| panic!("{name}: {path} not in expected.json"));
                assert_eq!(
                    &hex::encode(Sha256::digest(&data)),
                    sha,
                    "{name}: {path} read back"
                );
                let kopia: Vec<usize> = chunks.iter().map(|c| c.length as usize).collect();
                let mut offset = 0;
                for c in &chunks {
                    assert_eq!(c.start as usize, offset, "{name}: {path}");
                    offset += c.length as usize;
                }
                assert_eq!(
                    split_all(&splitter, &data).unwrap(),
                    kopia,
                    "{name}: {path} ({splitter}, {} bytes)",
                    data.len()
                );
                multi_chunk += 1;
            }
        }
        assert!(multi_chunk >= 1, "{name}: no multi-chunk file");
        eprintln!("{name}: {multi_chunk} multi-chunk files cut as Kopia did ({splitter})");
    }
}

/// The pack trailers: postamble, encrypted local index (see the module docs).
#[test]
fn kopias_pack_local_indexes_reencode_to_the_same_bytes() {
    let Some(root) = fixtures("kopias_pack_local_indexes_reencode_to_the_same_bytes") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let (repo, _) = open_fixture(&root, name, tmp.path());
        let st = repo.storage();
        let mut checked = 0;
        for prefix in ["p", "q"] {
            for b in st.list_all(prefix).unwrap() {
                let data = st.get_blob(&b.id, 0, None).unwrap();
                let post = kopr_format::pack::Postamble::find(&data)
                    .unwrap_or_else(|| panic!("{name} {}: no postamble", b.id));
                let encrypted = post.local_index(&data).unwrap();
                let mut plain = Vec::new();
                repo.format()
                    .encryptor
                    .decrypt(encrypted, &post.local_index_iv, &mut plain)
                    .unwrap_or_else(|e| panic!("{name} {}: {e}", b.id));
                let index = Index::parse(plain.clone()).unwrap();
                let entries: Vec<_> = index.iter().map(|e| e.unwrap()).collect();
                let ours = encode_index_v2_stable(entries).unwrap();
                // the local copy (unlike the index blobs) ends with Kopia's 32 random bytes
                assert_eq!(
                    plain.len(),
                    ours.len() + RANDOM_SUFFIX_LEN,
                    "{name} {}",
                    b.id
                );
                assert!(
                    plain.starts_with(&ours),
                    "{name} {}: encoding differs",
                    b.id
                );
                // and is encrypted with the hash of its plaintext as IV
                assert_eq!(
                    repo.format().hasher.hash(&plain).as_bytes(),
                    &post.local_index_iv[..],
                    "{name} {}",
                    b.id
                );
                checked += 1;
            }
        }
        assert!(checked >= 2, "{name}: {checked} packs");
    }
}
