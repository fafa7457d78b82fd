//! Kopia's sources, snapshots, policies and restore routes; snapshots and restores run as
//! tasks on their own threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, SnapshotManifest, SourceInfo};
use kopr_repo::object::read_object;
use kopr_repo::snapshot as snap;
use kopr_repo::Repository;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_repo, ApiError, ApiResult, AppState};
use crate::notification::events;
use crate::tasks::{Counter, TaskHandle};
use crate::Opener;

/// Kopia's source filter: `userName`, `host`, `path` (each optional).
#[derive(Debug, Default, Deserialize)]
pub(super) struct SourceQuery {
    #[serde(rename = "userName")]
    user_name: Option<String>,
    host: Option<String>,
    path: Option<String>,
}

impl SourceQuery {
    fn matches(&self, s: &SourceInfo) -> bool {
        self.user_name.as_ref().is_none_or(|u| *u == s.user_name)
            && self.host.as_ref().is_none_or(|h| *h == s.host)
            && self.path.as_ref().is_none_or(|p| *p == s.path)
    }
}

/// Every source with snapshots, and its snapshots oldest first.
fn by_source(repo: &Repository) -> ApiResult<BTreeMap<SourceInfo, Vec<SnapshotManifest>>> {
    let mut out: BTreeMap<SourceInfo, Vec<SnapshotManifest>> = BTreeMap::new();
    for m in snap::list_snapshots(repo, None)? {
        out.entry(m.source.clone()).or_default().push(m);
    }
    Ok(out)
}

pub(super) async fn sources(
    State(state): State<AppState>,
    Query(q): Query<SourceQuery>,
) -> Response {
    let st = state.clone();
    json_repo(&state, move |repo| {
        let mut list = Vec::new();
        for (si, snaps) in by_source(repo)? {
            if !q.matches(&si) {
                continue;
            }
            let running = st.tasks.running("Snapshot", &si.to_string());
            let last = snaps.iter().rev().find(|m| m.incomplete_reason.is_empty());
            let mut v = json!({
                "source": si,
                "status": if running.is_some() { "UPLOADING" } else { "IDLE" },
                "schedule": {},
                "lastSnapshot": last,
            });
            if let Some(t) = running {
                v["currentTask"] = json!(t.id);
            }
            list.push(v);
        }
        Ok(json!({
            "localUsername": st.client.username,
            "localHost": st.client.hostname,
            "multiUser": true,
            "sources": list,
        }))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct CreateSourceRequest {
    path: String,
    #[serde(rename = "createSnapshot", default)]
    create_snapshot: bool,
}

pub(super) async fn sources_create(
    State(state): State<AppState>,
    Json(req): Json<CreateSourceRequest>,
) -> Response {
    if req.path.is_empty() {
        return ApiError::bad("missing path").into_response();
    }
    let abs = match std::fs::canonicalize(&req.path) {
        Ok(p) => p,
        Err(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "PATH_NOT_FOUND",
                "path does not exist",
            )
            .into_response()
        }
    };
    let si = SourceInfo {
        host: state.client.hostname.clone(),
        user_name: state.client.username.clone(),
        path: abs.to_string_lossy().into_owned(),
    };
    if !req.create_snapshot {
        return Json(json!({"snapshotted": false})).into_response();
    }
    match start_snapshot(&state, si) {
        Ok(t) => Json(json!({"snapshotted": true, "taskID": t})).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn sources_upload(
    State(state): State<AppState>,
    Query(q): Query<SourceQuery>,
) -> Response {
    let st = state.clone();
    json_repo(&state, move |repo| {
        let mut out = serde_json::Map::new();
        for si in by_source(repo)?.into_keys().filter(|s| q.matches(s)) {
            let ok = si.host == st.client.hostname
                && si.user_name == st.client.username
                && start_snapshot(&st, si.clone()).is_ok();
            out.insert(si.to_string(), json!({"success": ok}));
        }
        Ok(json!({"sources": out}))
    })
    .await
}

fn progress_counters(p: &snap::Progress) -> BTreeMap<String, Counter> {
    [
        ("Hashed Files", Counter::count(p.hashed_files)),
        ("Hashed Bytes", Counter::bytes(p.hashed_bytes)),
        ("Cached Files", Counter::count(p.cached_files)),
        ("Cached Bytes", Counter::bytes(p.cached_bytes)),
        ("Errors", Counter::count(p.errors)),
        ("Estimated Files", Counter::count(p.estimated_files)),
        ("Estimated Bytes", Counter::bytes(p.estimated_bytes)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Starts a snapshot of `si` as a task (refused while one of the same source runs); returns
/// the task id.
fn start_snapshot(state: &AppState, si: SourceInfo) -> ApiResult<String> {
    if state.client.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
            "the repository connection is read-only",
        ));
    }
    let desc = si.to_string();
    if let Some(t) = state.tasks.running("Snapshot", &desc) {
        return Ok(t.id);
    }
    let handle = state.tasks.start("Snapshot", desc);
    let id = handle.id();
    let opener = state.opener.clone();
    std::thread::spawn(move || {
        let r = run_snapshot(&opener, &si, &handle);
        handle.finish(r);
    });
    Ok(id)
}

fn run_snapshot(opener: &Opener, si: &SourceInfo, task: &TaskHandle) -> Result<String, String> {
    let repo = opener().map_err(|e| e.to_string())?;
    let previous = snap::list_snapshots(&repo, Some(si))
        .ok()
        .and_then(|v| v.into_iter().next_back());
    let counters = Arc::new(snap::ProgressCounters::default());
    let result = snap::create_snapshot(
        &repo,
        std::path::Path::new(&si.path),
        si,
        &snap::UploadOptions {
            cancel: Some(task.cancel.clone()),
            progress: Some(counters),
            estimate: true,
            ..Default::default()
        },
        &mut |p| {
            task.progress(
                format!(
                    "{} files ({} bytes) done, {} cached",
                    p.done_files(),
                    p.done_bytes(),
                    p.cached_files
                ),
                progress_counters(p),
            )
        },
    );
    let outcome = events::SnapshotOutcome {
        source: si.clone(),
        manifest: result.as_ref().ok().cloned(),
        previous,
        error: result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    };
    for w in events::notify_snapshots(&repo, std::slice::from_ref(&outcome)) {
        eprintln!("WARNING: {w}");
    }
    let m = result.map_err(|e| e.to_string())?;
    kopr_repo::policy::expire(&repo, si, true)
        .map_err(|e| format!("unable to apply retention policy: {e}"))?;
    let fatal = m
        .root_entry
        .as_ref()
        .and_then(|r| r.dir_summary.as_ref())
        .map_or(0, |s| s.fatal_error_count);
    if fatal > 0 {
        return Err(format!(
            "Found {fatal} fatal error(s) while snapshotting {si}."
        ));
    }
    Ok(m.id.into())
}

fn snapshot_json(m: &SnapshotManifest, retention: &[String]) -> Value {
    let root = m.root_entry.as_ref();
    let mut v = json!({
        "id": m.id,
        "description": m.description,
        "startTime": chrono::DateTime::from_timestamp_nanos(m.start_time),
        "endTime": chrono::DateTime::from_timestamp_nanos(m.end_time),
        "summary": root.and_then(|r| r.dir_summary.as_ref()),
        "rootID": root.map(|r| r.object_id.to_string()).unwrap_or_default(),
        "retention": retention,
        "pins": m.pins,
        "rootType": root.map(|r| r.entry_type),
        "rootName": root.map(|r| r.name.clone()),
        "stats": m.stats,
    });
    if !m.incomplete_reason.is_empty() {
        v["incomplete"] = json!(m.incomplete_reason);
    }
    v
}

pub(super) async fn snapshots(
    State(state): State<AppState>,
    Query(q): Query<SourceQuery>,
) -> Response {
    json_repo(&state, move |repo| {
        let mut out = Vec::new();
        for (si, snaps) in by_source(repo)? {
            if !q.matches(&si) {
                continue;
            }
            let policy = kopr_repo::policy::effective(repo, &si)?;
            let reasons = kopr_repo::policy::retention_reasons(&policy, &snaps);
            for (m, r) in snaps.iter().zip(reasons) {
                out.push(snapshot_json(m, &r));
            }
        }
        let n = out.len();
        Ok(json!({"snapshots": out, "unfilteredCount": n, "uniqueCount": n}))
    })
    .await
}

pub(super) async fn policies(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let list: Vec<Value> = kopr_repo::policy::list(repo)?
            .into_iter()
            .map(|(si, id, p)| json!({"id": id, "target": si, "policy": p}))
            .collect();
        Ok(json!({"policies": list}))
    })
    .await
}

pub(super) async fn policy_get(
    State(state): State<AppState>,
    Query(q): Query<SourceQuery>,
) -> Response {
    json_repo(&state, move |repo| {
        let si = SourceInfo {
            host: q.host.unwrap_or_default(),
            user_name: q.user_name.unwrap_or_default(),
            path: q.path.unwrap_or_default(),
        };
        match kopr_repo::policy::get_defined(repo, &si)? {
            Some((_, p)) => Ok(serde_json::to_value(p).map_err(ApiError::internal)?),
            None => Err(ApiError::not_found("policy not found")),
        }
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct RestoreRequest {
    root: String,
    #[serde(rename = "fsOutput")]
    fs_output: Option<FsOutput>,
    #[serde(default)]
    options: RestoreOpts,
}

#[derive(Deserialize)]
struct FsOutput {
    #[serde(rename = "targetPath")]
    target_path: String,
    #[serde(rename = "overwriteFiles", default)]
    overwrite_files: bool,
    #[serde(rename = "skipOwners", default)]
    skip_owners: bool,
}

#[derive(Deserialize, Default)]
struct RestoreOpts {
    #[serde(rename = "ignoreErrors", default)]
    ignore_errors: bool,
}

pub(super) async fn restore(
    State(state): State<AppState>,
    Json(req): Json<RestoreRequest>,
) -> Response {
    let Some(out) = req.fs_output else {
        return ApiError::bad("kopr restores to the filesystem only: give fsOutput.targetPath")
            .into_response();
    };
    if out.target_path.is_empty() {
        return ApiError::bad("missing fsOutput.targetPath").into_response();
    }
    let oid: ObjectId = match req.root.parse() {
        Ok(o) => o,
        Err(_) => return ApiError::bad("invalid root object ID").into_response(),
    };
    let handle = state.tasks.start(
        "Restore",
        format!("Restore {} to {}", req.root, out.target_path),
    );
    let opener = state.opener.clone();
    let ignore_errors = req.options.ignore_errors;
    let task = handle.clone();
    let info = handle.info();
    std::thread::spawn(move || {
        let r = (|| -> Result<String, String> {
            let repo = opener().map_err(|e| e.to_string())?;
            let is_dir = read_object(repo.contents(), &oid)
                .ok()
                .is_some_and(|b| DirManifest::decode(&b).is_ok());
            let entry = DirEntry {
                name: String::new(),
                entry_type: if is_dir {
                    EntryType::Directory
                } else {
                    EntryType::File
                },
                permissions: kopr_format::snapshot::Permissions(if is_dir { 0o755 } else { 0o644 }),
                file_size: 0,
                mod_time: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
                user_id: 0,
                group_id: 0,
                object_id: oid,
                dir_summary: None,
            };
            let st = snap::restore(
                &repo,
                &entry,
                std::path::Path::new(&out.target_path),
                snap::RestoreOptions {
                    overwrite: out.overwrite_files,
                    restore_owners: !out.skip_owners,
                    ignore_errors,
                    parallel: 0,
                },
            )
            .map_err(|e| e.to_string())?;
            task.progress(
                format!("{} files ({} bytes) restored", st.files, st.bytes),
                [
                    ("Restored Files".to_string(), Counter::count(st.files)),
                    ("Restored Directories".to_string(), Counter::count(st.dirs)),
                    ("Restored Bytes".to_string(), Counter::bytes(st.bytes)),
                    ("Errors".to_string(), Counter::count(st.failed)),
                ]
                .into(),
            );
            Ok(String::new())
        })();
        handle.finish(r);
    });
    match info {
        Some(t) => Json(t).into_response(),
        None => ApiError::internal("task lost").into_response(),
    }
}
