//! Snapshot policies as Kopia stores them (manifests with `type=policy`): retention, files
//! (ignore rules), compression; every other section is kept verbatim so kopr never drops
//! settings it does not interpret.

use serde::{Deserialize, Serialize};

/// Retention settings; `None` inherits from the parent policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RetentionPolicy {
    /// Newest snapshots to keep.
    #[serde(
        rename = "keepLatest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_latest: Option<i64>,
    /// Hourly snapshots to keep.
    #[serde(
        rename = "keepHourly",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_hourly: Option<i64>,
    /// Daily snapshots to keep.
    #[serde(rename = "keepDaily", default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i64>,
    /// Weekly snapshots to keep.
    #[serde(
        rename = "keepWeekly",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_weekly: Option<i64>,
    /// Monthly snapshots to keep.
    #[serde(
        rename = "keepMonthly",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_monthly: Option<i64>,
    /// Annual snapshots to keep.
    #[serde(
        rename = "keepAnnual",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_annual: Option<i64>,
    /// Do not keep snapshots identical to the previous one.
    #[serde(
        rename = "ignoreIdenticalSnapshots",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_identical_snapshots: Option<bool>,
}

/// Which files are snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FilesPolicy {
    /// Ignore patterns (gitignore syntax).
    #[serde(rename = "ignore", default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_rules: Vec<String>,
    /// Do not inherit ignore rules.
    #[serde(
        rename = "noParentIgnore",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub no_parent_ignore_rules: bool,
    /// Names of per-directory ignore files.
    #[serde(
        rename = "ignoreDotFiles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dot_ignore_files: Vec<String>,
    /// Do not inherit ignore file names.
    #[serde(
        rename = "noParentDotFiles",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub no_parent_dot_ignore_files: bool,
    /// Skip directories marked by a `CACHEDIR.TAG` (unset: yes, as Kopia).
    #[serde(
        rename = "ignoreCacheDirs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_cache_dirs: Option<bool>,
    /// Other fields, kept as-is.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// How file contents are compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CompressionPolicy {
    /// Compressor name (`none` or empty for no compression).
    #[serde(
        rename = "compressorName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub compressor_name: String,
    /// Only compress files with these extensions (e.g. `.txt`).
    #[serde(
        rename = "onlyCompress",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub only_compress: Vec<String>,
    /// Never compress files with these extensions.
    #[serde(
        rename = "neverCompress",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub never_compress: Vec<String>,
    /// Smallest file size to compress.
    #[serde(rename = "minSize", default, skip_serializing_if = "is_zero")]
    pub min_size: i64,
    /// Largest file size to compress (0: no limit).
    #[serde(rename = "maxSize", default, skip_serializing_if = "is_zero")]
    pub max_size: i64,
    /// Other fields, kept as-is.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Which snapshot errors are ignored (counted, listed, but not failing the snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorHandlingPolicy {
    /// Errors reading files (unset: not ignored, as Kopia).
    #[serde(
        rename = "ignoreFileErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_file_errors: Option<bool>,
    /// Errors opening or listing directories (unset: not ignored, as Kopia).
    #[serde(
        rename = "ignoreDirectoryErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_directory_errors: Option<bool>,
    /// Other fields (`ignoreUnknownTypes`), kept as-is.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Policy {
    /// Kopia's `metadataCompression.compressorName`: the compressor of directory listings and
    /// of large files' chunk lists (unset: the default, `zstd-fastest`; `none`: none).
    pub fn metadata_compressor_name(&self) -> Option<&str> {
        self.extra
            .get("metadataCompression")?
            .get("compressorName")?
            .as_str()
    }

    /// Kopia's `splitter.algorithm`: the splitter of file data (unset or empty: the
    /// repository's).
    pub fn splitter_name(&self) -> Option<&str> {
        self.extra
            .get("splitter")?
            .get("algorithm")?
            .as_str()
            .filter(|s| !s.is_empty())
    }
}

impl FilesPolicy {
    /// Kopia's `files.maxFileSize`: files larger than this many bytes are left out of a
    /// snapshot (0, unset or not a number: no limit).
    pub fn max_file_size(&self) -> i64 {
        self.extra
            .get("maxFileSize")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    }

    /// Kopia's `files.oneFileSystem`: entries on another filesystem than their directory
    /// (mount points) are left out of a snapshot (unset: no).
    pub fn one_file_system(&self) -> bool {
        self.extra
            .get("oneFileSystem")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

impl ErrorHandlingPolicy {
    fn is_empty(&self) -> bool {
        *self == ErrorHandlingPolicy::default()
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Policy {
    /// Retention.
    #[serde(rename = "retention", default)]
    pub retention: RetentionPolicy,
    /// Files.
    #[serde(rename = "files", default)]
    pub files: FilesPolicy,
    /// Compression.
    #[serde(rename = "compression", default)]
    pub compression: CompressionPolicy,
    /// Error handling.
    #[serde(
        rename = "errorHandling",
        default,
        skip_serializing_if = "ErrorHandlingPolicy::is_empty"
    )]
    pub error_handling: ErrorHandlingPolicy,
    /// Do not inherit from parent policies.
    #[serde(
        rename = "noParent",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub no_parent: bool,
    /// Sections kopr does not interpret (scheduling, actions, …), kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Extensions of files whose data is compressed already (Kopia's `neverCompress` syntax).
pub const ALREADY_COMPRESSED_EXTENSIONS: &[&str] = &[
    ".7z", ".aac", ".apk", ".avi", ".br", ".bz2", ".deb", ".docx", ".flac", ".gif", ".gz", ".heic",
    ".jar", ".jpeg", ".jpg", ".lz4", ".m4a", ".m4v", ".mkv", ".mov", ".mp3", ".mp4", ".odt",
    ".ogg", ".opus", ".png", ".pptx", ".rar", ".rpm", ".tgz", ".txz", ".webm", ".webp", ".whl",
    ".woff", ".woff2", ".xlsx", ".xz", ".zip", ".zst",
];

impl Policy {
    /// Kopia's default global policy (the parts kopr interprets).
    pub fn kopia_default() -> Self {
        Policy {
            retention: RetentionPolicy {
                keep_latest: Some(10),
                keep_hourly: Some(48),
                keep_daily: Some(7),
                keep_weekly: Some(4),
                keep_monthly: Some(24),
                keep_annual: Some(3),
                ignore_identical_snapshots: Some(false),
            },
            files: FilesPolicy {
                dot_ignore_files: vec![".kopiaignore".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The global policy `kopr repository create` writes: Kopia's defaults, plus data
    /// compressed with `zstd-fastest` except files whose extension says they are compressed
    /// already (media, archives, packages), so those cost no compression attempt. Kopia reads
    /// such repositories and honours the same policy fields.
    pub fn new_repository_default() -> Self {
        let mut p = Policy::kopia_default();
        p.compression.compressor_name = "zstd-fastest".into();
        p.compression.never_compress = ALREADY_COMPRESSED_EXTENSIONS
            .iter()
            .map(|e| e.to_string())
            .collect();
        p
    }

    /// Fills every unset setting of `self` from `parent` (more specific policies come first).
    pub fn inherit(&mut self, parent: &Policy) {
        let r = &mut self.retention;
        let p = &parent.retention;
        r.keep_latest = r.keep_latest.or(p.keep_latest);
        r.keep_hourly = r.keep_hourly.or(p.keep_hourly);
        r.keep_daily = r.keep_daily.or(p.keep_daily);
        r.keep_weekly = r.keep_weekly.or(p.keep_weekly);
        r.keep_monthly = r.keep_monthly.or(p.keep_monthly);
        r.keep_annual = r.keep_annual.or(p.keep_annual);
        r.ignore_identical_snapshots = r
            .ignore_identical_snapshots
            .or(p.ignore_identical_snapshots);
        if !self.files.no_parent_ignore_rules {
            for rule in &parent.files.ignore_rules {
                if !self.files.ignore_rules.contains(rule) {
                    self.files.ignore_rules.push(rule.clone());
                }
            }
        }
        if self.files.dot_ignore_files.is_empty() && !self.files.no_parent_dot_ignore_files {
            self.files.dot_ignore_files = parent.files.dot_ignore_files.clone();
        }
        self.files.ignore_cache_dirs = self
            .files
            .ignore_cache_dirs
            .or(parent.files.ignore_cache_dirs);
        let eh = &mut self.error_handling;
        eh.ignore_file_errors = eh
            .ignore_file_errors
            .or(parent.error_handling.ignore_file_errors);
        eh.ignore_directory_errors = eh
            .ignore_directory_errors
            .or(parent.error_handling.ignore_directory_errors);
        let c = &mut self.compression;
        if c.compressor_name.is_empty() {
            c.compressor_name = parent.compression.compressor_name.clone();
        }
        if c.only_compress.is_empty() {
            c.only_compress = parent.compression.only_compress.clone();
        }
        if c.never_compress.is_empty() {
            c.never_compress = parent.compression.never_compress.clone();
        }
        if c.min_size == 0 {
            c.min_size = parent.compression.min_size;
        }
        if c.max_size == 0 {
            c.max_size = parent.compression.max_size;
        }
        // The fields kopr keeps as JSON, field by field.
        use crate::policy_fields::inherit_map;
        inherit_map(&mut self.extra, &parent.extra);
        inherit_map(&mut self.files.extra, &parent.files.extra);
        inherit_map(&mut self.compression.extra, &parent.compression.extra);
        inherit_map(&mut self.error_handling.extra, &parent.error_handling.extra);
    }

    /// The compressor for a file with this name and size, per the compression policy.
    pub fn compressor_for(&self, file_name: &str, size: i64) -> Option<&str> {
        let ext = Policy::extension(file_name);
        (self.compresses_extension(ext) && self.compresses_size(size))
            .then_some(self.compression.compressor_name.as_str())
    }

    /// The extension the compression rules look at: from the last `.` of the name (`.gz` of
    /// `a.tar.gz`), empty without one.
    pub fn extension(file_name: &str) -> &str {
        file_name.rfind('.').map_or("", |i| &file_name[i..])
    }

    /// Whether files with extension `ext` ([`Policy::extension`]) are compressed, sizes
    /// aside: compression is on, the extension in `onlyCompress` (when set) and not in
    /// `neverCompress`, ignoring ASCII case.
    pub fn compresses_extension(&self, ext: &str) -> bool {
        let c = &self.compression;
        if c.compressor_name.is_empty() || c.compressor_name == "none" {
            return false;
        }
        let has = |list: &[String]| list.iter().any(|e| e.eq_ignore_ascii_case(ext));
        (c.only_compress.is_empty() || has(&c.only_compress)) && !has(&c.never_compress)
    }

    /// Whether a file of `size` bytes is compressed, extensions aside: within `minSize` and
    /// `maxSize` (0: no limit).
    pub fn compresses_size(&self, size: i64) -> bool {
        self.compressed_sizes().contain(size)
    }

    /// The sizes of files compressed, as a copy apart from the policy.
    pub fn compressed_sizes(&self) -> CompressedSizes {
        CompressedSizes {
            min: self.compression.min_size,
            max: self.compression.max_size,
        }
    }
}

/// The sizes of files a policy compresses: `minSize` to `maxSize` (0 or less: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedSizes {
    /// The smallest size compressed.
    pub min: i64,
    /// The largest size compressed; 0 or less for no limit.
    pub max: i64,
}

impl CompressedSizes {
    /// Whether a file of `size` bytes is within the limits.
    pub fn contain(&self, size: i64) -> bool {
        size >= self.min && (self.max <= 0 || size <= self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_repositories_compress_all_but_compressed_formats() {
        let p = Policy::new_repository_default();
        assert_eq!(p.compressor_for("notes.txt", 100), Some("zstd-fastest"));
        assert_eq!(p.compressor_for("Makefile", 100), Some("zstd-fastest"));
        assert_eq!(p.compressor_for("movie.MP4", 100), None);
        assert_eq!(p.compressor_for("a.tar.gz", 100), None);
        assert_eq!(p.retention, Policy::kopia_default().retention);
        let js = serde_json::to_value(&p).unwrap();
        assert_eq!(js["compression"]["compressorName"], "zstd-fastest");
        assert!(js["compression"]["neverCompress"].as_array().unwrap().len() > 20);
    }

    #[test]
    fn compression_rules_split_into_extension_and_size() {
        let mut p = Policy::new_repository_default();
        p.compression.min_size = 10;
        p.compression.max_size = 100;
        assert_eq!(Policy::extension("a.tar.gz"), ".gz");
        assert_eq!(Policy::extension("Makefile"), "");
        for (name, size, compressed) in [
            ("a.txt", 9, false),
            ("a.txt", 10, true),
            ("a.txt", 100, true),
            ("a.txt", 101, false),
            ("a.ZIP", 50, false),
            ("a.zip", 50, false),
        ] {
            assert_eq!(
                p.compressor_for(name, size).is_some(),
                compressed,
                "{name} {size}"
            );
            let ext = Policy::extension(name);
            assert_eq!(
                p.compresses_extension(ext) && p.compresses_size(size),
                compressed
            );
        }
        p.compression.max_size = 0;
        assert!(p.compresses_size(i64::MAX));
        p.compression.only_compress = vec![".TXT".into()];
        assert!(p.compresses_extension(".txt"));
        assert!(!p.compresses_extension(".md"));
        p.compression.compressor_name = "none".into();
        assert!(!p.compresses_extension(".txt"));
    }

    #[test]
    fn json_names_and_unknown_sections_survive() {
        let text = r#"{"retention":{"keepLatest":5,"keepDaily":14},"files":{"ignore":["*.tmp"],"ignoreDotFiles":[".kopiaignore"],"oneFileSystem":true},"compression":{"compressorName":"zstd","neverCompress":[".zip"]},"scheduling":{"intervalSeconds":3600},"actions":{}}"#;
        let p: Policy = serde_json::from_str(text).unwrap();
        assert_eq!(p.retention.keep_latest, Some(5));
        assert_eq!(p.files.ignore_rules, vec!["*.tmp"]);
        assert_eq!(p.files.extra["oneFileSystem"], true);
        assert!(p.files.one_file_system());
        assert_eq!(p.files.max_file_size(), 0);
        assert_eq!(p.extra["scheduling"]["intervalSeconds"], 3600);
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn inheritance_and_compression_rules() {
        let mut p = Policy::default();
        p.retention.keep_latest = Some(3);
        p.compression.never_compress = vec![".zip".into()];
        let mut global = Policy::kopia_default();
        global.compression.compressor_name = "zstd-fastest".into();
        global.compression.min_size = 100;
        p.inherit(&global);
        assert_eq!(p.retention.keep_latest, Some(3));
        assert_eq!(p.retention.keep_daily, Some(7));
        assert_eq!(p.compressor_for("a.TXT", 1000), Some("zstd-fastest"));
        assert_eq!(p.compressor_for("a.zip", 1000), None);
        assert_eq!(p.compressor_for("a.txt", 10), None);
        p.compression.only_compress = vec![".log".into()];
        assert_eq!(p.compressor_for("a.txt", 1000), None);
        assert_eq!(p.compressor_for("x.log", 1000), Some("zstd-fastest"));
    }
}
