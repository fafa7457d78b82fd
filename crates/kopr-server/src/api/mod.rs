//! The routes: Kopia's JSON API (`/api/v1/...`, Kopia's field names), kopr's own JSON under
//! `/api/v1/kopr/...` (content statistics, maintenance, `maintenance explain`, size over
//! time), the web UI's files and the login form. Every handler that touches the repository
//! runs on a blocking thread with a repository opened for it. Nothing here serves the
//! repository password, its keys or the storage's secrets: status lists algorithms and the
//! storage type only. Sources, snapshots and restores are in [`snapshots`], object downloads
//! in [`objects`], kopr's own JSON in [`kopr`].

mod kopr;
mod objects;
mod snapshots;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use kopr_repo::Repository;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{self, Auth};
use crate::notification;
use crate::tasks::TaskManager;
use crate::{assets, ClientInfo, Opener, ServerOptions};

use kopr::{content_stats, maintenance_explain, maintenance_info, size_history};
use objects::object_get;
use snapshots::{
    policies, policy_get, restore, snapshots, sources, sources_create, sources_upload,
};

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
