//! Snapshot data as Kopia stores it: directory objects (`k`-prefixed JSON listing entries with
//! names, types, octal modes, sizes, times, owners and object ids, plus a summary) and snapshot
//! manifests (source `user@host:path`, start/end times, stats, root entry).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FormatError, Result};
use crate::manifest::ManifestId;
use crate::object_id::ObjectId;
use crate::string_id::string_id;

/// Content prefix of directory objects.
pub const DIRECTORY_PREFIX: u8 = b'k';
/// The `stream` of directory objects.
pub const DIRECTORY_STREAM: &str = "kopia:directory";
/// The manifest `type` label of snapshots.
pub const SNAPSHOT_MANIFEST_TYPE: &str = crate::labels::SNAPSHOT;

/// Serde for Kopia's nanosecond timestamps written as Go times.
pub mod utc_nanos {
    use super::*;

    /// Unix nanoseconds to a time.
    pub fn to_time(n: i64) -> DateTime<Utc> {
        Utc.timestamp_nanos(n)
    }

    /// Writes a Go time.
    pub fn serialize<S: Serializer>(n: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::gotime::serialize(&to_time(*n), s)
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
        let t = crate::gotime::deserialize(d)?;
        t.timestamp_nanos_opt()
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}

/// Go's `os.FileMode` bits for setuid, setgid and sticky, which Kopia stores above the
/// permission bits (`"040000755"` for a setuid 0755 file).
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// Unix permission bits (`0o7777`: setuid, setgid, sticky and rwx), written as Kopia writes
/// them: Go's `os.FileMode` in octal with a leading zero, so setuid/setgid/sticky move to Go's
/// bits (`04755` is stored as `"040000755"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(pub u32);

impl Permissions {
    /// The Go `os.FileMode` value Kopia stores.
    pub fn to_go_mode(self) -> u32 {
        let mut m = self.0 & 0o777;
        if self.0 & 0o4000 != 0 {
            m |= GO_SETUID;
        }
        if self.0 & 0o2000 != 0 {
            m |= GO_SETGID;
        }
        if self.0 & 0o1000 != 0 {
            m |= GO_STICKY;
        }
        m
    }

    /// Unix bits from a stored value: Go's bits as Kopia writes them, and the Unix bits that
    /// kopr versions before this one wrote.
    pub fn from_stored(v: u32) -> Permissions {
        let mut m = v & 0o7777;
        if v & GO_SETUID != 0 {
            m |= 0o4000;
        }
        if v & GO_SETGID != 0 {
            m |= 0o2000;
        }
        if v & GO_STICKY != 0 {
            m |= 0o1000;
        }
        Permissions(m)
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // Octal digits after a leading zero, written by hand: one per directory entry, and
        // `format!` cost several times more than the digits.
        let mut buf = [0u8; 12];
        let mut at = buf.len();
        let mut m = self.to_go_mode();
        loop {
            at -= 1;
            buf[at] = b'0' + (m & 7) as u8;
            m >>= 3;
            if m == 0 {
                break;
            }
        }
        at -= 1;
        buf[at] = b'0';
        s.serialize_str(std::str::from_utf8(&buf[at..]).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 8)
            .map(Permissions::from_stored)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads `null` as the type's default (Go writes empty slices and maps as `null`).
pub fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Writes an empty list as `null`, as Go does for a nil slice.
fn empty_as_null<S: Serializer, T: Serialize>(
    v: &[T],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

fn is_zero_perm(p: &Permissions) -> bool {
    p.0 == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryType {
    /// Regular file.
    #[serde(rename = "f")]
    File,
    /// Directory.
    #[serde(rename = "d")]
    Directory,
    /// Symbolic link.
    #[serde(rename = "s")]
    Symlink,
    /// Anything else Kopia may record.
    #[serde(other, rename = "")]
    Unknown,
}

/// Totals of a directory tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DirectorySummary {
    /// Bytes in files.
    #[serde(rename = "size")]
    pub total_file_size: i64,
    /// Files.
    #[serde(rename = "files")]
    pub total_file_count: i64,
    /// Symlinks.
    #[serde(rename = "symlinks")]
    pub total_symlink_count: i64,
    /// Directories.
    #[serde(rename = "dirs")]
    pub total_dir_count: i64,
    /// Newest mtime below, unix nanoseconds.
    #[serde(rename = "maxTime", with = "utc_nanos")]
    pub max_mod_time: i64,
    /// Why the tree is incomplete.
    #[serde(
        rename = "incomplete",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub incomplete_reason: String,
    /// Entries that failed.
    #[serde(rename = "numFailed")]
    pub fatal_error_count: i64,
    /// Errors ignored by policy.
    #[serde(
        rename = "numIgnoredErrors",
        default,
        skip_serializing_if = "is_zero_i64"
    )]
    pub ignored_error_count: i64,
    /// First failed entries.
    #[serde(rename = "errors", default, skip_serializing_if = "Vec::is_empty")]
    pub failed_entries: Vec<EntryError>,
}

/// A failed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryError {
    /// Path relative to the snapshot root.
    #[serde(rename = "path")]
    pub entry_path: String,
    /// What went wrong.
    pub error: String,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// File name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// Permission bits.
    #[serde(rename = "mode", default, skip_serializing_if = "is_zero_perm")]
    pub permissions: Permissions,
    /// Size in bytes.
    #[serde(rename = "size", default, skip_serializing_if = "is_zero_i64")]
    pub file_size: i64,
    /// Modification time, unix nanoseconds.
    #[serde(rename = "mtime", with = "utc_nanos")]
    pub mod_time: i64,
    /// Owner.
    #[serde(rename = "uid", default, skip_serializing_if = "is_zero_u32")]
    pub user_id: u32,
    /// Group.
    #[serde(rename = "gid", default, skip_serializing_if = "is_zero_u32")]
    pub group_id: u32,
    /// The content: file data, directory object or symlink target.
    #[serde(rename = "obj")]
    pub object_id: ObjectId,
    /// For directories, the summary of the subtree.
    #[serde(rename = "summ", default, skip_serializing_if = "Option::is_none")]
    pub dir_summary: Option<DirectorySummary>,
}

/// A directory object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirManifest {
    /// Always `kopia:directory`.
    pub stream: String,
    /// Entries in Kopia's order (see [`DirManifest::sort_entries`]); an empty directory is
    /// written `"entries":null`, as Kopia writes it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        serialize_with = "empty_as_null"
    )]
    pub entries: Vec<DirEntry>,
    /// Totals.
    pub summary: Option<DirectorySummary>,
}

impl DirManifest {
    /// Puts entries in Kopia's order: subdirectories first, then everything else, each group by
    /// name (byte order). The same tree then makes the same directory object in both tools.
    pub fn sort_entries(entries: &mut [DirEntry]) {
        entries.sort_by(|a, b| {
            let (da, db) = (
                a.entry_type == EntryType::Directory,
                b.entry_type == EntryType::Directory,
            );
            db.cmp(&da)
                .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
        });
    }

    /// Encodes as Kopia writes it (JSON and a newline).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Decodes a directory object.
    pub fn decode(data: &[u8]) -> Result<DirManifest> {
        let d: DirManifest = serde_json::from_slice(data)
            .map_err(|e| FormatError::malformed("directory", e.to_string()))?;
        if d.stream != DIRECTORY_STREAM {
            return Err(FormatError::malformed(
                "directory",
                format!("unexpected stream {:?}", d.stream),
            ));
        }
        Ok(d)
    }
}

/// What was snapshotted: `user@host:path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct SourceInfo {
    /// Host name.
    pub host: String,
    /// User name.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// Absolute path.
    pub path: String,
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host.is_empty(), self.path.is_empty()) {
            (true, _) => f.write_str("(global)"),
            (false, true) => write!(f, "{}@{}", self.user_name, self.host),
            _ => write!(f, "{}@{}:{}", self.user_name, self.host, self.path),
        }
    }
}

impl SourceInfo {
    /// Manifest labels identifying this source.
    pub fn labels(&self) -> BTreeMap<String, String> {
        crate::labels::of_snapshot_source(self)
    }
}

/// Counters of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotStats {
    /// Bytes in files.
    #[serde(rename = "totalSize")]
    pub total_file_size: i64,
    /// Bytes in excluded files.
    #[serde(rename = "excludedTotalSize")]
    pub excluded_total_file_size: i64,
    /// Files.
    #[serde(rename = "fileCount")]
    pub total_file_count: i32,
    /// Files reused from the previous snapshot.
    #[serde(rename = "cachedFiles")]
    pub cached_files: i32,
    /// Files read and hashed.
    #[serde(rename = "nonCachedFiles")]
    pub non_cached_files: i32,
    /// Directories.
    #[serde(rename = "dirCount")]
    pub total_directory_count: i32,
    /// Excluded files.
    #[serde(rename = "excludedFileCount")]
    pub excluded_file_count: i32,
    /// Excluded directories.
    #[serde(rename = "excludedDirCount")]
    pub excluded_dir_count: i32,
    /// Errors ignored by policy.
    #[serde(rename = "ignoredErrorCount")]
    pub ignored_error_count: i32,
    /// Errors.
    #[serde(rename = "errorCount")]
    pub error_count: i32,
}

string_id!(
    /// A snapshot's id: the id of its manifest ([`SnapshotId::manifest_id`]), named apart so
    /// that a snapshot id is not taken for any manifest's.
    SnapshotId(ManifestId)
);

impl SnapshotId {
    /// The id of the snapshot's manifest.
    pub fn manifest_id(&self) -> &ManifestId {
        &self.0
    }
}

impl From<ManifestId> for SnapshotId {
    fn from(id: ManifestId) -> Self {
        SnapshotId(id)
    }
}

impl From<SnapshotId> for ManifestId {
    fn from(id: SnapshotId) -> Self {
        id.0
    }
}

impl AsRef<ManifestId> for SnapshotId {
    fn as_ref(&self) -> &ManifestId {
        &self.0
    }
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The manifest id (filled in when loaded).
    #[serde(default)]
    pub id: SnapshotId,
    /// What was snapshotted.
    pub source: SourceInfo,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Start time, unix nanoseconds.
    #[serde(rename = "startTime", with = "utc_nanos")]
    pub start_time: i64,
    /// End time, unix nanoseconds.
    #[serde(rename = "endTime", with = "utc_nanos")]
    pub end_time: i64,
    /// Counters.
    #[serde(default)]
    pub stats: SnapshotStats,
    /// Why the snapshot is incomplete (e.g. cancelled).
    #[serde(
        rename = "incomplete",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub incomplete_reason: String,
    /// The root directory.
    #[serde(rename = "rootEntry")]
    pub root_entry: Option<DirEntry>,
    /// User tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Storage statistics, kept as-is.
    #[serde(
        rename = "storageStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_stats: Option<serde_json::Value>,
    /// Pins that keep the snapshot from expiring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_their_manifests_ids_and_serialize_as_plain_strings() {
        let mid = ManifestId::from("0123456789abcdef0123456789abcdef");
        let sid = SnapshotId::from(mid.clone());
        assert_eq!(sid.manifest_id(), &mid);
        assert_eq!(ManifestId::from(sid.clone()), mid);
        assert_eq!(sid.to_string(), mid.to_string());
        assert_eq!(
            serde_json::to_string(&sid).unwrap(),
            "\"0123456789abcdef0123456789abcdef\""
        );
        let mut m: SnapshotManifest = serde_json::from_value(serde_json::json!({
            "id": "abc", "source": {"host":"h","userName":"u","path":"/p"},
            "startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-01T00:00:00Z",
        }))
        .unwrap();
        assert_eq!(m.id, "abc");
        m.id = sid;
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["id"], "0123456789abcdef0123456789abcdef");
    }

    fn file_entry() -> DirEntry {
        DirEntry {
            name: "a.txt".into(),
            entry_type: EntryType::File,
            permissions: Permissions(0o644),
            file_size: 5,
            mod_time: 1_700_000_000_123_000_000,
            user_id: 1000,
            group_id: 0,
            object_id: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            dir_summary: None,
        }
    }

    #[test]
    fn directory_json_has_kopias_shape() {
        let d = DirManifest {
            stream: DIRECTORY_STREAM.into(),
            entries: vec![file_entry()],
            summary: Some(DirectorySummary {
                total_file_size: 5,
                total_file_count: 1,
                max_mod_time: 1_700_000_000_123_000_000,
                ..Default::default()
            }),
        };
        let s = String::from_utf8(d.encode()).unwrap();
        assert_eq!(
            s,
            "{\"stream\":\"kopia:directory\",\"entries\":[{\"name\":\"a.txt\",\"type\":\"f\",\"mode\":\"0644\",\"size\":5,\"mtime\":\"2023-11-14T22:13:20.123Z\",\"uid\":1000,\"obj\":\"0123456789abcdef0123456789abcdef\"}],\"summary\":{\"size\":5,\"files\":1,\"symlinks\":0,\"dirs\":0,\"maxTime\":\"2023-11-14T22:13:20.123Z\",\"numFailed\":0}}\n"
        );
        assert_eq!(DirManifest::decode(s.as_bytes()).unwrap(), d);
        assert!(
            DirManifest::decode(b"{\"stream\":\"x\",\"entries\":[],\"summary\":null}").is_err()
        );
        assert!(DirManifest::decode(b"[]").is_err());
    }

    /// Go's `os.FileMode` bits, as in the `perm/` directory of the Kopia 0.23.1 `default`
    /// fixture (`suid-tool` 4755, `setgid-dir` 2755, `sticky-tmp` 1777, `none.bin` 0000).
    #[test]
    fn special_mode_bits_use_gos_file_mode() {
        for (unix, kopia) in [
            (0o4755, "\"040000755\""),
            (0o2755, "\"020000755\""),
            (0o1777, "\"04000777\""),
            (0o644, "\"0644\""),
            (0o7000, "\"064000000\""),
            (0o000, "\"00\""),
        ] {
            assert_eq!(serde_json::to_string(&Permissions(unix)).unwrap(), kopia);
            assert_eq!(
                serde_json::from_str::<Permissions>(kopia).unwrap(),
                Permissions(unix)
            );
        }
        // What kopr wrote before it used Go's bits still reads as the same mode.
        assert_eq!(
            serde_json::from_str::<Permissions>("\"04755\"").unwrap(),
            Permissions(0o4755)
        );
        assert!(serde_json::from_str::<Permissions>("\"9\"").is_err());
    }

    /// Kopia writes an empty directory as `"entries":null` (the `empty-dir` directory object of
    /// the `default` fixture, byte for byte), and kopr writes it the same way.
    #[test]
    fn empty_directory_is_entries_null_both_ways() {
        let kopia = "{\"stream\":\"kopia:directory\",\"entries\":null,\"summary\":{\"size\":0,\"files\":0,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2026-11-30T03:52:09.463331354Z\",\"numFailed\":0}}\n";
        let d = DirManifest::decode(kopia.as_bytes()).unwrap();
        assert!(d.entries.is_empty());
        assert_eq!(String::from_utf8(d.encode()).unwrap(), kopia);
        // A missing list reads as empty too.
        let d = DirManifest::decode(b"{\"stream\":\"kopia:directory\",\"summary\":null}").unwrap();
        assert!(d.entries.is_empty());
    }

    #[test]
    fn entries_sort_directories_first_then_by_name_bytes() {
        let mut v: Vec<DirEntry> = [
            ("b.txt", EntryType::File),
            ("zeta", EntryType::Directory),
            ("A", EntryType::Symlink),
            ("alpha", EntryType::Directory),
            ("Z", EntryType::Directory),
        ]
        .iter()
        .map(|(n, t)| DirEntry {
            name: n.to_string(),
            entry_type: *t,
            ..file_entry()
        })
        .collect();
        DirManifest::sort_entries(&mut v);
        let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Z", "alpha", "zeta", "A", "b.txt"]);
    }

    #[test]
    fn sources_print_like_kopia() {
        let s = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/p".into(),
        };
        assert_eq!(s.to_string(), "u@h:/p");
        assert_eq!(
            SourceInfo {
                path: String::new(),
                ..s.clone()
            }
            .to_string(),
            "u@h"
        );
        assert_eq!(SourceInfo::default().to_string(), "(global)");
        assert_eq!(s.labels().get("path").map(String::as_str), Some("/p"));
    }

    #[test]
    fn snapshot_manifest_round_trips() {
        let m = SnapshotManifest {
            id: SnapshotId::default(),
            source: SourceInfo {
                host: "h".into(),
                user_name: "u".into(),
                path: "/p".into(),
            },
            description: String::new(),
            start_time: 1_700_000_000_000_000_000,
            end_time: 1_700_000_001_000_000_000,
            stats: SnapshotStats {
                total_file_size: 5,
                total_file_count: 1,
                ..Default::default()
            },
            incomplete_reason: String::new(),
            root_entry: Some(file_entry()),
            tags: BTreeMap::new(),
            storage_stats: None,
            pins: vec![],
        };
        let js = serde_json::to_string(&m).unwrap();
        assert!(js.starts_with("{\"id\":\"\",\"source\":{\"host\":\"h\",\"userName\":\"u\",\"path\":\"/p\"},\"description\":\"\",\"startTime\":\"2023-11-14T22:13:20Z\""), "{js}");
        assert_eq!(serde_json::from_str::<SnapshotManifest>(&js).unwrap(), m);
    }
}
