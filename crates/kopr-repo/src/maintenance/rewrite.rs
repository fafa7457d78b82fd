//! Content rewrite: moves live contents out of short packs (under 60% of the maximum pack
//! size, Kopia's threshold) into new full ones, orphaning the short packs for blob deletion.
//!
//! Only prefixes with at least two short packs holding live contents are rewritten (one
//! short pack has nothing to merge with). Deleted contents stay where they are: they leave
//! with their pack once they are dropped, and copying them would restart their clock.

use std::collections::{BTreeMap, HashMap};

use kopr_format::index::{ContentId, IndexEntry};
use serde::Serialize;

use super::safety::SafetyParameters;
use super::Observer;
use crate::error::Result;
use crate::repository::Repository;

/// Percentage of the maximum pack size under which a pack is short.
pub const SHORT_PACK_THRESHOLD_PERCENT: u64 = 60;

/// Counters of one rewrite run (Kopia's `rewriteContentsStats`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteStats {
    /// Contents selected and old enough.
    pub to_rewrite_content_count: u64,
    /// Their packed bytes.
    pub to_rewrite_content_size: u64,
    /// Contents written anew.
    pub rewritten_content_count: u64,
    /// Their packed bytes.
    pub rewritten_content_size: u64,
    /// Contents too young to move.
    pub retained_content_count: u64,
    /// Their packed bytes.
    pub retained_content_size: u64,
}

#[derive(Default)]
struct PackSummary {
    total: u64,
    live: Vec<(ContentId, u32, i64)>,
}

/// The live contents of short packs whose blob id starts with `pack_prefix` (all packs when
/// empty), restricted to prefixed content ids when `only_prefixed`.
pub fn contents_in_short_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
) -> Result<Vec<(ContentId, u32, i64)>> {
    let max = u64::from(repo.format().config.effective_max_pack_size());
    let threshold = max * SHORT_PACK_THRESHOLD_PERCENT / 100;
    let mut packs: HashMap<String, PackSummary> = HashMap::new();
    repo.contents()
        .for_each_committed(true, &mut |e: &IndexEntry| {
            if !e.pack_blob_id.starts_with(pack_prefix) {
                return Ok(());
            }
            let p = packs.entry(e.pack_blob_id.clone()).or_default();
            p.total += u64::from(e.packed_length);
            if !e.deleted && (!only_prefixed || e.content_id.has_prefix()) {
                p.live
                    .push((e.content_id, e.packed_length, e.timestamp_seconds));
            }
            Ok(())
        })?;
    let mut by_prefix: BTreeMap<String, Vec<(String, PackSummary)>> = BTreeMap::new();
    for (id, p) in packs {
        if p.total < threshold && !p.live.is_empty() {
            by_prefix
                .entry(id[..1].to_string())
                .or_default()
                .push((id, p));
        }
    }
    let mut out = Vec::new();
    for (_, mut short) in by_prefix {
        if short.len() < 2 {
            continue;
        }
        short.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, p) in short {
            out.extend(p.live);
        }
    }
    Ok(out)
}

/// Rewrites the live contents of short packs (see the module docs) and flushes.
pub fn rewrite_short_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
    safety: &SafetyParameters,
    obs: &dyn Observer,
) -> Result<RewriteStats> {
    obs.log("Rewriting contents from short packs...");
    let now = repo.contents().clock().now().timestamp();
    let mut st = RewriteStats::default();
    for (id, len, ts) in contents_in_short_packs(repo, pack_prefix, only_prefixed)? {
        let len = u64::from(len);
        if now - ts < safety.rewrite_min_age.num_seconds() {
            st.retained_content_count += 1;
            st.retained_content_size += len;
            continue;
        }
        st.to_rewrite_content_count += 1;
        st.to_rewrite_content_size += len;
        if repo.contents().rewrite_content(&id)? {
            st.rewritten_content_count += 1;
            st.rewritten_content_size += len;
        }
    }
    repo.contents().flush()?;
    obs.debug(&format!(
        "Rewrote {} contents ({}), kept {} too recent to move",
        st.rewritten_content_count,
        kopr_format::units::bytes(st.rewritten_content_size as i64),
        st.retained_content_count
    ));
    Ok(st)
}
