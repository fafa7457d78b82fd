//! The routes: Kopia's JSON API (`/api/v1/...`, Kopia's field names), kopr's own JSON under
//! `/api/v1/kopr/...` (content statistics, maintenance, `maintenance explain`, size over
//! time), the web UI's files and the login form. Every handler that touches the repository
//! runs on a blocking thread with a repository opened for it. Nothing here serves the
//! repository password, its keys or the storage's secrets: status lists algorithms and the
//! storage type only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType, SnapshotManifest, SourceInfo};
use kopr_repo::maintenance::{explain, params, schedule, SafetyParameters};
use kopr_repo::object::{read_object, ObjectReader};
use kopr_repo::snapshot as snap;
use kopr_repo::Repository;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{self, Auth};
use crate::notification::{self, events};
use crate::tasks::{Counter, TaskHandle, TaskManager};
use crate::{assets, ClientInfo, Opener, ServerOptions};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Credentials and sessions.
    pub auth: Arc<Auth>,
    /// Background tasks.
    pub tasks: Arc<TaskManager>,
    /// Opens the repository.
    pub opener: Opener,
    /// The connection's client options.
    pub client: Arc<ClientInfo>,
}

impl AppState {
    /// The state of a server started with `opts`.
    pub fn new(opts: ServerOptions, opener: Opener, tls: bool) -> AppState {
        AppState {
            auth: Arc::new(Auth::new(&opts.username, opts.password.as_deref(), tls)),
            tasks: Arc::new(TaskManager::default()),
            opener,
            client: Arc::new(opts.client),
        }
    }
}

/// An error answer: Kopia's `{"code","error"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            message.to_string(),
        )
    }
}

impl From<kopr_repo::RepoError> for ApiError {
    fn from(e: kopr_repo::RepoError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<notification::NotifyError> for ApiError {
    fn from(e: notification::NotifyError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.status, self.code, &self.message)
    }
}

/// A JSON error response.
pub fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "error": message}))).into_response()
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs `f` on a blocking thread with a freshly opened repository.
async fn with_repo<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Repository) -> ApiResult<T> + Send + 'static,
{
    let opener = state.opener.clone();
    tokio::task::spawn_blocking(move || {
        let repo = opener().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_CONNECTED",
                e.to_string(),
            )
        })?;
        f(&repo)
    })
    .await
    .map_err(ApiError::internal)?
}

async fn json_repo<T, F>(state: &AppState, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Repository) -> ApiResult<T> + Send + 'static,
{
    match with_repo(state, f).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The router, with authentication in front of every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(ui_file))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/api/v1/repo/status", get(repo_status))
        .route("/api/v1/current-user", get(current_user))
        .route("/api/v1/sources", get(sources).post(sources_create))
        .route("/api/v1/sources/upload", post(sources_upload))
        .route("/api/v1/snapshots", get(snapshots))
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/policy", get(policy_get))
        .route("/api/v1/objects/{oid}", get(object_get))
        .route("/api/v1/restore", post(restore))
        .route("/api/v1/tasks", get(tasks_list))
        .route("/api/v1/tasks/{id}", get(task_get))
        .route("/api/v1/tasks/{id}/cancel", post(task_cancel))
        .route("/api/v1/mounts", get(mounts))
        .route("/api/v1/notificationProfiles", get(notification_profiles))
        .route("/api/v1/kopr/content-stats", get(content_stats))
        .route("/api/v1/kopr/maintenance", get(maintenance_info))
        .route("/api/v1/kopr/maintenance/explain", get(maintenance_explain))
        .route("/api/v1/kopr/size-history", get(size_history))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .with_state(state)
}

/// Every route the server answers, for tests that check each one needs authentication.
pub const ROUTES: [(&str, &str); 24] = [
    ("GET", "/"),
    ("GET", "/ui/app.js"),
    ("POST", "/logout"),
    ("GET", "/api/v1/repo/status"),
    ("GET", "/api/v1/current-user"),
    ("GET", "/api/v1/sources"),
    ("POST", "/api/v1/sources"),
    ("POST", "/api/v1/sources/upload"),
    ("GET", "/api/v1/snapshots"),
    ("GET", "/api/v1/policies"),
    ("GET", "/api/v1/policy"),
    ("GET", "/api/v1/objects/OID"),
    ("POST", "/api/v1/restore"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/1"),
    ("POST", "/api/v1/tasks/1/cancel"),
    ("GET", "/api/v1/mounts"),
    ("GET", "/api/v1/notificationProfiles"),
    ("GET", "/api/v1/kopr/content-stats"),
    ("GET", "/api/v1/kopr/maintenance"),
    ("GET", "/api/v1/kopr/maintenance/explain"),
    ("GET", "/api/v1/kopr/size-history"),
    ("GET", "/no/such/page"),
    ("GET", "/api/v1/no-such-route"),
];

async fn not_found() -> Response {
    ApiError::not_found("not found").into_response()
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    static_file("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn ui_file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => static_file("text/javascript; charset=utf-8", assets::APP_JS),
        "style.css" => static_file("text/css; charset=utf-8", assets::STYLE_CSS),
        _ => ApiError::not_found("not found").into_response(),
    }
}

async fn login_form(State(state): State<AppState>) -> Response {
    if state.auth.is_open() {
        return Redirect::to("/").into_response();
    }
    auth::login_page("")
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    if !state.auth.check(&f.username, &f.password) {
        return auth::login_page("Invalid user name or password.");
    }
    let token = state.auth.new_session();
    (
        [(header::SET_COOKIE, state.auth.cookie(&token))],
        Redirect::to("/"),
    )
        .into_response()
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = auth::session_token(&headers) {
        state.auth.end_session(&t);
    }
    (
        [(header::SET_COOKIE, state.auth.cookie(""))],
        Redirect::to("/login"),
    )
        .into_response()
}

async fn repo_status(State(state): State<AppState>) -> Response {
    let client = state.client.clone();
    json_repo(&state, move |repo| {
        let c = &repo.format().config;
        let mut v = json!({
            "connected": true,
            "configFile": client.config_file,
            "formatVersion": c.version,
            "hash": c.hash,
            "encryption": c.encryption,
            "splitter": c.splitter,
            "maxPackSize": c.effective_max_pack_size(),
            "storage": client.storage_type,
            "supportsContentCompression": true,
            "hostname": client.hostname,
            "username": client.username,
            "enableActions": false,
            "uniqueIDHex": repo.format().unique_id_hex(),
        });
        if !c.ecc.is_empty() {
            v["ecc"] = json!(c.ecc);
            v["eccOverheadPercent"] = json!(c.ecc_overhead_percent);
        }
        if client.read_only {
            v["readonly"] = json!(true);
        }
        if !client.description.is_empty() {
            v["description"] = json!(client.description);
        }
        Ok(v)
    })
    .await
}

async fn current_user(State(state): State<AppState>) -> Response {
    Json(json!({"username": state.client.username, "hostname": state.client.hostname}))
        .into_response()
}

/// Kopia's source filter: `userName`, `host`, `path` (each optional).
#[derive(Debug, Default, Deserialize)]
struct SourceQuery {
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

async fn sources(State(state): State<AppState>, Query(q): Query<SourceQuery>) -> Response {
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
struct CreateSourceRequest {
    path: String,
    #[serde(rename = "createSnapshot", default)]
    create_snapshot: bool,
}

async fn sources_create(
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

async fn sources_upload(State(state): State<AppState>, Query(q): Query<SourceQuery>) -> Response {
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
    Ok(m.id)
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

async fn snapshots(State(state): State<AppState>, Query(q): Query<SourceQuery>) -> Response {
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

async fn policies(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let list: Vec<Value> = kopr_repo::policy::list(repo)?
            .into_iter()
            .map(|(si, id, p)| json!({"id": id, "target": si, "policy": p}))
            .collect();
        Ok(json!({"policies": list}))
    })
    .await
}

async fn policy_get(State(state): State<AppState>, Query(q): Query<SourceQuery>) -> Response {
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
struct ObjectQuery {
    fname: Option<String>,
    format: Option<String>,
}

/// A writer that hands what it is given to the response body, in chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

fn disposition(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' || c == '/' {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

/// Appends the tree of directory `oid` to `tar` under `prefix`.
fn tar_dir<W: Write>(
    repo: &Repository,
    tar: &mut tar::Builder<W>,
    dir: &DirManifest,
    prefix: &str,
) -> Result<(), String> {
    for e in &dir.entries {
        let path = if prefix.is_empty() {
            e.name.clone()
        } else {
            format!("{prefix}/{}", e.name)
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.permissions.0 & 0o7777);
        h.set_mtime(u64::try_from(e.mod_time.div_euclid(1_000_000_000)).unwrap_or(0));
        h.set_uid(u64::from(e.user_id));
        h.set_gid(u64::from(e.group_id));
        match e.entry_type {
            EntryType::Directory => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(|e| e.to_string())?;
                let sub = read_object(repo.contents(), &e.object_id)
                    .map_err(|e| e.to_string())
                    .and_then(|b| DirManifest::decode(&b).map_err(|e| e.to_string()))?;
                tar_dir(repo, tar, &sub, &path)?;
            }
            EntryType::Symlink => {
                let target =
                    read_object(repo.contents(), &e.object_id).map_err(|e| e.to_string())?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &path, String::from_utf8_lossy(&target).as_ref())
                    .map_err(|e| e.to_string())?;
            }
            EntryType::File => {
                let r =
                    ObjectReader::open(repo.contents(), &e.object_id).map_err(|e| e.to_string())?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(r.len());
                tar.append_data(&mut h, &path, r)
                    .map_err(|e| e.to_string())?;
            }
            EntryType::Unknown => {}
        }
    }
    Ok(())
}

async fn object_get(
    State(state): State<AppState>,
    Path(oid): Path<String>,
    Query(q): Query<ObjectQuery>,
) -> Response {
    let oid: ObjectId = match oid.parse() {
        Ok(o) => o,
        Err(_) => return ApiError::bad("invalid object ID").into_response(),
    };
    let as_tar = q.format.as_deref() == Some("tar");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<ApiResult<u64>>();
    let opener = state.opener.clone();
    std::thread::spawn(move || {
        let repo = match opener() {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(ApiError::internal(e)));
                return;
            }
        };
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        if as_tar {
            let dir = match read_object(repo.contents(), &oid)
                .map_err(|e| ApiError::not_found(e.to_string()))
                .and_then(|b| DirManifest::decode(&b).map_err(|_| ApiError::bad("not a directory")))
            {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(0));
            let mut tar = tar::Builder::new(&mut w);
            tar.follow_symlinks(false);
            let r = tar_dir(&repo, &mut tar, &dir, "")
                .and_then(|_| tar.finish().map_err(|e| e.to_string()));
            drop(tar);
            match r {
                Ok(()) => {
                    let _ = w.flush();
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e)));
                }
            }
            return;
        }
        let mut r = match ObjectReader::open(repo.contents(), &oid) {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(ApiError::not_found(format!("object not found: {e}"))));
                return;
            }
        };
        let _ = ready_tx.send(Ok(r.len()));
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let len = match ready_rx.await {
        Ok(Ok(len)) => len,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return ApiError::internal("download failed").into_response(),
    };
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    let ct = if as_tar {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    if !as_tar {
        if let Ok(v) = len.to_string().parse() {
            h.insert(header::CONTENT_LENGTH, v);
        }
    }
    if let Some(name) = q.fname.as_deref().filter(|n| !n.is_empty()) {
        if let Ok(v) = disposition(name).parse() {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

#[derive(Deserialize)]
struct RestoreRequest {
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

async fn restore(State(state): State<AppState>, Json(req): Json<RestoreRequest>) -> Response {
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

async fn tasks_list(State(state): State<AppState>) -> Response {
    Json(json!({"tasks": state.tasks.list()})).into_response()
}

async fn task_get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.tasks.get(&id) {
        Some(t) => Json(t).into_response(),
        None => ApiError::not_found("task not found").into_response(),
    }
}

async fn task_cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if state.tasks.cancel(&id) {
        Json(json!({})).into_response()
    } else {
        ApiError::not_found("task not found").into_response()
    }
}

async fn mounts() -> Response {
    Json(json!({"items": []})).into_response()
}

async fn notification_profiles(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        Ok(notification::list_profiles(repo)?
            .into_iter()
            .map(|p| {
                json!({"profile": p.name, "type": p.method.kind, "summary": p.summary(), "minSeverity": p.min_severity})
            })
            .collect::<Vec<_>>())
    })
    .await
}

async fn content_stats(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let entries = repo.contents().list_contents(false)?;
        Ok(kopr_repo::content_stats::compute(&entries))
    })
    .await
}

async fn maintenance_info(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let p = params::get_params(repo)?;
        let s = schedule::get_schedule(repo)?;
        let mut v = serde_json::to_value(&p).map_err(ApiError::internal)?;
        let messages: BTreeMap<String, Vec<String>> = s
            .runs
            .iter()
            .map(|(task, runs)| {
                let msgs = runs
                    .iter()
                    .map(|r| {
                        if r.success {
                            kopr_format::maintenance_stats::success_message(r.extra.as_ref())
                        } else {
                            format!("ERROR: {}", r.error)
                        }
                    })
                    .collect();
                (task.clone(), msgs)
            })
            .collect();
        v["schedule"] = serde_json::to_value(&s).map_err(ApiError::internal)?;
        v["runMessages"] = json!(messages);
        v["maxUnusedPercentEffective"] = json!(p.effective_max_unused_percent());
        v["now"] = json!(repo.contents().clock().now());
        Ok(v)
    })
    .await
}

#[derive(Deserialize)]
struct ExplainQuery {
    safety: Option<String>,
}

async fn maintenance_explain(
    State(state): State<AppState>,
    Query(q): Query<ExplainQuery>,
) -> Response {
    let name = q.safety.unwrap_or_else(|| "full".into());
    let Some(safety) = SafetyParameters::by_name(&name) else {
        return ApiError::bad("invalid safety: use full or none").into_response();
    };
    json_repo(&state, move |repo| Ok(explain::explain(repo, &safety)?)).await
}

async fn size_history(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let mut snaps: Vec<SnapshotManifest> = snap::list_snapshots(repo, None)?
            .into_iter()
            .filter(|m| m.incomplete_reason.is_empty())
            .collect();
        snaps.sort_by_key(|m| m.end_time);
        let stats = snap::storage_stats(repo, &snaps)?;
        let points: Vec<Value> = snaps
            .iter()
            .zip(stats)
            .map(|(m, (new, total))| {
                json!({
                    "time": chrono::DateTime::from_timestamp_nanos(m.end_time),
                    "snapshotID": m.id,
                    "source": m.source.to_string(),
                    "addedPackedBytes": new.packed_content_bytes,
                    "totalPackedBytes": total.packed_content_bytes,
                    "totalOriginalBytes": total.original_content_bytes,
                })
            })
            .collect();
        Ok(json!({"points": points}))
    })
    .await
}
