//! Behaviour of the content layer over real storage: round trips, deduplication, reopening,
//! concurrent writers, corruption detection, and the pack/index layout Kopia expects.

use kopr_testkit::random_bytes;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use kopr_blob::clock::ManualClock;
use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::memory::MemoryStorage;
use kopr_blob::{BlobStorage, PutOptions};
use kopr_format::index::Index;
use kopr_format::pack::Postamble;
use kopr_format::repository_blob::RepositoryBlob;
use kopr_format::{blob_crypto, crypto};
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::{OpenOptions, RepoError, Repository};

const PW: &str = "correct horse";

fn fast_create_options() -> CreateOptions {
    CreateOptions {
        // scrypt is covered by the format crate's vectors; pbkdf2 keeps these tests quick.
        key_derivation: crypto::PBKDF2_ALGORITHM.into(),
        ..CreateOptions::default()
    }
}

fn new_repo(st: Arc<dyn BlobStorage>) -> Repository {
    Repository::create(&*st, &fast_create_options(), PW).unwrap();
    Repository::open(st, PW, OpenOptions::default()).unwrap()
}

#[test]
fn contents_round_trip_before_and_after_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::create(dir.path()).unwrap());
    let repo = new_repo(st.clone());
    let cm = repo.contents();
    let small = b"hello kopr".to_vec();
    let text = "the quick brown fox jumps over the lazy dog "
        .repeat(1000)
        .into_bytes();
    let rnd = random_bytes(1, 300_000);
    let a = cm.write_content(&small, None, None).unwrap();
    let b = cm
        .write_content(
            &text,
            None,
            kopr_format::compression::by_name("zstd-fastest"),
        )
        .unwrap();
    let c = cm
        .write_content(
            &rnd,
            Some(b'k'),
            kopr_format::compression::by_name("zstd-fastest"),
        )
        .unwrap();
    assert_eq!(c.prefix(), Some(b'k'));
    // readable while still in open packs
    assert_eq!(cm.get_content(&a).unwrap(), small);
    assert_eq!(cm.get_content(&b).unwrap(), text);
    repo.flush().unwrap();
    assert_eq!(cm.get_content(&c).unwrap(), rnd);
    drop(repo);

    let repo = Repository::open(st.clone(), PW, OpenOptions::default()).unwrap();
    let cm = repo.contents();
    assert_eq!(cm.get_content(&a).unwrap(), small);
    assert_eq!(cm.get_content(&b).unwrap(), text);
    assert_eq!(cm.get_content(&c).unwrap(), rnd);
    let info_b = cm.content_info(&b).unwrap().unwrap();
    assert_ne!(
        info_b.compression_header_id, 0,
        "compressible data is compressed"
    );
    assert!(info_b.packed_length < info_b.original_length);
    let info_c = cm.content_info(&c).unwrap().unwrap();
    assert_eq!(
        info_c.compression_header_id, 0,
        "random data is stored uncompressed"
    );
    assert!(
        info_c.pack_blob_id.starts_with('q'),
        "prefixed contents go to q packs"
    );
    assert!(cm
        .content_info(&a)
        .unwrap()
        .unwrap()
        .pack_blob_id
        .starts_with('p'));
    let listed: Vec<_> = cm
        .list_contents(false)
        .unwrap()
        .into_iter()
        .map(|e| e.content_id)
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(listed.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn second_write_is_deduplicated_and_writes_no_pack() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let repo = new_repo(st.clone());
    let data = random_bytes(2, 100_000);
    let id1 = repo.contents().write_content(&data, None, None).unwrap();
    repo.flush().unwrap();
    let packs_before = st.list_all("p").unwrap().len();
    drop(repo);
    let repo = Repository::open(st.clone(), PW, OpenOptions::default()).unwrap();
    let id2 = repo.contents().write_content(&data, None, None).unwrap();
    assert_eq!(id1, id2);
    repo.flush().unwrap();
    assert_eq!(st.list_all("p").unwrap().len(), packs_before);
    assert_eq!(repo.contents().write_stats().deduplicated_contents, 1);
    assert_eq!(repo.contents().write_stats().written_contents, 0);
}

#[test]
fn wrong_password_is_refused_and_nothing_is_written() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    Repository::create(&*st, &fast_create_options(), PW).unwrap();
    let before = st.list_all("").unwrap();
    let err = Repository::open(st.clone(), "wrong", OpenOptions::default()).unwrap_err();
    assert!(matches!(err, RepoError::InvalidPassword), "{err}");
    assert_eq!(st.list_all("").unwrap(), before);
    let err = Repository::create(&*st, &fast_create_options(), PW).unwrap_err();
    assert!(matches!(err, RepoError::AlreadyInitialized(_)));
    let empty: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    assert!(matches!(
        Repository::open(empty, PW, OpenOptions::default()).unwrap_err(),
        RepoError::NotInitialized(_)
    ));
}

#[test]
fn flipped_bit_in_a_pack_is_reported_as_corrupt_content() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let repo = new_repo(st.clone());
    let id = repo
        .contents()
        .write_content(b"precious data", None, None)
        .unwrap();
    repo.flush().unwrap();
    let info = repo.contents().content_info(&id).unwrap().unwrap();
    let mut pack = st.get_blob(&info.pack_blob_id, 0, None).unwrap();
    pack[info.pack_offset as usize + 3] ^= 0x10;
    st.put_blob(&info.pack_blob_id, &pack, &PutOptions::default())
        .unwrap();
    let err = repo.contents().get_content(&id).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RepoError::CorruptContent { .. }), "{msg}");
    assert!(msg.contains(&id.to_string()), "{msg}");
}

#[test]
fn packs_carry_a_local_index_and_index_blobs_are_epoch_managed() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let repo = new_repo(st.clone());
    let ids: Vec<_> = (0..20)
        .map(|i| {
            repo.contents()
                .write_content(&random_bytes(i, 5000), None, None)
                .unwrap()
        })
        .collect();
    repo.flush().unwrap();
    assert!(
        st.list_all("s").unwrap().is_empty(),
        "session markers are removed after flush"
    );
    let packs = st.list_all("p").unwrap();
    assert_eq!(packs.len(), 1);
    let pack_id = &packs[0].id;
    assert_eq!(
        pack_id.split('-').count(),
        2,
        "pack id is p<random>-<session>"
    );
    assert_eq!(pack_id.split('-').next().unwrap().len(), 33);
    let pack = st.get_blob(pack_id, 0, None).unwrap();
    let post = Postamble::find(&pack).expect("postamble");
    let enc = &repo.format().encryptor;
    let mut local = Vec::new();
    enc.decrypt(
        post.local_index(&pack).unwrap(),
        &post.local_index_iv,
        &mut local,
    )
    .unwrap();
    let local = Index::parse(local).unwrap();
    let mut local_ids: Vec<_> = local.iter().map(|e| e.unwrap().content_id).collect();
    let mut expect = ids.clone();
    expect.sort();
    local_ids.sort();
    assert_eq!(local_ids, expect);

    let index_blobs = st.list_all("xn0_").unwrap();
    assert_eq!(index_blobs.len(), 1);
    let ib = &index_blobs[0];
    let plain =
        blob_crypto::decrypt_blob(enc, &st.get_blob(&ib.id, 0, None).unwrap(), &ib.id).unwrap();
    assert_eq!(Index::parse(plain).unwrap().len(), 20);
    // the id names the session that wrote it
    assert!(ib.id.split('-').nth(1).unwrap().starts_with('s'));
}

#[test]
fn concurrent_writers_in_one_process_store_everything_once() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let repo = Arc::new(new_repo(st.clone()));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let repo = repo.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        // half of the data is shared between threads
                        let seed = if i % 2 == 0 { 1000 + i } else { t * 1000 + i };
                        let data = random_bytes(seed, 20_000);
                        (
                            repo.contents()
                                .write_content(
                                    &data,
                                    None,
                                    kopr_format::compression::by_name("zstd-fastest"),
                                )
                                .unwrap(),
                            data,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    repo.flush().unwrap();
    let reopened = Repository::open(st, PW, OpenOptions::default()).unwrap();
    for (id, data) in &written {
        assert_eq!(&reopened.contents().get_content(id).unwrap(), data);
    }
    let unique: std::collections::HashSet<_> = written.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        reopened.contents().list_contents(false).unwrap().len(),
        unique.len()
    );
}

#[test]
fn two_repositories_writing_at_once_see_each_other_after_refresh() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
    Repository::create(&*st, &fast_create_options(), PW).unwrap();
    let opts = OpenOptions {
        clock: clock.clone(),
        ..OpenOptions::default()
    };
    let r1 = Repository::open(st.clone(), PW, opts.clone()).unwrap();
    let r2 = Repository::open(st.clone(), PW, opts).unwrap();
    let a = r1
        .contents()
        .write_content(b"from one", None, None)
        .unwrap();
    let b = r2
        .contents()
        .write_content(b"from two", None, None)
        .unwrap();
    r1.flush().unwrap();
    r2.flush().unwrap();
    assert!(
        r1.contents().content_info(&b).unwrap().is_none(),
        "not visible before refresh"
    );
    r1.contents().refresh().unwrap();
    assert_eq!(r1.contents().get_content(&b).unwrap(), b"from two");
    assert_eq!(
        r2.contents().get_content(&a).unwrap_or_default(),
        Vec::<u8>::new()
    );
    r2.contents().refresh().unwrap();
    assert_eq!(r2.contents().get_content(&a).unwrap(), b"from one");
}

#[test]
fn deleted_contents_are_hidden_from_listing_but_kept_in_index() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    let repo = new_repo(st.clone());
    let id = repo
        .contents()
        .write_content(b"to be deleted", None, None)
        .unwrap();
    repo.flush().unwrap();
    repo.contents().delete_content(&id).unwrap();
    repo.flush().unwrap();
    let reopened = Repository::open(st, PW, OpenOptions::default()).unwrap();
    let e = reopened.contents().content_info(&id).unwrap().unwrap();
    assert!(e.deleted);
    assert!(reopened.contents().list_contents(false).unwrap().is_empty());
    assert_eq!(reopened.contents().list_contents(true).unwrap().len(), 1);
    // writing it again undeletes it with a newer timestamp
    reopened
        .contents()
        .write_content(b"to be deleted", None, None)
        .unwrap();
    reopened.flush().unwrap();
    let e2 = reopened.contents().content_info(&id).unwrap().unwrap();
    assert!(!e2.deleted && e2.timestamp_seconds > e.timestamp_seconds - 1);
}

#[test]
fn format_blob_is_kopia_shaped_json() {
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
    Repository::create(&*st, &fast_create_options(), PW).unwrap();
    let raw = st.get_blob("kopia.repository", 0, None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "tool",
        "buildVersion",
        "buildInfo",
        "uniqueID",
        "keyAlgo",
        "encryption",
        "encryptedBlockFormat",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(v["encryption"], "AES256_GCM");
    let blob = RepositoryBlob::parse(&raw).unwrap();
    assert_eq!(blob.unique_id.len(), 32);
    let cfg = blob
        .decrypt_config(&blob.derive_format_key(PW).unwrap())
        .unwrap();
    assert_eq!(cfg.hash, "BLAKE3-256-128");
    assert_eq!(cfg.encryption, "AES256-GCM-HMAC-SHA256");
    assert_eq!(cfg.splitter, "DYNAMIC-1M-BUZHASH");
    assert_eq!(cfg.version, 3);
    assert_eq!(cfg.max_pack_size, 20 << 20);
    assert!(st.get_blob("kopia.blobcfg", 0, None).is_ok());
}

#[test]
fn every_hash_and_encryption_combination_round_trips() {
    for hash in kopr_format::hashing::supported_hash_algorithms() {
        for enc in kopr_format::encryption::supported_encryption_algorithms() {
            let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
            let opts = CreateOptions {
                hash: hash.to_string(),
                encryption: enc.to_string(),
                ..fast_create_options()
            };
            Repository::create(&*st, &opts, PW).unwrap();
            let repo = Repository::open(st.clone(), PW, OpenOptions::default()).unwrap();
            let data = random_bytes(7, 10_000);
            let id = repo
                .contents()
                .write_content(&data, Some(b'm'), kopr_format::compression::by_name("zstd"))
                .unwrap();
            repo.flush().unwrap();
            let reopened = Repository::open(st, PW, OpenOptions::default()).unwrap();
            assert_eq!(
                reopened.contents().get_content(&id).unwrap(),
                data,
                "{hash} {enc}"
            );
            assert_eq!(reopened.format().config.hash, *hash);
        }
    }
}
