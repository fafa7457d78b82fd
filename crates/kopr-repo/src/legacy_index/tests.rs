//! Tests of the legacy index manager: compaction, cleanup, Kopia's blob names.

use super::*;
use crate::format_manager::{CreateOptions, FormatManager};
use crate::repository::{OpenOptions, Repository};
use kopr_blob::clock::ManualClock;
use kopr_blob::memory::MemoryStorage;
use kopr_format::repository_blob::{RepositoryBlob, RepositoryConfig, REPOSITORY_BLOB_ID};

const PW: &str = "pw";

/// Rewrites the format blob of the repository in `st` with `edit` applied to its config.
fn edit_config(st: &dyn BlobStorage, edit: impl FnOnce(&mut RepositoryConfig)) {
    let mut blob =
        RepositoryBlob::parse(&st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()).unwrap();
    let key = blob.derive_format_key(PW).unwrap();
    let mut cfg = blob.decrypt_config(&key).unwrap();
    edit(&mut cfg);
    blob.encrypt_config(&cfg, &key).unwrap();
    st.put_blob(REPOSITORY_BLOB_ID, &blob.to_bytes(), &PutOptions::default())
        .unwrap();
}

/// A repository as `kopia repository create --format-version=1` makes it.
fn format_v1(st: &dyn BlobStorage) {
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
        ..CreateOptions::default()
    };
    Repository::create(st, &opts, PW).unwrap();
    edit_config(st, |c| {
        c.version = 1;
        c.index_version = 1;
        c.epoch_parameters = Default::default();
        c.enable_password_change = false;
    });
}

fn setup() -> (Arc<ManualClock>, Arc<dyn BlobStorage>) {
    let clock = Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
    ));
    let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
    format_v1(&*st);
    (clock, st)
}

fn open(st: &Arc<dyn BlobStorage>, clock: &Arc<ManualClock>) -> Repository {
    Repository::open(
        st.clone(),
        PW,
        OpenOptions {
            clock: clock.clone(),
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

fn ids(st: &dyn BlobStorage, prefix: &str) -> Vec<String> {
    st.list_all(prefix)
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect()
}

/// Writes `n` flushes of one small content each; returns the content ids and data.
fn write_flushes(
    repo: &Repository,
    first: usize,
    n: usize,
) -> Vec<(kopr_format::index::ContentId, Vec<u8>)> {
    (first..first + n)
        .map(|i| {
            let data = format!("content number {i}").into_bytes();
            let id = repo.contents().write_content(&data, None, None).unwrap();
            repo.contents().flush().unwrap();
            (id, data)
        })
        .collect()
}

#[test]
fn flush_writes_kopia_legacy_index_blobs_in_index_v1() {
    let (clock, st) = setup();
    let repo = open(&st, &clock);
    assert!(repo.contents().legacy_indexes().is_some());
    let data = b"hello legacy world".to_vec();
    // Compression is requested but index v1 cannot record it: stored as is.
    let id = repo
        .contents()
        .write_content(&data, None, kopr_format::compression::by_name("zstd"))
        .unwrap();
    repo.contents().flush().unwrap();
    assert!(ids(&*st, "x").is_empty(), "no epoch blobs");
    let n = ids(&*st, INDEX_PREFIX);
    assert_eq!(n.len(), 1, "{n:?}");
    let (hash, session) = n[0][1..].split_once('-').unwrap();
    assert_eq!(hash.len(), 32, "{n:?}");
    assert!(session.starts_with('s') && !session.contains('-'), "{n:?}");
    let format = repo.format().clone();
    let plain = blob_crypto::decrypt_blob(
        &format.encryptor,
        &st.get_blob(&n[0], 0, None).unwrap(),
        &n[0],
    )
    .unwrap();
    assert_eq!(plain[0], 1, "index v1");
    // The pack starts with Kopia's checksummed copy of the format blob.
    let packs = ids(&*st, "p");
    assert_eq!(packs.len(), 1);
    let pack = st.get_blob(&packs[0], 0, None).unwrap();
    let format_bytes = st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap();
    assert_eq!(
        &pack[2..2 + format_bytes.len()],
        &format_bytes[..],
        "format copy"
    );

    let again = open(&st, &clock);
    let e = again.contents().content_info(&id).unwrap().unwrap();
    assert_eq!(e.original_length as usize, data.len(), "from the overhead");
    assert_eq!(e.compression_header_id, 0);
    assert_eq!(again.contents().get_content(&id).unwrap(), data);
    // The pack's own index copy is v1 too and recovers the same entry.
    let local = again.contents().pack_local_index(&packs[0]).unwrap();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].original_length as usize, data.len());
}

#[test]
fn compaction_follows_kopia_logs_and_settle_times() {
    let (clock, st) = setup();
    let repo = open(&st, &clock);
    let legacy = repo.contents().legacy_indexes().unwrap();
    let opts = CompactOptions {
        max_small_blobs: 8,
        ..CompactOptions::default()
    };
    let mut all = write_flushes(&repo, 0, 7);
    let stats = legacy
        .compact(repo.contents().index_cache(), &opts)
        .unwrap();
    assert_eq!(
        stats,
        CompactStats::default(),
        "7 blobs are below the threshold"
    );

    all.extend(write_flushes(&repo, 7, 1));
    let first_inputs = ids(&*st, INDEX_PREFIX);
    assert_eq!(first_inputs.len(), 8);
    let stats = legacy
        .compact(repo.contents().index_cache(), &opts)
        .unwrap();
    assert_eq!((stats.inputs, stats.outputs), (8, 1));
    assert_eq!(stats.deleted_index_blobs, 0, "inputs stay until settled");
    let active = legacy.active_index_blobs().unwrap();
    assert_eq!(active.len(), 1);
    assert!(
        !active[0].id.contains('-'),
        "compacted blobs have no suffix"
    );
    assert_eq!(ids(&*st, INDEX_PREFIX).len(), 9, "inputs still stored");
    let m1 = ids(&*st, COMPACTION_LOG_PREFIX);
    assert_eq!(m1.len(), 1);
    repo.contents().refresh().unwrap();
    for (id, data) in &all {
        assert_eq!(&repo.contents().get_content(id).unwrap(), data);
    }

    // Two hours later another compaction deletes the first one's inputs and schedules
    // its log for cleanup.
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    all.extend(write_flushes(&repo, 8, 8));
    let stats = legacy
        .compact(repo.contents().index_cache(), &opts)
        .unwrap();
    assert_eq!(stats.deleted_index_blobs, 8);
    for id in &first_inputs {
        assert!(st.get_metadata(id).is_err(), "{id} deleted");
    }
    assert_eq!(ids(&*st, CLEANUP_PREFIX).len(), 1);
    assert!(
        st.get_metadata(&m1[0]).is_ok(),
        "log kept until the cleanup settles"
    );

    // And two hours after that, the first log and its cleanup blob go too.
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    all.extend(write_flushes(&repo, 16, 8));
    legacy
        .compact(repo.contents().index_cache(), &opts)
        .unwrap();
    assert!(st.get_metadata(&m1[0]).is_err(), "first log deleted");
    assert_eq!(
        ids(&*st, CLEANUP_PREFIX).len(),
        1,
        "only the newest cleanup"
    );

    let fresh = open(&st, &clock);
    assert_eq!(fresh.contents().index_blobs().unwrap().len(), 1);
    for (id, data) in &all {
        assert_eq!(&fresh.contents().get_content(id).unwrap(), data);
    }
}

#[test]
fn dropping_deleted_contents_compacts_everything_without_them() {
    let (clock, st) = setup();
    let repo = open(&st, &clock);
    let kept = write_flushes(&repo, 0, 2);
    let gone = write_flushes(&repo, 2, 1);
    repo.contents().delete_content(&gone[0].0).unwrap();
    repo.contents().flush().unwrap();
    clock.advance(std::time::Duration::from_secs(10));
    let opts = CompactOptions {
        all_indexes: true,
        drop_deleted_before: Some(clock.now()),
        disable_eventual_consistency_safety: true,
        ..CompactOptions::default()
    };
    let legacy = repo.contents().legacy_indexes().unwrap();
    let stats = legacy
        .compact(repo.contents().index_cache(), &opts)
        .unwrap();
    assert_eq!(stats.dropped_contents, 1);
    assert_eq!(stats.inputs, 4);
    assert_eq!(ids(&*st, INDEX_PREFIX).len(), 1, "inputs deleted at once");
    assert!(ids(&*st, COMPACTION_LOG_PREFIX).is_empty());
    assert!(ids(&*st, CLEANUP_PREFIX).is_empty());
    let fresh = open(&st, &clock);
    assert_eq!(fresh.contents().content_info(&gone[0].0).unwrap(), None);
    for (id, data) in &kept {
        assert_eq!(&fresh.contents().get_content(id).unwrap(), data);
    }
}

#[test]
fn the_upgrade_poison_blob_is_not_an_index() {
    let (clock, st) = setup();
    st.put_blob(POISON_BLOB_ID, b"poison", &PutOptions::default())
        .unwrap();
    let repo = open(&st, &clock);
    assert!(repo.contents().index_blobs().unwrap().is_empty());
}

#[test]
fn unsupported_formats_are_refused_naming_what() {
    type Edit = Box<dyn Fn(&mut RepositoryConfig)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c.version = 4),
            "unsupported repository: format version 4",
        ),
        (Box::new(|c| c.index_version = 3), "index format version 3"),
        (
            Box::new(|c| {
                c.required_features = Some(serde_json::json!([
                    {"feature": "future-thing", "ifNotUnderstood": {"warn": false}}
                ]))
            }),
            "required features future-thing",
        ),
    ];
    for (edit, want) in cases {
        let (_, st) = setup();
        edit_config(&*st, edit);
        let err = FormatManager::open(&*st, PW).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A feature Kopia only warns about is no reason to refuse.
    let (_, st) = setup();
    edit_config(&*st, |c| {
        c.required_features = Some(serde_json::json!([
            {"feature": "cosmetic", "ifNotUnderstood": {"warn": true}}
        ]))
    });
    FormatManager::open(&*st, PW).unwrap();
}

#[test]
fn schedule_key_comes_from_the_format_key_without_password_change() {
    let (_, st) = setup();
    let fm = FormatManager::open(&*st, PW).unwrap();
    let from_format_key = kopr_format::crypto::derive_key_from_master_key(
        &fm.format_key,
        &fm.repository_blob.unique_id,
        b"maintenance schedule",
        32,
    )
    .unwrap();
    assert_eq!(
        fm.derive_key(b"maintenance schedule", 32).unwrap(),
        from_format_key
    );
    assert_ne!(fm.format_key, fm.config.master_key);
}
