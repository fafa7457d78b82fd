//! kopr's own JSON: content statistics, maintenance (with each run's message), `maintenance
//! explain` and the repository's size over time.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use kopr_format::snapshot::SnapshotManifest;
use kopr_repo::maintenance::{explain, params, schedule, SafetyParameters};
use kopr_repo::snapshot as snap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_repo, ApiError, AppState};

pub(super) async fn content_stats(State(state): State<AppState>) -> Response {
    json_repo(&state, |repo| {
        let entries = repo.contents().list_contents(false)?;
        Ok(kopr_repo::content_stats::compute(&entries))
    })
    .await
}

pub(super) async fn maintenance_info(State(state): State<AppState>) -> Response {
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
pub(super) struct ExplainQuery {
    safety: Option<String>,
}

pub(super) async fn maintenance_explain(
    State(state): State<AppState>,
    Query(q): Query<ExplainQuery>,
) -> Response {
    let name = q.safety.unwrap_or_else(|| "full".into());
    let Some(safety) = SafetyParameters::by_name(&name) else {
        return ApiError::bad("invalid safety: use full or none").into_response();
    };
    json_repo(&state, move |repo| Ok(explain::explain(repo, &safety)?)).await
}

pub(super) async fn size_history(State(state): State<AppState>) -> Response {
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
