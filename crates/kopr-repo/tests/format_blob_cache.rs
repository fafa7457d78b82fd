//! The local copies of `kopia.repository` and `kopia.blobcfg` (Kopia's format blob cache):
//! used while younger than the validity by the injected clock, never trusted across
//! repositories, dropped by this client's own writes of the format and by a mismatch with the
//! stored format; a bad copy only costs a read of the storage.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::counting::CountingStorage;
use kopr_blob::clock::ManualClock;
use kopr_blob::filesystem::FilesystemStorage;
use kopr_blob::BlobStorage;
use kopr_format::repository_blob::{BLOBCFG_BLOB_ID, REPOSITORY_BLOB_ID};
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::{format_params, OpenOptions, RepoError, Repository};

const MINUTE: Duration = Duration::from_secs(60);

struct Env {
    tmp: tempfile::TempDir,
    st: Arc<dyn BlobStorage>,
    counting: Arc<CountingStorage>,
    clock: Arc<ManualClock>,
    cache: PathBuf,
}

fn create(dir: &std::path::Path, password: &str) -> Arc<dyn BlobStorage> {
    let st: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::create(dir).unwrap());
    let opts = CreateOptions {
        key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
        ..Default::default()
    };
    Repository::create(&*st, &opts, password).unwrap();
    st
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let st = create(&tmp.path().join("repo"), "pw");
    Env {
        counting: Arc::new(CountingStorage::new(st.clone())),
        st,
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
        cache: tmp.path().join("cache"),
        tmp,
    }
}

impl Env {
    fn options(&self, nanos: i64) -> OpenOptions {
        OpenOptions {
            cache_dir: Some(self.cache.clone()),
            clock: self.clock.clone(),
            format_blob_cache_nanos: nanos,
            ..OpenOptions::default()
        }
    }

    fn open_with(&self, password: &str, nanos: i64) -> kopr_repo::Result<Repository> {
        Repository::open(self.counting.clone(), password, self.options(nanos))
    }

    fn open(&self, password: &str) -> Repository {
        self.open_with(password, 0).unwrap()
    }

    /// Reads of (`kopia.repository`, `kopia.blobcfg`) from storage so far.
    fn gets(&self) -> (u64, u64) {
        let g = self.counting.gets.lock().unwrap();
        let n = |id: &str| g.get(id).copied().unwrap_or(0);
        (n(REPOSITORY_BLOB_ID), n(BLOBCFG_BLOB_ID))
    }

    /// Another client (no cache) sets the maximum pack size.
    fn other_client_sets_pack_size(&self, mib: u32) {
        let fm = kopr_repo::format_manager::FormatManager::open(&*self.st, "pw").unwrap();
        let mut c = fm.config.clone();
        c.max_pack_size = mib << 20;
        format_params::write_parameters(&fm, &*self.st, &c, &fm.blob_config).unwrap();
    }
}

fn pack_size_mib(r: &Repository) -> u32 {
    r.format().config.effective_max_pack_size() >> 20
}

#[test]
fn a_second_open_within_the_validity_reads_neither_format_blob() {
    let e = env();
    e.open("pw");
    assert_eq!(e.gets(), (1, 1));
    assert!(e.cache.join(REPOSITORY_BLOB_ID).is_file());
    assert!(e.cache.join(BLOBCFG_BLOB_ID).is_file());
    // The copy is the blob as stored.
    assert_eq!(
        std::fs::read(e.cache.join(REPOSITORY_BLOB_ID)).unwrap(),
        e.st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()
    );
    e.open("pw");
    e.clock.advance(14 * MINUTE + Duration::from_secs(59));
    let r = e.open("pw");
    assert_eq!(e.gets(), (1, 1), "both blobs came from the cache");
    assert_eq!(pack_size_mib(&r), 20);
    // Past 15 minutes both are read again, and the refreshed copies are used anew.
    e.clock.advance(Duration::from_secs(2));
    e.open("pw");
    assert_eq!(e.gets(), (2, 2));
    e.open("pw");
    assert_eq!(e.gets(), (2, 2));
}

#[test]
fn a_negative_duration_reads_storage_on_every_open() {
    let e = env();
    e.open_with("pw", -1).unwrap();
    e.open_with("pw", -1).unwrap();
    assert_eq!(e.gets(), (2, 2));
}

#[test]
fn durations_are_capped_at_15_minutes_and_shorter_ones_honoured() {
    let e = env();
    let hour = 3_600_000_000_000;
    e.open_with("pw", hour).unwrap();
    e.clock.advance(15 * MINUTE + Duration::from_secs(1));
    e.open_with("pw", hour).unwrap();
    assert_eq!(e.gets(), (2, 2), "an hour is used as 15 minutes");
    let second = 1_000_000_000;
    e.open_with("pw", second).unwrap();
    assert_eq!(e.gets(), (2, 2));
    e.clock.advance(Duration::from_secs(2));
    e.open_with("pw", second).unwrap();
    assert_eq!(e.gets(), (3, 3));
}

#[test]
fn a_corrupt_copy_is_read_again_from_storage() {
    let e = env();
    e.open("pw");
    for id in [REPOSITORY_BLOB_ID, BLOBCFG_BLOB_ID] {
        std::fs::write(e.cache.join(id), b"{ not a format blob").unwrap();
    }
    let r = e.open("pw");
    assert_eq!(e.gets(), (2, 2));
    assert_eq!(pack_size_mib(&r), 20);
    assert_eq!(
        std::fs::read(e.cache.join(REPOSITORY_BLOB_ID)).unwrap(),
        e.st.get_blob(REPOSITORY_BLOB_ID, 0, None).unwrap()
    );
    e.open("pw");
    assert_eq!(e.gets(), (2, 2), "the rewritten copies are used");
}

#[test]
fn a_copy_from_another_repository_is_never_used() {
    let e = env();
    // Another repository with the same password: its format would decrypt.
    let other = create(&e.tmp.path().join("other"), "pw");
    let mine = e.open("pw").format().unique_id_hex();
    Repository::open(other.clone(), "pw", e.options(0)).unwrap();
    let theirs = kopr_repo::format_manager::FormatManager::open(&*other, "pw")
        .unwrap()
        .unique_id_hex();
    assert_ne!(mine, theirs);
    // The directory now holds the other repository's copies; this one reads its own.
    let r = e.open("pw");
    assert_eq!(r.format().unique_id_hex(), mine);
    assert_eq!(e.gets(), (2, 2));
}

#[test]
fn a_wrong_password_is_still_refused_and_a_right_one_still_opens() {
    let e = env();
    e.open("pw");
    // The cached copy does not open with it, nor does the storage's, read once more.
    assert!(matches!(
        e.open_with("wrong", 0),
        Err(RepoError::InvalidPassword)
    ));
    assert_eq!(e.gets().0, 2);
    e.open("pw");
}

#[test]
fn this_clients_password_change_drops_its_copies() {
    let e = env();
    let r = e.open("pw");
    r.format().change_password(&*e.st, "new").unwrap();
    assert!(!e.cache.join(REPOSITORY_BLOB_ID).exists());
    assert!(!e.cache.join(BLOBCFG_BLOB_ID).exists());
    drop(r);
    e.open("new");
    // The old password no longer opens it (no copy of the old format is left to open).
    assert!(matches!(
        e.open_with("pw", 0),
        Err(RepoError::InvalidPassword)
    ));
}

#[test]
fn another_clients_password_change_opens_with_the_new_password_at_once() {
    let e = env();
    e.open("pw");
    let fm = kopr_repo::format_manager::FormatManager::open(&*e.st, "pw").unwrap();
    fm.change_password(&*e.st, "new").unwrap();
    // Within the validity the copy still opens with the old password, as in Kopia...
    e.open("pw");
    // ...and the new password is never refused because of that copy: storage is read again.
    let before = e.gets().0;
    e.open("new");
    assert_eq!(e.gets().0, before + 1);
    assert!(matches!(
        e.open_with("pw", 0),
        Err(RepoError::InvalidPassword)
    ));
}

#[test]
fn this_clients_parameter_change_is_seen_at_once() {
    let e = env();
    let r = e.open("pw");
    let fm = r.format();
    let mut c = fm.config.clone();
    c.max_pack_size = 30 << 20;
    format_params::write_parameters(fm, &**r.storage(), &c, &fm.blob_config).unwrap();
    drop(r);
    assert_eq!(pack_size_mib(&e.open("pw")), 30);
}

#[test]
fn another_clients_parameter_change_is_seen_after_the_validity() {
    let e = env();
    e.open("pw");
    e.other_client_sets_pack_size(30);
    // Kopia's behaviour: the cached format stays in use until it is 15 minutes old.
    assert_eq!(pack_size_mib(&e.open("pw")), 20);
    e.clock.advance(15 * MINUTE);
    assert_eq!(pack_size_mib(&e.open("pw")), 30);
}

#[test]
fn a_write_refused_for_a_changed_format_drops_the_copies() {
    let e = env();
    e.open("pw");
    e.other_client_sets_pack_size(30);
    let r = e.open("pw");
    assert_eq!(pack_size_mib(&r), 20, "opened from the stale copy");
    let fm = r.format();
    let mut c = fm.config.clone();
    c.max_pack_size = 40 << 20;
    // The check compares with the storage, not with the copy.
    let err = format_params::write_parameters(fm, &**r.storage(), &c, &fm.blob_config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed since"), "{err}");
    let err = fm
        .change_password(&**r.storage(), "new")
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed since"), "{err}");
    drop(r);
    // Running the command again works at once: no 15 minutes with the stale copy.
    assert_eq!(pack_size_mib(&e.open("pw")), 30);
}

#[test]
fn an_unusable_cache_directory_only_disables_the_cache() {
    let e = env();
    // The cache directory's path is a file: nothing can be cached under it.
    std::fs::write(&e.cache, b"not a directory").unwrap();
    e.open("pw");
    e.open("pw");
    assert_eq!(e.gets(), (2, 2));
}

#[test]
fn a_raw_format_write_drops_the_copies_it_is_given() {
    // What `repository upgrade` does: the format read from storage, written back changed.
    let e = env();
    e.open("pw");
    let mut raw = format_params::RawFormat::open(&*e.st, "pw").unwrap();
    raw.blob_cache = kopr_repo::format_blob_cache::FormatBlobCache::new(
        Some(e.cache.clone()),
        0,
        e.clock.clone(),
    );
    let mut c = raw.config.clone();
    c.max_pack_size = 30 << 20;
    raw.write_config(&*e.st, c).unwrap();
    assert!(!e.cache.join(REPOSITORY_BLOB_ID).exists());
    assert_eq!(pack_size_mib(&e.open("pw")), 30);
}

/// Two repositories with one password in storages of one name (as buckets of one name on two
/// S3 endpoints) sharing a cache directory: each takes the other's copy of the format (its
/// check, by storage name, vouches for it, and the password opens it), its indexes then do
/// not decrypt, and the format is read from storage; each opens as itself and reads its data.
#[test]
fn a_copy_of_another_repository_under_the_same_storage_name_only_costs_a_read() {
    let tmp = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..OpenOptions::default()
    };
    let repository = |data: &[u8]| {
        let st: Arc<dyn BlobStorage> = Arc::new(kopr_blob::memory::MemoryStorage::new());
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
            ..Default::default()
        };
        Repository::create(&*st, &opts, "pw").unwrap();
        let r = Repository::open(st.clone(), "pw", OpenOptions::default()).unwrap();
        let id = r.contents().write_content(data, None, None).unwrap();
        r.flush().unwrap();
        (st, id)
    };
    let (a, a_id) = repository(b"first repository");
    let (b, b_id) = repository(b"second repository");
    assert_eq!(a.display_name(), b.display_name());
    for _ in 0..2 {
        for (st, id, data) in [
            (&a, &a_id, &b"first repository"[..]),
            (&b, &b_id, &b"second repository"[..]),
        ] {
            let r = Repository::open(st.clone(), "pw", options.clone()).unwrap();
            assert_eq!(r.contents().get_content(id).unwrap(), data);
        }
    }
}
