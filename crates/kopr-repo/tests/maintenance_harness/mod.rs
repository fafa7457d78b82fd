//! The maintenance tests' harness: a repository on an injected clock, an observer that
//! records maintenance's lines, and the fate of contents and packs.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use kopr_blob::clock::ManualClock;
use kopr_blob::memory::MemoryStorage;
use kopr_blob::BlobStorage;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::content::WriterIdentity;
use kopr_repo::format_manager::CreateOptions;
use kopr_repo::maintenance::{self, params, Mode, Observer, RunOptions, SafetyParameters};
use kopr_repo::snapshot::{
    create_snapshot, list_snapshots, restore, RestoreOptions, UploadOptions,
};
use kopr_repo::{OpenOptions, Repository};
use kopr_testkit::random_bytes;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub st: Arc<dyn BlobStorage>,
    pub tmp: tempfile::TempDir,
}

#[derive(Default)]
pub struct Lines(pub Mutex<Vec<String>>);

impl Observer for Lines {
    fn log(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

impl Lines {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub fn source(p: &Path) -> SourceInfo {
    SourceInfo {
        host: "h".into(),
        user_name: "u".into(),
        path: p.to_string_lossy().into_owned(),
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_pack_size(0)
    }

    /// A repository whose packs hold `max_pack_size` bytes (0: the default 20 MiB).
    pub fn with_pack_size(max_pack_size: u32) -> Self {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::TESTING_ONLY_INSECURE_ALGORITHM.into(),
            max_pack_size,
            ..Default::default()
        };
        Repository::create(&*st, &opts, "pw").unwrap();
        let h = Harness {
            clock,
            st,
            tmp: tempfile::tempdir().unwrap(),
        };
        let r = h.open("u");
        let mut p = params::get_params(&r).unwrap();
        p.owner = "u@h".into();
        params::set_params(&r, &p).unwrap();
        r.flush().unwrap();
        h
    }

    pub fn open(&self, user: &str) -> Repository {
        Repository::open(
            self.st.clone(),
            "pw",
            OpenOptions {
                clock: self.clock.clone(),
                identity: WriterIdentity {
                    user: user.into(),
                    host: "h".into(),
                },
                ..Default::default()
            },
        )
        .unwrap()
    }

    pub fn advance_hours(&self, h: u64) {
        self.clock.advance(StdDuration::from_secs(h * 3600));
    }

    /// Writes a directory with `files` random files and snapshots it; returns the manifest id.
    pub fn snapshot(
        &self,
        r: &Repository,
        name: &str,
        seed: u64,
        files: usize,
    ) -> kopr_format::snapshot::SnapshotId {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..files {
            std::fs::write(
                dir.join(format!("f{i}")),
                random_bytes(seed * 1000 + i as u64, 200_000),
            )
            .unwrap();
        }
        let m = create_snapshot(
            r,
            &dir,
            &source(&dir),
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        m.id
    }

    pub fn pack_ids(&self) -> Vec<String> {
        self.st
            .list_all("p")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    }

    pub fn cycle(&self, safety: SafetyParameters) -> Vec<String> {
        let r = self.open("u");
        let lines = Lines::default();
        maintenance::run(
            &r,
            &RunOptions {
                mode: Mode::Full,
                safety,
                force: false,
            },
            &lines,
        )
        .unwrap();
        lines.take()
    }

    pub fn restore_all(&self) {
        let r = self.open("u");
        for (i, m) in list_snapshots(&r, None).unwrap().iter().enumerate() {
            let dest = self.tmp.path().join(format!("restore-{}-{i}", m.id));
            let _ = std::fs::remove_dir_all(&dest);
            let root = m.root_entry.as_ref().unwrap();
            restore(&r, root, &dest, RestoreOptions::default()).unwrap();
            let src = Path::new(&m.source.path);
            for e in std::fs::read_dir(src).unwrap().flatten() {
                let got = std::fs::read(dest.join(e.file_name())).unwrap();
                assert_eq!(got, std::fs::read(e.path()).unwrap(), "{:?}", e.path());
            }
        }
    }
}

/// Another client whose snapshot straddles one task of the cycle: its contents (and index)
/// are written before task `at`, its manifest only before the task after it, as a snapshot
/// still uploading when GC lists the snapshots.
pub struct Interleave<'a> {
    pub h: &'a Harness,
    pub at: String,
    pub seed: u64,
    /// Directories under the harness's folder whose files the concurrent snapshot copies
    /// (deduplicated against the contents they were snapshotted into); none: new data.
    pub reuse: &'static [&'static str],
    pub done: Mutex<bool>,
    pub pending: Mutex<Option<(Repository, kopr_format::snapshot::SnapshotManifest)>>,
}

impl Interleave<'_> {
    pub fn upload_contents(&self) {
        let r = self.h.open("other");
        let dir = self.h.tmp.path().join(format!("conc-{}", self.seed));
        std::fs::create_dir_all(&dir).unwrap();
        if !self.reuse.is_empty() {
            // e.g. the deleted snapshot's bytes: deduplicated against contents that this very
            // cycle may be marking deleted, dropping or moving
            for from in self.reuse {
                for e in std::fs::read_dir(self.h.tmp.path().join(from)).unwrap() {
                    let e = e.unwrap();
                    let name = format!(
                        "{}-{}",
                        from.replace('/', "-"),
                        e.file_name().to_string_lossy()
                    );
                    std::fs::copy(e.path(), dir.join(name)).unwrap();
                }
            }
        } else {
            for i in 0..2 {
                std::fs::write(
                    dir.join(format!("f{i}")),
                    random_bytes(self.seed * 7 + i, 150_000),
                )
                .unwrap();
            }
        }
        let m = create_snapshot(
            &r,
            &dir,
            &source(&dir),
            &UploadOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        // hide the manifest again: the upload is "still running"
        r.manifests().delete(m.id.manifest_id()).unwrap();
        r.flush().unwrap();
        *self.pending.lock().unwrap() = Some((r, m));
    }

    pub fn finish_upload(&self) {
        if let Some((r, m)) = self.pending.lock().unwrap().take() {
            r.manifests().put(m.source.labels(), &m).unwrap();
            r.flush().unwrap();
        }
    }
}

impl Observer for Interleave<'_> {
    fn log(&self, _msg: &str) {}
    fn before_task(&self, task: &str) -> kopr_repo::Result<()> {
        self.finish_upload();
        if task == self.at {
            let mut done = self.done.lock().unwrap();
            if !*done {
                *done = true;
                self.upload_contents();
            }
        }
        Ok(())
    }
}

pub const FULL_TASKS: &[&str] = &[
    "snapshot-gc",
    "full-rewrite-contents",
    "full-drop-deleted-content",
    "full-delete-blobs",
    "compact-single-epoch",
    "advance-epoch",
    "generate-epoch-range-index",
    "cleanup-epoch-markers",
    "delete-superseded-epoch-indexes",
    "cleanup-logs",
];
