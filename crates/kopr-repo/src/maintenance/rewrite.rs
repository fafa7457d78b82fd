//! Content rewrite: moves live contents out of short packs (under 60% of the maximum pack
//! size, Kopia's threshold) into new full ones, orphaning the short packs for blob deletion.
//!
//! Only prefixes with at least two short packs holding live contents are rewritten (one
//! short pack has nothing to merge with). Deleted contents stay where they are: they leave
//! with their pack once they are dropped, and copying them would restart their clock.
//!
//! kopr also empties *partly unused* packs (restic's `--max-unused`): a pack whose contents
//! marked deleted make up more than `max_unused_percent` of its packed bytes has its live
//! contents copied out, so that once the deleted ones are dropped nothing references the pack
//! and blob deletion removes it under the usual safety rules. Nothing is ever deleted here.

use kopr_format::maintenance_stats::RewriteContentsStats;
use std::collections::{BTreeMap, HashMap, HashSet};

use kopr_format::index::IndexEntry;
use serde::Serialize;

use super::safety::SafetyParameters;
use super::Observer;
use crate::error::Result;
use crate::repository::Repository;

/// Percentage of the maximum pack size under which a pack is short.
pub const SHORT_PACK_THRESHOLD_PERCENT: u64 = 60;

/// Counters of one rewrite run: Kopia's `rewriteContentsStats`, as recorded, and kopr's own
/// fields beside them (Kopia ignores fields it does not know).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteStats {
    /// What Kopia records.
    #[serde(flatten)]
    pub kopia: RewriteContentsStats,
    /// kopr only: the unused share (percent) above which a pack was emptied (100: never).
    pub max_unused_percent: u32,
    /// kopr only: packs chosen because their unused share exceeded it.
    pub partly_unused_pack_count: u64,
    /// kopr only: the unused (deleted) packed bytes in those packs.
    pub partly_unused_pack_unused_size: u64,
    /// kopr only: contents of those packs written anew (included in the rewritten counts).
    pub partly_unused_rewritten_content_count: u64,
    /// kopr only: their packed bytes.
    pub partly_unused_rewritten_content_size: u64,
}

#[derive(Default, Clone, Copy)]
struct PackSummary {
    total: u64,
    deleted: u64,
    live: u64,
}

/// Whether a pack with `unused` of `total` packed bytes unused exceeds `max_unused_percent`
/// (never at 100 or more).
pub fn exceeds_unused_share(unused: u64, total: u64, max_unused_percent: u32) -> bool {
    max_unused_percent < 100
        && total > 0
        && u128::from(unused) * 100 > u128::from(total) * u128::from(max_unused_percent)
}

/// The contents to move and why their packs were chosen.
#[derive(Debug, Default)]
pub struct Selection {
    /// Live contents of the chosen packs, by pack and offset.
    pub entries: Vec<IndexEntry>,
    /// Packs chosen for their unused share, with their unused packed bytes.
    pub partly_unused: HashMap<String, u64>,
}

/// The live contents of short packs whose blob id starts with `pack_prefix` (all packs when
/// empty), restricted to prefixed content ids when `only_prefixed`.
pub fn contents_in_short_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
) -> Result<Vec<IndexEntry>> {
    Ok(select_contents(repo, pack_prefix, only_prefixed, 100)?.entries)
}

/// The live contents of short packs (see [`contents_in_short_packs`]) and of packs whose
/// deleted contents exceed `max_unused_percent` of their packed bytes.
///
/// Two passes over the index: pack sizes first, then the contents of the chosen packs, so
/// memory holds one summary per pack and only the contents that will move.
pub fn select_contents(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
    max_unused_percent: u32,
) -> Result<Selection> {
    let max = u64::from(repo.format().config.effective_max_pack_size());
    let threshold = max * SHORT_PACK_THRESHOLD_PERCENT / 100;
    let mut packs: HashMap<String, PackSummary> = HashMap::new();
    repo.contents()
        .for_each_committed(true, &mut |e: &IndexEntry| {
            if !e.pack_blob_id.starts_with(pack_prefix) {
                return Ok(());
            }
            let p = match packs.get_mut(&e.pack_blob_id) {
                Some(p) => p,
                None => packs.entry(e.pack_blob_id.clone()).or_default(),
            };
            p.total += u64::from(e.packed_length);
            if e.deleted {
                p.deleted += u64::from(e.packed_length);
            } else if !only_prefixed || e.content_id.has_prefix() {
                p.live += 1;
            }
            Ok(())
        })?;
    let mut by_prefix: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, p) in &packs {
        if p.total < threshold && p.live > 0 {
            by_prefix
                .entry(id[..1].to_string())
                .or_default()
                .push(id.clone());
        }
    }
    let mut chosen: HashSet<String> = by_prefix
        .into_values()
        .filter(|v| v.len() >= 2)
        .flatten()
        .collect();
    let partly_unused: HashMap<String, u64> = packs
        .iter()
        .filter(|(_, p)| p.live > 0 && exceeds_unused_share(p.deleted, p.total, max_unused_percent))
        .map(|(id, p)| (id.clone(), p.deleted))
        .collect();
    chosen.extend(partly_unused.keys().cloned());
    drop(packs);
    let mut out = Vec::new();
    if chosen.is_empty() {
        return Ok(Selection::default());
    }
    repo.contents()
        .for_each_committed(false, &mut |e: &IndexEntry| {
            if chosen.contains(&e.pack_blob_id) && (!only_prefixed || e.content_id.has_prefix()) {
                out.push(e.clone());
            }
            Ok(())
        })?;
    out.sort_by(|a, b| {
        a.pack_blob_id
            .cmp(&b.pack_blob_id)
            .then(a.pack_offset.cmp(&b.pack_offset))
    });
    Ok(Selection {
        entries: out,
        partly_unused,
    })
}

/// Rewrites the live contents of short packs and of packs more than `max_unused_percent`
/// unused (see the module docs; 100 disables that rule) and flushes.
pub fn rewrite_short_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
    max_unused_percent: u32,
    safety: &SafetyParameters,
    obs: &dyn Observer,
) -> Result<RewriteStats> {
    obs.log("Rewriting contents from short packs...");
    let now = repo.contents().clock().now().timestamp();
    let mut st = RewriteStats {
        max_unused_percent,
        ..Default::default()
    };
    let Selection {
        entries: candidates,
        partly_unused,
    } = select_contents(repo, pack_prefix, only_prefixed, max_unused_percent)?;
    st.partly_unused_pack_count = partly_unused.len() as u64;
    st.partly_unused_pack_unused_size = partly_unused.values().sum();
    if !partly_unused.is_empty() {
        obs.log(&format!(
            "Found {} packs more than {max_unused_percent}% unused ({} unused)",
            partly_unused.len(),
            kopr_format::units::bytes(st.partly_unused_pack_unused_size as i64)
        ));
    }
    let min_age = safety.rewrite_min_age.num_seconds();
    let groups = group_by_pack(candidates, now, min_age, &mut st);
    // Rounds of about 100k contents: packs are read and re-packed on every core, and the
    // index is written after each round so memory stays bounded.
    let workers = crate::parallelism().max(2);
    let mut rest = groups.as_slice();
    while !rest.is_empty() {
        let mut n = 0;
        let mut take = 0;
        while take < rest.len() && (n < 100_000 || take == 0) {
            n += rest[take].len();
            take += 1;
        }
        let (round, tail) = rest.split_at(take);
        rest = tail;
        rewrite_round(repo, workers, round, &partly_unused, &mut st)?;
        repo.contents().flush()?;
    }
    repo.contents().flush()?;
    obs.debug(&format!(
        "Rewrote {} contents ({}), kept {} too recent to move",
        st.kopia.rewritten_content_count,
        kopr_format::units::bytes(st.kopia.rewritten_content_size as i64),
        st.kopia.retained_content_count
    ));
    Ok(st)
}

/// The contents old enough to move, grouped by pack (the others are counted as retained).
fn group_by_pack(
    candidates: Vec<IndexEntry>,
    now: i64,
    min_age_seconds: i64,
    st: &mut RewriteStats,
) -> Vec<Vec<IndexEntry>> {
    let mut groups: Vec<Vec<IndexEntry>> = Vec::new();
    for e in candidates {
        let len = u64::from(e.packed_length);
        if now - e.timestamp_seconds < min_age_seconds {
            st.kopia.retained_content_count += 1;
            st.kopia.retained_content_size += len;
            continue;
        }
        st.kopia.to_rewrite_content_count += 1;
        st.kopia.to_rewrite_content_size += len;
        match groups.last_mut() {
            Some(g) if g[0].pack_blob_id == e.pack_blob_id => g.push(e),
            _ => groups.push(vec![e]),
        }
    }
    groups
}

/// Re-packs the contents of one round's packs on `workers` threads and counts them.
fn rewrite_round(
    repo: &Repository,
    workers: usize,
    round: &[Vec<IndexEntry>],
    partly_unused: &HashMap<String, u64>,
    st: &mut RewriteStats,
) -> Result<()> {
    let results = crate::parallel::map("content rewrite worker", workers, round, &|| false, |g| {
        let n = repo
            .contents()
            .rewrite_pack_contents(&g[0].pack_blob_id, g)?;
        let bytes = g.iter().map(|e| u64::from(e.packed_length)).sum::<u64>();
        let unused = partly_unused.contains_key(&g[0].pack_blob_id);
        Ok([
            n,
            bytes,
            if unused { n } else { 0 },
            if unused { bytes } else { 0 },
        ])
    })?;
    for [count, bytes, unused_count, unused_bytes] in results {
        st.kopia.rewritten_content_count += count;
        st.kopia.rewritten_content_size += bytes;
        st.partly_unused_rewritten_content_count += unused_count;
        st.partly_unused_rewritten_content_size += unused_bytes;
    }
    Ok(())
}
