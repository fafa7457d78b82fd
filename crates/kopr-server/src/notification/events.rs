//! The data Kopia's notification templates see, with Kopia's (Go) field names: the top level
//! (`Hostname`, `EventTime`, `EventArgs`, `KopiaRepo`, `KopiaBuildInfo`, `KopiaBuildVersion`),
//! an error (`Operation`, `OperationDetails`, `StartTime`, `EndTime`, `ErrorMessage`,
//! `ErrorDetails`, `StartTimestamp`, `EndTimestamp`, `Duration`) and a snapshot report
//! (`Snapshots`: `Manifest`, `Previous`, `Error`, `StatusCode`, `TotalSize`, …;
//! `OverallStatus`, `OverallStatusCode`).

use chrono::{DateTime, Utc};
use kopr_format::snapshot::{SnapshotManifest, SourceInfo};
use serde_json::{json, Value};

/// What one source's snapshot came to.
#[derive(Debug, Clone)]
pub struct SnapshotOutcome {
    /// The source.
    pub source: SourceInfo,
    /// The snapshot made (`None` when it failed before a manifest was saved).
    pub manifest: Option<SnapshotManifest>,
    /// The source's snapshot before it.
    pub previous: Option<SnapshotManifest>,
    /// The error, when it failed.
    pub error: String,
}

fn go_duration(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        (ms % 60_000) as f64 / 1000.0,
    );
    let s = format!("{s}");
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The top-level template data around `event_args`.
pub fn template_args(event_args: Value) -> Value {
    json!({
        "Hostname": hostname(),
        "EventTime": Utc::now().to_rfc3339(),
        "EventArgs": event_args,
        "KopiaRepo": "kopr",
        "KopiaBuildInfo": concat!("kopr ", env!("CARGO_PKG_VERSION")),
        "KopiaBuildVersion": env!("CARGO_PKG_VERSION"),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown hostname".into())
}

/// Kopia's `ErrorInfo` (also the data of kopr's `maintenance-report`, with an empty error).
pub fn error_info(
    operation: &str,
    details: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    error: &str,
) -> Value {
    json!({
        "Operation": operation,
        "OperationDetails": details,
        "StartTime": start.to_rfc3339(),
        "EndTime": end.to_rfc3339(),
        "ErrorMessage": error,
        "ErrorDetails": error,
        "StartTimestamp": secs(start).to_rfc3339(),
        "EndTimestamp": secs(end).to_rfc3339(),
        "Duration": go_duration(secs(end) - secs(start)),
    })
}

fn nanos_time(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

fn manifest_value(m: &SnapshotManifest) -> Value {
    let root = m.root_entry.as_ref().map(|r| {
        let summary = r.dir_summary.as_ref().map(|s| {
            json!({
                "TotalFileSize": s.total_file_size,
                "TotalFileCount": s.total_file_count,
                "TotalDirCount": s.total_dir_count,
                "FatalErrorCount": s.fatal_error_count,
                "IgnoredErrorCount": s.ignored_error_count,
                "FailedEntries": s.failed_entries.iter().map(|e| json!({"EntryPath": e.entry_path, "Error": e.error})).collect::<Vec<_>>(),
            })
        });
        json!({
            "Name": r.name,
            "ObjectID": r.object_id.to_string(),
            "FileSize": r.file_size,
            "DirSummary": summary,
        })
    });
    json!({
        "ID": m.id,
        "Source": source_value(&m.source),
        "Description": m.description,
        "StartTime": nanos_time(m.start_time).to_rfc3339(),
        "EndTime": nanos_time(m.end_time).to_rfc3339(),
        "IncompleteReason": m.incomplete_reason,
        "RootEntry": root,
    })
}

fn source_value(s: &SourceInfo) -> Value {
    json!({"Host": s.host, "UserName": s.user_name, "Path": s.path})
}

/// (total size, files, dirs) of a snapshot, as Kopia counts them.
fn totals(m: Option<&SnapshotManifest>) -> Option<(i64, i64, i64)> {
    let r = m?.root_entry.as_ref()?;
    Some(match &r.dir_summary {
        Some(s) => (s.total_file_size, s.total_file_count, s.total_dir_count),
        None => (r.file_size, 1, 0),
    })
}

/// Kopia's status code of one outcome: fatal, incomplete, warnings or success.
pub fn status_code(o: &SnapshotOutcome) -> &'static str {
    if !o.error.is_empty() {
        return "fatal";
    }
    let Some(m) = &o.manifest else {
        return "fatal";
    };
    if !m.incomplete_reason.is_empty() {
        return "incomplete";
    }
    match m.root_entry.as_ref().and_then(|r| r.dir_summary.as_ref()) {
        Some(s) if s.fatal_error_count > 0 => "fatal",
        Some(s) if s.ignored_error_count > 0 => "warnings",
        _ => "success",
    }
}

/// The data of `snapshot-report` for `outcomes`.
pub fn snapshot_report(outcomes: &[SnapshotOutcome], _host: &str) -> Value {
    let codes: Vec<&str> = outcomes.iter().map(status_code).collect();
    let overall_code = if codes.contains(&"fatal") {
        "fatal"
    } else if codes.contains(&"incomplete") {
        "incomplete"
    } else if codes.contains(&"warnings") {
        "warnings"
    } else {
        "success"
    };
    let what = match outcomes {
        [one] => format!("snapshot of {}", one.source.path),
        many => format!("{} snapshots", many.len()),
    };
    let overall = match overall_code {
        "fatal" => format!("Failed {what}"),
        "incomplete" => format!("Incomplete {what}"),
        "warnings" => format!("Created {what} with warnings"),
        _ => format!("Created {what}"),
    };
    let snaps: Vec<Value> = outcomes
        .iter()
        .zip(&codes)
        .map(|(o, code)| {
            let now = totals(o.manifest.as_ref()).unwrap_or_default();
            let delta = match totals(o.previous.as_ref()) {
                Some(p) if o.manifest.is_some() => (now.0 - p.0, now.1 - p.1, now.2 - p.2),
                _ => (0, 0, 0),
            };
            let manifest = match &o.manifest {
                Some(m) => manifest_value(m),
                None => json!({"Source": source_value(&o.source), "RootEntry": null}),
            };
            let (start, end) = o
                .manifest
                .as_ref()
                .map(|m| (nanos_time(m.start_time), nanos_time(m.end_time)))
                .unwrap_or((Utc::now(), Utc::now()));
            json!({
                "Manifest": manifest,
                "Previous": o.previous.as_ref().map(manifest_value),
                "Error": o.error,
                "StatusCode": code,
                "StartTimestamp": secs(start).to_rfc3339(),
                "EndTimestamp": secs(end).to_rfc3339(),
                "Duration": go_duration(end - start),
                "TotalSize": now.0, "TotalSizeDelta": delta.0,
                "TotalFiles": now.1, "TotalFilesDelta": delta.1,
                "TotalDirs": now.2, "TotalDirsDelta": delta.2,
            })
        })
        .collect();
    json!({
        "Snapshots": snaps,
        "OverallStatus": overall,
        "OverallStatusCode": overall_code,
    })
}

/// Kopia's severity of a snapshot report: error when any failed, report otherwise.
pub fn snapshot_severity(outcomes: &[SnapshotOutcome]) -> i32 {
    if outcomes
        .iter()
        .any(|o| matches!(status_code(o), "fatal" | "incomplete"))
    {
        20
    } else {
        0
    }
}

/// Notifies the profiles of a snapshot run (one call per `snapshot create`); returns the
/// failures to print as warnings.
pub fn notify_snapshots(repo: &kopr_repo::Repository, outcomes: &[SnapshotOutcome]) -> Vec<String> {
    if outcomes.is_empty() {
        return Vec::new();
    }
    super::send(
        repo,
        "snapshot-report",
        snapshot_report(outcomes, ""),
        snapshot_severity(outcomes),
    )
}

/// Notifies the profiles of a maintenance run: `generic-error` (severity error) when it
/// failed, kopr's `maintenance-report` (severity success) when it succeeded.
pub fn notify_maintenance(
    repo: &kopr_repo::Repository,
    details: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    result: Result<(), String>,
) -> Vec<String> {
    match result {
        Ok(()) => super::send(
            repo,
            "maintenance-report",
            error_info("Maintenance", details, start, end, ""),
            -10,
        ),
        Err(e) => super::send(
            repo,
            "generic-error",
            error_info("Maintenance", details, start, end, &e),
            20,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(chrono::Duration::milliseconds(250)), "250ms");
        assert_eq!(go_duration(chrono::Duration::milliseconds(1500)), "1.5s");
        assert_eq!(go_duration(chrono::Duration::seconds(61)), "1m1s");
        assert_eq!(go_duration(chrono::Duration::seconds(3723)), "1h2m3s");
    }

    #[test]
    fn a_failed_source_makes_the_report_fatal() {
        let src = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/p".into(),
        };
        let o = SnapshotOutcome {
            source: src,
            manifest: None,
            previous: None,
            error: "disk on fire".into(),
        };
        let v = snapshot_report(std::slice::from_ref(&o), "h");
        assert_eq!(v["OverallStatusCode"], "fatal");
        assert_eq!(v["OverallStatus"], "Failed snapshot of /p");
        assert_eq!(v["Snapshots"][0]["Manifest"]["Source"]["Path"], "/p");
        assert_eq!(snapshot_severity(&[o]), 20);
    }
}
