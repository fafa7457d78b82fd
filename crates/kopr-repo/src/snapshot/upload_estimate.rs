//! The estimating pre-walk of an upload (Kopia's "estimating"): counts the files and bytes a
//! snapshot would take, with the same ignore rules, and publishes them to the progress counters.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::upload::is_cache_dir;
use super::ProgressCounters;

/// The pre-walk behind [`UploadOptions::estimate`]: counts the files and bytes a snapshot would
/// take, with the same ignore rules, and publishes the count to the progress counters.
pub(super) struct Estimator<'a> {
    progress: &'a ProgressCounters,
    stop: &'a AtomicBool,
    dot_ignore_files: Vec<String>,
    rules: Vec<crate::ignore::Rule>,
    /// Cache directories count as empty, as in the snapshot.
    skip_cache_dirs: bool,
    /// The stand-in (previous snapshot's totals), never lowered while the walk runs.
    floor: (u64, u64),
    files: u64,
    bytes: u64,
}

impl<'a> Estimator<'a> {
    /// A pre-walk with the policy's ignore files and cache-directory rule, starting from the
    /// root's `rules`; the estimate already published is its floor.
    pub(super) fn new(
        progress: &'a ProgressCounters,
        stop: &'a AtomicBool,
        policy: &kopr_format::policy::Policy,
        rules: Vec<crate::ignore::Rule>,
    ) -> Self {
        let before = progress.get();
        Estimator {
            progress,
            stop,
            dot_ignore_files: policy.files.dot_ignore_files.clone(),
            rules,
            skip_cache_dirs: policy.files.ignore_cache_dirs.unwrap_or(true),
            floor: (before.estimated_files, before.estimated_bytes),
            files: 0,
            bytes: 0,
        }
    }

    pub(super) fn run(mut self, dir: &Path) {
        self.walk(dir, "");
        if !self.stop.load(Ordering::Relaxed) {
            self.progress.set_estimate(self.files, self.bytes, true);
        }
    }

    fn walk(&mut self, dir: &Path, rel: &str) {
        if self.skip_cache_dirs && is_cache_dir(dir) {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let rules_before = self.rules.len();
        for name in &self.dot_ignore_files {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                self.rules.extend(crate::ignore::parse(rel, &text));
            }
        }
        for e in rd.flatten() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(md) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if crate::ignore::is_ignored(&self.rules, &child_rel, md.is_dir()) {
                continue;
            }
            if md.is_dir() {
                self.walk(&e.path(), &child_rel);
            } else if md.is_file() {
                self.files += 1;
                self.bytes += md.len();
            }
        }
        self.rules.truncate(rules_before);
        if self.files > self.floor.0 || self.bytes > self.floor.1 {
            self.progress.set_estimate(
                self.files.max(self.floor.0),
                self.bytes.max(self.floor.1),
                false,
            );
        }
    }
}
