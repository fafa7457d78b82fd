//! `snapshot estimate`: what a snapshot of a directory would hold, without reading a file.
//!
//! The walk applies the source's policy as a snapshot does (ignore rules, per-directory ignore
//! files, cache directories kept empty, and, as Kopia, files above `files.maxFileSize` left out) and counts files by size in Kopia's buckets (powers of
//! ten from 1 kB to 1 PB, largest first), with a few example names in each, for the files it
//! includes and for those the rules exclude.

use std::fs;
use std::path::Path;

use kopr_format::policy::Policy;
use serde::Serialize;

use crate::error::{RepoError, Result};

/// Files of one size range: at least `min_size` bytes, below the next larger bucket's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SampleBucket {
    /// Smallest size in the bucket.
    #[serde(rename = "minSize")]
    pub min_size: i64,
    /// Files in it.
    pub count: i64,
    /// Their total size.
    #[serde(rename = "totalSize")]
    pub total_size: i64,
    /// Up to `max_examples` of them, `path - size`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// Kopia's buckets, largest first: 1e15, 1e14, … 1e3, then 0.
pub fn make_buckets() -> Vec<SampleBucket> {
    (3..=15)
        .rev()
        .map(|e| 10i64.pow(e))
        .chain([0])
        .map(|min_size| SampleBucket {
            min_size,
            ..SampleBucket::default()
        })
        .collect()
}

fn add(buckets: &mut [SampleBucket], path: &str, size: i64, max_examples: usize) {
    if let Some(b) = buckets.iter_mut().find(|b| size >= b.min_size) {
        b.count += 1;
        b.total_size += size;
        if b.examples.len() < max_examples {
            b.examples
                .push(format!("{path} - {}", kopr_format::units::bytes(size)));
        }
    }
}

/// What [`estimate`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Estimate {
    /// Files the snapshot would hold.
    #[serde(rename = "totalFileCount")]
    pub total_file_count: i64,
    /// Their total size.
    #[serde(rename = "totalFileSize")]
    pub total_file_size: i64,
    /// Directories it would hold (the root included).
    #[serde(rename = "totalDirectoryCount")]
    pub total_directory_count: i64,
    /// Files the policy excludes.
    #[serde(rename = "excludedFileCount")]
    pub excluded_file_count: i64,
    /// Their total size.
    #[serde(rename = "excludedTotalFileSize")]
    pub excluded_total_file_size: i64,
    /// Directories the policy excludes.
    #[serde(rename = "excludedDirCount")]
    pub excluded_dir_count: i64,
    /// Directories that could not be listed.
    #[serde(rename = "errorCount")]
    pub error_count: i64,
    /// Included files by size.
    pub included: Vec<SampleBucket>,
    /// Excluded files by size.
    pub excluded: Vec<SampleBucket>,
    /// Examples of excluded directories.
    #[serde(rename = "excludedDirs")]
    pub excluded_dirs: Vec<String>,
    /// Directories that could not be listed, with the error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

struct Walk<'a> {
    policy: &'a Policy,
    rules: Vec<crate::ignore::Rule>,
    max_examples: usize,
    max_file_size: i64,
    out: Estimate,
}

/// Whether `dir` holds a `CACHEDIR.TAG` that starts with the standard signature.
fn is_cache_dir(dir: &Path) -> bool {
    use std::io::Read as _;
    let tag = dir.join(super::CACHEDIR_TAG);
    if !fs::symlink_metadata(&tag).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = vec![0u8; super::CACHEDIR_SIGNATURE.len()];
    fs::File::open(&tag)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == super::CACHEDIR_SIGNATURE
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, rel: &str) {
        self.out.total_directory_count += 1;
        if self.policy.files.ignore_cache_dirs.unwrap_or(true) && is_cache_dir(dir) {
            return;
        }
        // Kopia's files.oneFileSystem: entries on another filesystem are left out, uncounted.
        let device = self
            .policy
            .files
            .one_file_system()
            .then(|| super::file_limits::device_of(dir))
            .flatten();
        let mut names: Vec<(String, std::path::PathBuf)> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect(),
            Err(e) => {
                self.out.error_count += 1;
                let shown = if rel.is_empty() { "." } else { rel };
                self.out.errors.push(format!("{shown}: {e}"));
                return;
            }
        };
        names.sort();
        let rules_before = self.rules.len();
        for name in &self.policy.files.dot_ignore_files {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                self.rules.extend(crate::ignore::parse(rel, &text));
            }
        }
        for (name, path) in names {
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(md) = fs::symlink_metadata(&path) else {
                continue;
            };
            if super::file_limits::on_another_device(&md, device) {
                continue;
            }
            let size = i64::try_from(md.len()).unwrap_or(i64::MAX);
            // Kopia's files.maxFileSize: larger files are left out (0: no limit).
            let too_large = md.is_file() && self.max_file_size > 0 && size > self.max_file_size;
            if too_large || crate::ignore::is_ignored(&self.rules, &child_rel, md.is_dir()) {
                if md.is_dir() {
                    if self.out.excluded_dirs.len() < self.max_examples {
                        self.out.excluded_dirs.push(child_rel);
                    }
                    self.out.excluded_dir_count += 1;
                } else {
                    self.out.excluded_file_count += 1;
                    self.out.excluded_total_file_size += size;
                    add(&mut self.out.excluded, &child_rel, size, self.max_examples);
                }
                continue;
            }
            if md.is_dir() {
                self.dir(&path, &child_rel);
            } else if md.is_file() {
                self.out.total_file_count += 1;
                self.out.total_file_size += size;
                add(&mut self.out.included, &child_rel, size, self.max_examples);
            }
        }
        self.rules.truncate(rules_before);
    }
}

/// Walks `dir` under `policy` (the source's effective policy) and counts what a snapshot would
/// take and leave out, keeping up to `max_examples` names per bucket.
pub fn estimate(dir: &Path, policy: &Policy, max_examples: usize) -> Result<Estimate> {
    let md = fs::metadata(dir)
        .map_err(|e| RepoError::Invalid(format!("invalid path: '{}': {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(RepoError::Invalid(format!(
            "invalid path: '{}': must be a directory",
            dir.display()
        )));
    }
    let mut w = Walk {
        policy,
        rules: crate::ignore::parse("", &policy.files.ignore_rules.join("\n")),
        max_examples,
        max_file_size: policy.files.max_file_size(),
        out: Estimate {
            included: make_buckets(),
            excluded: make_buckets(),
            ..Estimate::default()
        },
    };
    w.dir(dir, "");
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_kopias_and_files_land_in_the_largest_that_fits() {
        let mut b = make_buckets();
        assert_eq!(b.len(), 14);
        assert_eq!(b[0].min_size, 1_000_000_000_000_000);
        assert_eq!(b[12].min_size, 1000);
        assert_eq!(b[13].min_size, 0);
        add(&mut b, "a", 999, 1);
        add(&mut b, "b", 1000, 1);
        add(&mut b, "c", 2500, 1);
        assert_eq!((b[13].count, b[13].total_size), (1, 999));
        assert_eq!((b[12].count, b[12].total_size), (2, 3500));
        assert_eq!(b[12].examples, vec!["b - 1 KB".to_string()]);
    }
}
