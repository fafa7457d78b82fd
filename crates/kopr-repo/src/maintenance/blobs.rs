//! Deleting pack blobs that no index entry references any more (after rewrites and drops),
//! unless they are too young, newer than the maintenance start, or part of a live session.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use kopr_blob::BlobMetadata;
use kopr_format::{units, BlobId};
use serde::Serialize;

use super::safety::SafetyParameters;
use super::Observer;
use crate::content::pack_session;
use crate::error::Result;
use crate::repository::Repository;
use crate::session::SessionInfo;

/// Counters of one pack deletion run: Kopia's `deleteUnreferencedPacksStats`, as recorded.
pub type DeletePacksStats = kopr_format::maintenance_stats::DeleteUnreferencedPacksStats;

/// Why an unreferenced blob is kept, if it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "camelCase")]
pub enum Retention {
    /// Written after the maintenance run started.
    AfterCutoff,
    /// Younger than `BlobDeleteMinAge`; deletable from `until`.
    BelowMinAge {
        /// When it becomes old enough.
        until: DateTime<Utc>,
    },
    /// Its write session is still live; deletable from `until` unless it checkpoints again.
    ActiveSession {
        /// The session.
        session: String,
        /// When the session expires.
        until: DateTime<Utc>,
    },
}

/// The rule that keeps an unreferenced blob at `cutoff`, or `None` when it may go.
pub fn retention(
    bm: &BlobMetadata,
    cutoff: DateTime<Utc>,
    sessions: &std::collections::HashMap<String, SessionInfo>,
    safety: &SafetyParameters,
) -> Option<Retention> {
    if bm.timestamp > cutoff {
        return Some(Retention::AfterCutoff);
    }
    if cutoff - bm.timestamp < safety.blob_delete_min_age {
        return Some(Retention::BelowMinAge {
            until: bm.timestamp + safety.blob_delete_min_age,
        });
    }
    if let Some(sid) = pack_session(&bm.id) {
        if let Some(s) = sessions.get(sid) {
            if cutoff - s.checkpoint_time < safety.session_expiration_age {
                return Some(Retention::ActiveSession {
                    session: sid.to_string(),
                    until: s.checkpoint_time + safety.session_expiration_age,
                });
            }
        }
    }
    None
}

/// Blobs under `prefixes` that no index entry (deleted ones included) points to.
pub fn unreferenced_blobs(repo: &Repository, prefixes: &[&str]) -> Result<Vec<BlobMetadata>> {
    let mut used: HashSet<BlobId> = HashSet::new();
    repo.contents().for_each_committed(true, &mut |e| {
        if !used.contains(&e.pack_blob_id) {
            used.insert(e.pack_blob_id.clone());
        }
        Ok(())
    })?;
    let mut out = Vec::new();
    for p in prefixes {
        for bm in repo.storage().list_all(p)? {
            if !used.contains(bm.id.as_str()) {
                out.push(bm);
            }
        }
    }
    Ok(out)
}

/// Deletes unreferenced blobs under `prefixes` that no safety rule keeps. `start` is the
/// maintenance start time (blobs written after it are never touched).
pub fn delete_unreferenced(
    repo: &Repository,
    prefixes: &[&str],
    start: DateTime<Utc>,
    safety: &SafetyParameters,
    obs: &dyn Observer,
) -> Result<DeletePacksStats> {
    obs.log("Looking for unreferenced pack blobs...");
    let sessions = repo.contents().active_sessions()?;
    let cutoff = start + Duration::seconds(1);
    let unused = unreferenced_blobs(repo, prefixes)?;
    obs.log(&format!("found {} pack blobs not in use", unused.len()));
    let mut st = DeletePacksStats::default();
    let mut doomed = Vec::new();
    for bm in unused {
        match retention(&bm, cutoff, &sessions, safety) {
            Some(why) => {
                obs.debug(&format!("preserving {}: {why:?}", bm.id));
                st.retained_pack_count += 1;
                st.retained_total_size += bm.length;
            }
            None => {
                st.unreferenced_pack_count += 1;
                st.unreferenced_total_size += bm.length;
                doomed.push(bm);
            }
        }
    }
    obs.log(&format!(
        "Found {} blobs to delete ({})",
        st.unreferenced_pack_count,
        units::bytes(st.unreferenced_total_size as i64)
    ));
    for bm in doomed {
        repo.storage().delete_blob(&bm.id)?;
        st.deleted_pack_count += 1;
        st.deleted_total_size += bm.length;
    }
    obs.log(&format!(
        "Deleted total {} unreferenced blobs ({})",
        st.deleted_pack_count,
        units::bytes(st.deleted_total_size as i64)
    ));
    Ok(st)
}
