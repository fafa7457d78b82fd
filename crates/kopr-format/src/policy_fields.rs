//! Every field of Kopia's policy document, by JSON name: the schema that `policy import` and
//! `policy edit` check documents against (Kopia refuses unknown fields), and the inheritance of
//! the sections kopr keeps as JSON (scheduling, upload, splitter, actions, logging, OS
//! snapshots, metadata compression, and the rarer fields of files, compression and error
//! handling): a field a policy leaves unset comes from its parent, as Kopia merges them.

use serde_json::{Map, Value};

/// The fields of the object at `path` (JSON names from the document's root; array elements
/// share their array's path), or `None` where the value is not an object of known fields.
fn fields(path: &[&str]) -> Option<&'static [&'static str]> {
    const ACTION: &[&str] = &["path", "args", "script", "timeout", "mode"];
    Some(match path {
        [] => &[
            "retention",
            "files",
            "errorHandling",
            "scheduling",
            "compression",
            "metadataCompression",
            "splitter",
            "actions",
            "osSnapshots",
            "logging",
            "upload",
            "noParent",
        ],
        ["retention"] => &[
            "keepLatest",
            "keepHourly",
            "keepDaily",
            "keepWeekly",
            "keepMonthly",
            "keepAnnual",
            "ignoreIdenticalSnapshots",
        ],
        ["files"] => &[
            "ignore",
            "noParentIgnore",
            "ignoreDotFiles",
            "noParentDotFiles",
            "ignoreCacheDirs",
            "maxFileSize",
            "oneFileSystem",
        ],
        ["errorHandling"] => &[
            "ignoreFileErrors",
            "ignoreDirectoryErrors",
            "ignoreUnknownTypes",
        ],
        ["scheduling"] => &[
            "intervalSeconds",
            "timeOfDay",
            "noParentTimeOfDay",
            "manual",
            "cron",
            "runMissed",
        ],
        ["scheduling", "timeOfDay"] => &["hour", "min"],
        ["compression"] => &[
            "compressorName",
            "onlyCompress",
            "noParentOnlyCompress",
            "neverCompress",
            "noParentNeverCompress",
            "minSize",
            "maxSize",
        ],
        ["metadataCompression"] => &["compressorName"],
        ["splitter"] => &["algorithm"],
        ["actions"] => &[
            "beforeFolder",
            "afterFolder",
            "beforeSnapshotRoot",
            "afterSnapshotRoot",
        ],
        ["actions", _] => ACTION,
        ["osSnapshots"] => &["volumeShadowCopy"],
        ["osSnapshots", "volumeShadowCopy"] => &["enable"],
        ["logging"] => &["directories", "entries"],
        ["logging", "directories"] => &["snapshotted", "ignored"],
        ["logging", "entries"] => &["snapshotted", "ignored", "cacheHit", "cacheMiss"],
        ["upload"] => &[
            "maxParallelSnapshots",
            "maxParallelFileReads",
            "parallelUploadAboveSize",
        ],
        _ => return None,
    })
}

/// The fields of a policy document Kopia does not know, as dotted paths
/// (`files.maxFileSizee`), sorted.
pub fn unknown_fields(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

fn walk<'a>(v: &'a Value, path: &mut Vec<&'a str>, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for item in items {
                walk(item, path, out);
            }
        }
        Value::Object(m) => {
            let Some(known) = fields(path) else { return };
            for (k, child) in m {
                if !known.contains(&k.as_str()) {
                    let mut p = path.join(".");
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                    out.push(p);
                    continue;
                }
                path.push(k);
                walk(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Fills what `child` leaves unset from `parent`, field by field (objects are merged, any
/// other value is taken whole when the child has none).
pub fn inherit_map(child: &mut Map<String, Value>, parent: &Map<String, Value>) {
    for (k, pv) in parent {
        match (child.get_mut(k), pv) {
            (None, _) => {
                child.insert(k.clone(), pv.clone());
            }
            (Some(Value::Object(c)), Value::Object(p)) => inherit_map(c, p),
            (Some(_), _) => {}
        }
    }
}

/// A section of the document kopr keeps as JSON (`scheduling`, `upload`, …) as a field map;
/// empty when the policy does not set it.
pub fn section<'a>(extra: &'a Map<String, Value>, name: &str) -> &'a Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match extra.get(name) {
        Some(Value::Object(m)) => m,
        _ => EMPTY.get_or_init(Map::new),
    }
}

/// Kopia's `upload.maxParallelFileReads` of a policy's JSON sections, when set to at least 1
/// (unset: as many as there are cores, as Kopia).
pub fn max_parallel_file_reads(extra: &Map<String, Value>) -> Option<usize> {
    section(extra, "upload")
        .get("maxParallelFileReads")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1)
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kopias_fields_pass_and_others_are_named() {
        let doc = serde_json::json!({
            "retention": {"keepLatest": 3},
            "files": {"maxFileSize": 10, "oneFileSystem": true},
            "scheduling": {"timeOfDay": [{"hour": 1, "min": 2}], "cron": ["0 * * * *"]},
            "actions": {"beforeFolder": {"script": "x", "timeout": 5, "mode": "essential"}},
            "logging": {"entries": {"cacheHit": 5}},
            "upload": {"maxParallelFileReads": 4},
            "osSnapshots": {"volumeShadowCopy": {"enable": 1}},
            "noParent": true
        });
        assert!(unknown_fields(&doc).is_empty());
        let bad = serde_json::json!({
            "retention": {"keepLatests": 3},
            "scheduling": {"timeOfDay": [{"hour": 1, "minute": 2}]},
            "bogus": 1
        });
        assert_eq!(
            unknown_fields(&bad),
            vec![
                "bogus".to_string(),
                "retention.keepLatests".to_string(),
                "scheduling.timeOfDay.minute".to_string()
            ]
        );
    }

    #[test]
    fn max_parallel_file_reads_is_read_from_upload() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            max_parallel_file_reads(&m(
                serde_json::json!({"upload": {"maxParallelFileReads": 3}})
            )),
            Some(3)
        );
        assert_eq!(
            max_parallel_file_reads(&m(serde_json::json!({"upload": {}}))),
            None
        );
        assert_eq!(
            max_parallel_file_reads(&m(
                serde_json::json!({"upload": {"maxParallelFileReads": 0}})
            )),
            None
        );
    }

    #[test]
    fn unset_fields_come_from_the_parent() {
        let mut child = serde_json::json!({"upload": {"maxParallelFileReads": 2}})
            .as_object()
            .cloned()
            .unwrap();
        let parent = serde_json::json!({
            "upload": {"maxParallelFileReads": 8, "parallelUploadAboveSize": 100},
            "splitter": {"algorithm": "FIXED-4M"}
        });
        inherit_map(&mut child, parent.as_object().unwrap());
        assert_eq!(
            serde_json::Value::Object(child),
            serde_json::json!({
                "upload": {"maxParallelFileReads": 2, "parallelUploadAboveSize": 100},
                "splitter": {"algorithm": "FIXED-4M"}
            })
        );
    }
}
