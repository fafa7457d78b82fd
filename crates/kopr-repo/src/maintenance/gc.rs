//! Snapshot garbage collection: walk every live snapshot, remember the contents it uses in a
//! compact set, then mark every other content deleted (old enough ones only) and undelete
//! the deleted contents that are in use again.
//!
//! The set holds 64-bit fingerprints of content ids in a sorted vector (8 bytes a content,
//! no memory-mapped file). A fingerprint collision can only make an unused content look used,
//! which keeps it: the set errs on the side of keeping data. Fingerprints sort as the ids do,
//! so the passes over the index (which yields ids in order) look them up with a cursor that
//! only moves forward, reading the set sequentially instead of one binary search each.

use kopr_format::maintenance_stats::SnapshotGcStats;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use kopr_format::index::ContentId;
use kopr_format::manifest::MANIFEST_CONTENT_PREFIX;
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, EntryType};
use kopr_format::units;
use serde::Serialize;

use super::safety::SafetyParameters;
use super::Observer;
use crate::error::{RepoError, Result};
use crate::repository::Repository;
use crate::snapshot::{list_snapshots, object_content_ids, walk_tree, Visit, VisitFn};

/// A set of content ids kept as sorted 64-bit fingerprints.
#[derive(Debug, Default)]
pub struct ContentSet {
    sorted: Vec<u64>,
    pending: Vec<u64>,
}

/// The fingerprint of a content id: its prefix and first 7 hash bytes, big-endian, so that
/// fingerprints are ordered as the ids are ([`ContentId`]'s order is prefix, then hash).
pub fn fingerprint(id: &ContentId) -> u64 {
    let h = id.hash();
    let mut b = [0u8; 8];
    b[0] = id.prefix().unwrap_or(0);
    let n = h.len().min(7);
    b[1..=n].copy_from_slice(&h[..n]);
    u64::from_be_bytes(b)
}

/// Lookups in a sealed [`ContentSet`] in ascending id order: each continues from where the
/// previous one stopped (a lookup out of order falls back to a binary search).
#[derive(Debug)]
pub struct SetCursor<'a> {
    sorted: &'a [u64],
    at: usize,
}

impl SetCursor<'_> {
    /// The position of `id`'s fingerprint in the set, if it is there.
    pub fn position(&mut self, id: &ContentId) -> Option<usize> {
        let fp = fingerprint(id);
        if self.at > 0 && self.sorted.get(self.at - 1).is_some_and(|&v| v > fp) {
            self.at = self.sorted.partition_point(|&v| v < fp);
        } else {
            // Gallop forward, then search the last step.
            let mut step = 1;
            let mut hi = self.at;
            while hi < self.sorted.len() && self.sorted[hi] < fp {
                self.at = hi + 1;
                hi += step;
                step *= 2;
            }
            let hi = hi.min(self.sorted.len());
            self.at += self.sorted[self.at..hi].partition_point(|&v| v < fp);
        }
        (self.sorted.get(self.at) == Some(&fp)).then_some(self.at)
    }

    /// Whether `id` (or one sharing its fingerprint) is in the set.
    pub fn contains(&mut self, id: &ContentId) -> bool {
        self.position(id).is_some()
    }
}

impl ContentSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a content id.
    pub fn insert(&mut self, id: &ContentId) {
        self.pending.push(fingerprint(id));
        if self.pending.len() >= (1 << 20).max(self.sorted.len()) {
            self.consolidate();
        }
    }

    fn consolidate(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.sorted.append(&mut self.pending);
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.sorted.shrink_to_fit();
    }

    /// Makes lookups possible; call after the last insert.
    pub fn seal(&mut self) {
        self.consolidate();
        self.pending = Vec::new();
    }

    /// Whether the id (or one sharing its fingerprint) was added. Requires [`Self::seal`].
    pub fn contains(&self, id: &ContentId) -> bool {
        self.sorted.binary_search(&fingerprint(id)).is_ok()
    }

    /// Distinct fingerprints held.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of `id`'s fingerprint in the sealed set.
    pub fn position(&self, id: &ContentId) -> Option<usize> {
        self.sorted.binary_search(&fingerprint(id)).ok()
    }

    /// A cursor for lookups in ascending id order. Requires [`Self::seal`].
    pub fn cursor(&self) -> SetCursor<'_> {
        SetCursor {
            sorted: &self.sorted,
            at: 0,
        }
    }

    /// Bytes of memory the set holds.
    pub fn memory_bytes(&self) -> usize {
        (self.sorted.capacity() + self.pending.capacity()) * 8
    }
}

/// Every content reachable from live snapshots (directories, file chunks, chunk lists).
///
/// Directories shared by several snapshots are read once. Whether every content found is
/// known to the index is checked afterwards by [`check_all_present`], in one pass over the
/// index instead of one lookup per content.
pub fn find_in_use_contents(repo: &Repository) -> Result<(ContentSet, usize)> {
    let snaps = list_snapshots(repo, None)?;
    let mut used = ContentSet::new();
    let mut seen_dirs: HashSet<ObjectId> = HashSet::new();
    for m in &snaps {
        let Some(root) = &m.root_entry else { continue };
        let mut visit = |_: &str, e: &DirEntry| -> Result<Visit> {
            let is_dir = e.entry_type == EntryType::Directory;
            if is_dir && !seen_dirs.insert(e.object_id.clone()) {
                return Ok(Visit::Skip);
            }
            let oid = &e.object_id;
            let ids = object_content_ids(repo, oid)
                .map_err(|e| RepoError::Invalid(format!("error verifying {oid}: {e}")))?;
            for cid in &ids {
                used.insert(cid);
            }
            Ok(Visit::Descend)
        };
        walk_tree(repo, root, "", &mut VisitFn(&mut visit))?;
    }
    used.seal();
    Ok((used, snaps.len()))
}

/// Fails when a content that live snapshots use is missing from the index: collecting
/// garbage around a damaged snapshot could delete what a repair would need.
pub fn check_all_present(repo: &Repository, used: &ContentSet) -> Result<()> {
    let mut seen = vec![false; used.sorted.len()];
    let mut cursor = used.cursor();
    repo.contents().for_each_committed(true, &mut |e| {
        if let Some(i) = cursor.position(&e.content_id) {
            seen[i] = true;
        }
        Ok(())
    })?;
    let missing = seen.iter().filter(|s| !**s).count();
    if missing > 0 {
        return Err(RepoError::Invalid(format!(
            "{missing} contents used by live snapshots are missing from the index; not collecting garbage (run 'kopr snapshot verify' to find the damaged snapshots)"
        )));
    }
    Ok(())
}

/// Counters of one GC run: Kopia's `snapshotGCStats`, as recorded, and what only kopr uses.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GcStats {
    /// What Kopia records.
    #[serde(flatten)]
    pub kopia: SnapshotGcStats,
    /// The newest deletion timestamp among unused contents, marked now or before (kopr only,
    /// not recorded in the schedule).
    #[serde(skip)]
    pub latest_mark_seconds: i64,
}

/// Marks unused contents deleted and undeletes used ones. `start` is the maintenance start
/// time that content ages are measured against.
pub fn run_gc(
    repo: &Repository,
    safety: &SafetyParameters,
    start: DateTime<Utc>,
    obs: &dyn Observer,
) -> Result<GcStats> {
    obs.log("Looking for active contents...");
    let (used, snapshots) = find_in_use_contents(repo)?;
    check_all_present(repo, &used)?;
    obs.debug(&format!(
        "found {} contents in use by {snapshots} snapshots ({} of memory)",
        used.len(),
        units::bytes(used.memory_bytes() as i64)
    ));
    obs.log("Looking for unreferenced contents...");
    let mut st = GcStats::default();
    let cm = repo.contents();
    let mut since_flush = 0u64;
    let mut cursor = used.cursor();
    cm.for_each_committed(true, &mut |e| {
        let len = u64::from(e.packed_length);
        if e.content_id.prefix() == Some(MANIFEST_CONTENT_PREFIX) {
            st.kopia.in_use_system_content_count += 1;
            st.kopia.in_use_system_content_size += len;
            return Ok(());
        }
        if cursor.contains(&e.content_id) {
            if e.deleted {
                cm.undelete_content(&e.content_id)?;
                st.kopia.recovered_content_count += 1;
                st.kopia.recovered_content_size += len;
            }
            st.kopia.in_use_content_count += 1;
            st.kopia.in_use_content_size += len;
            return Ok(());
        }
        // Timestamps can run a second or two ahead of the clock (a write in the same second
        // as the previous one is stamped one second later); with no minimum age that must
        // not make a content "too recent".
        let age = start.timestamp() - e.timestamp_seconds;
        let min_age = safety.min_content_age_subject_to_gc.num_seconds();
        if min_age > 0 && age < min_age {
            st.kopia.unreferenced_recent_content_count += 1;
            st.kopia.unreferenced_recent_content_size += len;
            return Ok(());
        }
        st.kopia.unreferenced_content_count += 1;
        st.kopia.unreferenced_content_size += len;
        if e.deleted {
            st.latest_mark_seconds = st.latest_mark_seconds.max(e.timestamp_seconds);
        } else {
            if let Some(ts) = cm.mark_deleted(e)? {
                st.latest_mark_seconds = st.latest_mark_seconds.max(ts);
            }
            st.kopia.deleted_content_count += 1;
            st.kopia.deleted_content_size += len;
            since_flush += 1;
            if since_flush >= 100_000 {
                cm.flush()?;
                since_flush = 0;
            }
        }
        Ok(())
    })?;
    log_gc_stats(&st, obs);
    cm.flush()?;
    Ok(st)
}

/// Kopia's summary lines of a GC run.
fn log_gc_stats(st: &GcStats, obs: &dyn Observer) {
    let b = |n: u64| units::bytes(n as i64);
    obs.log(&format!(
        "GC found {} unused contents ({})",
        st.kopia.unreferenced_content_count,
        b(st.kopia.unreferenced_content_size)
    ));
    obs.log(&format!(
        "GC found {} unused contents that are too recent to delete ({})",
        st.kopia.unreferenced_recent_content_count,
        b(st.kopia.unreferenced_recent_content_size)
    ));
    obs.log(&format!(
        "GC found {} in-use contents ({})",
        st.kopia.in_use_content_count,
        b(st.kopia.in_use_content_size)
    ));
    obs.log(&format!(
        "GC found {} in-use system-contents ({})",
        st.kopia.in_use_system_content_count,
        b(st.kopia.in_use_system_content_size)
    ));
    obs.log(&format!(
        "GC undeleted {} contents ({})",
        st.kopia.recovered_content_count,
        b(st.kopia.recovered_content_size)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: Option<u8>, first: u8, seed: u8) -> ContentId {
        let mut h = [seed; 16];
        h[0] = first;
        ContentId::new(prefix, &h).unwrap()
    }

    #[test]
    fn fingerprints_sort_as_ids_do_and_the_cursor_finds_what_binary_search_finds() {
        let mut ids: Vec<ContentId> = Vec::new();
        for (i, p) in [None, Some(b'k'), Some(b'm'), Some(b'x')]
            .into_iter()
            .enumerate()
        {
            for f in 0..=255u8 {
                ids.push(id(p, f, (i as u8).wrapping_mul(31).wrapping_add(f)));
            }
        }
        ids.sort();
        let fps: Vec<u64> = ids.iter().map(fingerprint).collect();
        assert!(fps.windows(2).all(|w| w[0] < w[1]), "ordered and distinct");
        let mut set = ContentSet::new();
        for (n, i) in ids.iter().enumerate() {
            if n % 3 != 0 {
                set.insert(i);
            }
        }
        set.seal();
        // In order, as the index yields them; then out of order.
        let mut cursor = set.cursor();
        for (n, i) in ids.iter().enumerate() {
            assert_eq!(cursor.contains(i), n % 3 != 0, "{n}");
            assert_eq!(cursor.position(i), set.position(i));
        }
        let mut cursor = set.cursor();
        for (n, i) in ids.iter().enumerate().rev().step_by(7) {
            assert_eq!(cursor.contains(i), n % 3 != 0, "{n} backwards");
        }
    }
}
