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
use kopr_format::BlobId;
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

/// The packs whose live contents move, and how many live contents each holds.
#[derive(Debug, Default)]
pub struct ChosenPacks {
    /// Chosen packs (sorted) with their live content counts.
    pub packs: Vec<(BlobId, u64)>,
    /// Packs chosen for their unused share, with their unused packed bytes.
    pub partly_unused: HashMap<BlobId, u64>,
}

/// The live contents of short packs whose blob id starts with `pack_prefix` (all packs when
/// empty), restricted to prefixed content ids when `only_prefixed`.
pub fn contents_in_short_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
) -> Result<Vec<IndexEntry>> {
    let chosen = choose_packs(repo, pack_prefix, only_prefixed, 100)?;
    let packs: HashSet<BlobId> = chosen.packs.into_iter().map(|(id, _)| id).collect();
    contents_of(repo, &packs, only_prefixed)
}

/// Which packs to empty: short packs (see [`contents_in_short_packs`]) and packs whose deleted
/// contents exceed `max_unused_percent` of their packed bytes. One pass over the index, holding
/// a summary per pack; their contents are read afterwards, in batches.
pub fn choose_packs(
    repo: &Repository,
    pack_prefix: &str,
    only_prefixed: bool,
    max_unused_percent: u32,
) -> Result<ChosenPacks> {
    let max = u64::from(repo.format().config.effective_max_pack_size());
    let threshold = max * SHORT_PACK_THRESHOLD_PERCENT / 100;
    let mut packs: HashMap<BlobId, PackSummary> = HashMap::new();
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
    let mut by_prefix: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, p) in &packs {
        if p.total < threshold && p.live > 0 {
            by_prefix.entry(&id[..1]).or_default().push(id);
        }
    }
    let mut chosen: HashSet<&str> = by_prefix
        .into_values()
        .filter(|v| v.len() >= 2)
        .flatten()
        .collect();
    let partly_unused: HashMap<BlobId, u64> = packs
        .iter()
        .filter(|(_, p)| p.live > 0 && exceeds_unused_share(p.deleted, p.total, max_unused_percent))
        .map(|(id, p)| (id.clone(), p.deleted))
        .collect();
    chosen.extend(partly_unused.keys().map(BlobId::as_str));
    let mut chosen: Vec<(BlobId, u64)> = chosen
        .into_iter()
        .map(|id| match packs.get_key_value(id) {
            Some((k, p)) => (k.clone(), p.live),
            None => (BlobId::from(id), 0),
        })
        .collect();
    chosen.sort();
    Ok(ChosenPacks {
        packs: chosen,
        partly_unused,
    })
}

/// The second pass: the live contents of `packs`, by pack and offset.
fn contents_of(
    repo: &Repository,
    packs: &HashSet<BlobId>,
    only_prefixed: bool,
) -> Result<Vec<IndexEntry>> {
    let mut out = Vec::new();
    if packs.is_empty() {
        return Ok(out);
    }
    repo.contents()
        .for_each_committed(false, &mut |e: &IndexEntry| {
            if let Some(pack) = packs.get(e.pack_blob_id.as_str()) {
                if !only_prefixed || e.content_id.has_prefix() {
                    // the pack's one id, shared by its entries, instead of each decoded copy
                    let mut e = e.clone();
                    e.pack_blob_id = pack.clone();
                    out.push(e);
                }
            }
            Ok(())
        })?;
    out.sort_unstable_by(|a, b| {
        a.pack_blob_id
            .cmp(&b.pack_blob_id)
            .then(a.pack_offset.cmp(&b.pack_offset))
    });
    Ok(out)
}

/// At most about this many contents are held in memory at once by a rewrite (~150 bytes
/// each): packs are emptied in batches of about this many live contents, each batch one more
/// pass over the index. `KOPR_REWRITE_BATCH_CONTENTS` overrides it.
const REWRITE_BATCH_CONTENTS: u64 = 1_000_000;

fn rewrite_batch_contents() -> u64 {
    std::env::var("KOPR_REWRITE_BATCH_CONTENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(REWRITE_BATCH_CONTENTS)
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
    let ChosenPacks {
        packs,
        partly_unused,
    } = choose_packs(repo, pack_prefix, only_prefixed, max_unused_percent)?;
    st.partly_unused_pack_count = partly_unused.len() as u64;
    st.partly_unused_pack_unused_size = partly_unused.values().sum();
    if !partly_unused.is_empty() {
        obs.log(&format!(
            "Found {} packs more than {max_unused_percent}% unused ({} unused)",
            partly_unused.len(),
            kopr_format::units::bytes(st.partly_unused_pack_unused_size as i64)
        ));
    }
    // Batches of packs holding a bounded number of live contents, each read from the index
    // in one more pass, so memory does not grow with the repository.
    let batch_contents = rewrite_batch_contents();
    let mut first = 0;
    while first < packs.len() {
        let (mut end, mut n) = (first, 0);
        while end < packs.len() && (n < batch_contents || end == first) {
            n += packs[end].1;
            end += 1;
        }
        let batch: HashSet<BlobId> = packs[first..end].iter().map(|(id, _)| id.clone()).collect();
        let candidates = contents_of(repo, &batch, only_prefixed)?;
        rewrite_batch(repo, candidates, &partly_unused, now, safety, &mut st)?;
        first = end;
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

/// Moves `candidates` (the live contents of some chosen packs, by pack and offset) into new
/// packs, those old enough, counting into `st`.
fn rewrite_batch(
    repo: &Repository,
    candidates: Vec<IndexEntry>,
    partly_unused: &HashMap<BlobId, u64>,
    now: i64,
    safety: &SafetyParameters,
    st: &mut RewriteStats,
) -> Result<()> {
    // Keep only contents old enough to move, then group them by pack (slices of the one
    // vector: no second copy of the contents).
    let mut candidates = candidates;
    candidates.retain(|e| {
        let len = u64::from(e.packed_length);
        if now - e.timestamp_seconds < safety.rewrite_min_age.num_seconds() {
            st.kopia.retained_content_count += 1;
            st.kopia.retained_content_size += len;
            return false;
        }
        st.kopia.to_rewrite_content_count += 1;
        st.kopia.to_rewrite_content_size += len;
        true
    });
    let groups: Vec<&[IndexEntry]> = candidates
        .chunk_by(|a, b| a.pack_blob_id == b.pack_blob_id)
        .collect();
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
        rewrite_round(repo, workers, round, partly_unused, st)?;
        repo.contents().flush()?;
    }
    Ok(())
}

/// Re-packs the contents of one round's packs on `workers` threads and counts them.
fn rewrite_round(
    repo: &Repository,
    workers: usize,
    round: &[&[IndexEntry]],
    partly_unused: &HashMap<BlobId, u64>,
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
