//! The epoch manager: which index blobs make up the repository's current index.
//!
//! Index blobs are written into the current *write epoch* as `xn<epoch>_<id>`. Epoch markers
//! `xe<n>` advance the write epoch; maintenance compacts a settled epoch into `xs<epoch>_…`
//! blobs and ranges of epochs into `xr<min>_<max>_…` checkpoints; `xw<unix-seconds>` blobs
//! are deletion watermarks below which deleted index entries are ignored. Sets of compacted
//! blobs are complete only when all members of a `-s<set>-c<count>` group are present.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kopr_blob::clock::Clock;
use kopr_blob::{BlobMetadata, BlobStorage, PutOptions};
use kopr_format::repository_blob::EpochParameters;

use crate::error::{RepoError, Result};

/// Prefix of epoch marker blobs.
pub(crate) const EPOCH_MARKER_PREFIX: &str = "xe";
/// Prefix of index blobs written during an epoch.
pub(crate) const UNCOMPACTED_PREFIX: &str = "xn";
/// Prefix of single-epoch compacted index blobs.
pub(crate) const SINGLE_EPOCH_COMPACTION_PREFIX: &str = "xs";
/// Prefix of range checkpoint index blobs.
pub(crate) const RANGE_CHECKPOINT_PREFIX: &str = "xr";
/// Prefix of deletion watermark blobs.
pub(crate) const DELETION_WATERMARK_PREFIX: &str = "xw";
/// Epochs newer than `write_epoch - NUM_UNSETTLED_EPOCHS` may still receive index blobs.
pub(crate) const NUM_UNSETTLED_EPOCHS: i64 = 2;

/// Prefix of index blobs written during `epoch`.
pub(crate) fn uncompacted_epoch_prefix(epoch: i64) -> String {
    format!("{UNCOMPACTED_PREFIX}{epoch}_")
}

/// Prefix of the compacted index blobs of `epoch`.
pub(crate) fn compacted_epoch_prefix(epoch: i64) -> String {
    format!("{SINGLE_EPOCH_COMPACTION_PREFIX}{epoch}_")
}

/// Prefix of a range checkpoint covering `min..=max`.
pub(crate) fn range_checkpoint_prefix(min: i64, max: i64) -> String {
    format!("{RANGE_CHECKPOINT_PREFIX}{min}_{max}_")
}

/// The epoch number in an id such as `xn12_abc` or `xe12` (digits after the letters, before `_`).
pub(crate) fn epoch_number_from_blob_id(id: &str) -> Option<i64> {
    let head = id.split('_').next().unwrap_or(id);
    let digits = head.trim_start_matches(|c: char| !c.is_ascii_digit());
    digits.parse().ok()
}

/// The `(min, max)` epochs of a range checkpoint id `xr<min>_<max>_…`.
pub(crate) fn epoch_range_from_blob_id(id: &str) -> Option<(i64, i64)> {
    let mut parts = id.split('_');
    let first = parts.next()?;
    let second = parts.next()?;
    parts.next()?;
    let first = first.trim_start_matches(|c: char| !c.is_ascii_digit());
    Some((first.parse().ok()?, second.parse().ok()?))
}

/// The time encoded in a deletion watermark id.
pub(crate) fn deletion_watermark_from_blob_id(id: &str) -> Option<DateTime<Utc>> {
    let secs: i64 = id.strip_prefix(DELETION_WATERMARK_PREFIX)?.parse().ok()?;
    Utc.timestamp_opt(secs, 0).single()
}

/// Groups blobs into complete sets. Blobs named `…-s<set>-c<count>…` form a set that is
/// complete when `count` of them are present; any other blob is a set of its own.
pub(crate) fn complete_sets(bms: &[BlobMetadata]) -> Vec<Vec<BlobMetadata>> {
    let mut partial: HashMap<&str, Vec<BlobMetadata>> = HashMap::new();
    let mut complete = Vec::new();
    for bm in bms {
        let parts: Vec<&str> = bm.id.split('-').collect();
        let grouped = parts.len() >= 3 && parts[1].starts_with('s') && parts[2].starts_with('c');
        let count = if grouped {
            parts[2][1..].parse::<usize>().ok()
        } else {
            None
        };
        match count {
            Some(count) => {
                let set = partial.entry(parts[1]).or_default();
                set.push(bm.clone());
                if set.len() == count {
                    complete.push(set.clone());
                }
            }
            None => complete.push(vec![bm.clone()]),
        }
    }
    complete
}

/// A range checkpoint: compacted indexes of epochs `min..=max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeCheckpoint {
    /// First epoch covered.
    pub min_epoch: i64,
    /// Last epoch covered.
    pub max_epoch: i64,
    /// The blobs of the complete set.
    pub blobs: Vec<BlobMetadata>,
}

/// The longest chain of consecutive range checkpoints starting at epoch 0 (ties: fewest links).
pub(crate) fn longest_range_checkpoints(ranges: &[RangeCheckpoint]) -> Vec<RangeCheckpoint> {
    let mut by_min: BTreeMap<i64, Vec<&RangeCheckpoint>> = BTreeMap::new();
    for r in ranges {
        by_min.entry(r.min_epoch).or_default().push(r);
    }
    fn chain<'a>(
        start: i64,
        by_min: &BTreeMap<i64, Vec<&'a RangeCheckpoint>>,
        memo: &mut HashMap<i64, Vec<&'a RangeCheckpoint>>,
    ) -> Vec<&'a RangeCheckpoint> {
        if let Some(v) = memo.get(&start) {
            return v.clone();
        }
        let mut best: Vec<&RangeCheckpoint> = Vec::new();
        let mut best_max = 0;
        for cp in by_min.get(&start).map(Vec::as_slice).unwrap_or(&[]) {
            if cp.max_epoch < start {
                continue; // a malformed range cannot extend the chain
            }
            let mut combined = vec![*cp];
            combined.extend(chain(cp.max_epoch + 1, by_min, memo));
            let m = combined.last().map(|c| c.max_epoch).unwrap_or(0);
            if m > best_max || (m == best_max && combined.len() < best.len()) {
                best_max = m;
                best = combined;
            }
        }
        memo.insert(start, best.clone());
        best
    }
    let mut memo = HashMap::new();
    chain(0, &by_min, &mut memo).into_iter().cloned().collect()
}

/// Lists every prefix, each on its own thread, in the order given.
fn list_side_by_side<P: AsRef<str> + Sync>(
    st: &dyn BlobStorage,
    prefixes: &[P],
) -> Result<Vec<Vec<BlobMetadata>>> {
    std::thread::scope(|scope| {
        let listings: Vec<_> = prefixes
            .iter()
            .map(|p| scope.spawn(move || st.list_all(p.as_ref())))
            .collect();
        listings
            .into_iter()
            .map(|l| match l.join() {
                Ok(listed) => Ok(listed?),
                Err(_) => Err(RepoError::Worker("an epoch listing panicked".into())),
            })
            .collect()
    })
}

/// Whether the write epoch should advance, given the index blobs of the current epoch.
pub(crate) fn should_advance(bms: &[BlobMetadata], params: &EpochParameters) -> bool {
    let (Some(min), Some(max)) = (
        bms.iter().map(|b| b.timestamp).min(),
        bms.iter().map(|b| b.timestamp).max(),
    ) else {
        return false;
    };
    if max - min < Duration::nanoseconds(params.min_epoch_duration_nanos) {
        return false;
    }
    let total: u64 = bms.iter().map(|b| b.length).sum();
    bms.len() as i64 >= params.advance_on_count_threshold
        || total as i64 >= params.advance_on_total_size_bytes_threshold
}

/// A point-in-time view of the epoch-managed blobs.
#[derive(Debug, Clone, Default)]
pub struct EpochState {
    /// The epoch new index blobs are written into.
    pub write_epoch: i64,
    /// When each epoch started (its marker's timestamp).
    pub epoch_start_time: BTreeMap<i64, DateTime<Utc>>,
    /// Index blobs of epochs `write_epoch-1 ..= write_epoch+1`.
    pub uncompacted: BTreeMap<i64, Vec<BlobMetadata>>,
    /// Complete single-epoch compaction sets.
    pub single_epoch_compactions: BTreeMap<i64, Vec<BlobMetadata>>,
    /// The chain of range checkpoints used for reading.
    pub range_checkpoints: Vec<RangeCheckpoint>,
    /// Deleted index entries at or before this time are ignored.
    pub deletion_watermark: Option<DateTime<Utc>>,
    /// Epoch marker blobs.
    pub epoch_markers: Vec<BlobMetadata>,
    /// Deletion watermark blobs.
    pub watermark_blobs: Vec<BlobMetadata>,
    /// After this time the view must be refreshed.
    pub valid_until: Option<DateTime<Utc>>,
}

impl EpochState {
    /// The newest epoch that can no longer receive index blobs.
    pub fn last_settled_epoch(&self) -> i64 {
        self.write_epoch - NUM_UNSETTLED_EPOCHS
    }

    /// Whether `epoch` is settled.
    pub fn is_settled(&self, epoch: i64) -> bool {
        epoch <= self.last_settled_epoch()
    }
}

/// Reads and writes the epoch-managed index blobs of one repository.
#[derive(Debug)]
pub struct EpochManager {
    st: Arc<dyn BlobStorage>,
    params: EpochParameters,
    clock: Arc<dyn Clock>,
    state: Mutex<Option<EpochState>>,
}

impl EpochManager {
    /// A manager over `st` with the repository's epoch parameters.
    pub fn new(st: Arc<dyn BlobStorage>, params: EpochParameters, clock: Arc<dyn Clock>) -> Self {
        EpochManager {
            st,
            params,
            clock,
            state: Mutex::new(None),
        }
    }

    /// The epoch parameters in use.
    pub fn parameters(&self) -> &EpochParameters {
        &self.params
    }

    /// Forgets the cached view; the next call lists the storage again.
    pub fn invalidate(&self) {
        if let Ok(mut g) = self.state.lock() {
            *g = None;
        }
    }

    /// The current view, refreshed from storage when stale.
    pub fn current(&self) -> Result<EpochState> {
        let now = self.clock.now();
        if let Ok(g) = self.state.lock() {
            if let Some(s) = g.as_ref() {
                if s.valid_until.is_some_and(|v| now < v) {
                    return Ok(s.clone());
                }
            }
        }
        let s = self.load()?;
        if let Ok(mut g) = self.state.lock() {
            *g = Some(s.clone());
        }
        Ok(s)
    }

    fn load(&self) -> Result<EpochState> {
        let refresh = Duration::nanoseconds(self.params.refresh_frequency_nanos.max(1));
        let mut s = EpochState {
            valid_until: Some(self.clock.now() + refresh),
            ..EpochState::default()
        };
        // Each list is a round trip on an object store: the four kinds are listed side by side,
        // then the epochs around the write epoch, as Kopia does.
        let [markers, watermarks, singles, range_blobs]: [Vec<BlobMetadata>; 4] =
            list_side_by_side(
                &*self.st,
                &[
                    EPOCH_MARKER_PREFIX,
                    DELETION_WATERMARK_PREFIX,
                    SINGLE_EPOCH_COMPACTION_PREFIX,
                    RANGE_CHECKPOINT_PREFIX,
                ],
            )?
            .try_into()
            .map_err(|_| RepoError::Worker("epoch listing lost a prefix".into()))?;
        for m in &markers {
            if let Some(n) = epoch_number_from_blob_id(&m.id) {
                let t = s.epoch_start_time.entry(n).or_insert(m.timestamp);
                if m.timestamp < *t {
                    *t = m.timestamp;
                }
                s.write_epoch = s.write_epoch.max(n);
            }
        }
        s.epoch_markers = markers;

        s.deletion_watermark = watermarks
            .iter()
            .filter_map(|b| deletion_watermark_from_blob_id(&b.id))
            .max();
        s.watermark_blobs = watermarks;

        let mut by_epoch: BTreeMap<i64, Vec<BlobMetadata>> = BTreeMap::new();
        for b in singles {
            if let Some(n) = epoch_number_from_blob_id(&b.id) {
                by_epoch.entry(n).or_default().push(b);
            }
        }
        for (n, bms) in by_epoch {
            if let Some(set) = complete_sets(&bms).into_iter().next() {
                s.single_epoch_compactions.insert(n, set);
            }
        }

        let mut by_range: BTreeMap<(i64, i64), Vec<BlobMetadata>> = BTreeMap::new();
        for b in range_blobs {
            if let Some(r) = epoch_range_from_blob_id(&b.id) {
                by_range.entry(r).or_default().push(b);
            }
        }
        let ranges: Vec<RangeCheckpoint> = by_range
            .into_iter()
            .filter_map(|((min, max), bms)| {
                complete_sets(&bms)
                    .into_iter()
                    .next()
                    .map(|blobs| RangeCheckpoint {
                        min_epoch: min,
                        max_epoch: max,
                        blobs,
                    })
            })
            .collect();
        s.range_checkpoints = longest_range_checkpoints(&ranges);

        let epochs: Vec<i64> = ((s.write_epoch - 1)..=(s.write_epoch + 1))
            .filter(|n| *n >= 0)
            .collect();
        let prefixes: Vec<String> = epochs
            .iter()
            .map(|n| uncompacted_epoch_prefix(*n))
            .collect();
        let lists = list_side_by_side(&*self.st, &prefixes)?;
        s.uncompacted.extend(epochs.into_iter().zip(lists));
        Ok(s)
    }

    fn indexes_of_epoch(&self, s: &EpochState, epoch: i64) -> Result<Vec<BlobMetadata>> {
        if s.is_settled(epoch) {
            if let Some(set) = s.single_epoch_compactions.get(&epoch) {
                return Ok(set.clone());
            }
        }
        match s.uncompacted.get(&epoch) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.st.list_all(&uncompacted_epoch_prefix(epoch))?),
        }
    }

    /// The index blobs that describe epochs `min..=max` (compacted sets for settled epochs).
    pub fn index_blobs_of_epochs(
        &self,
        s: &EpochState,
        min: i64,
        max: i64,
    ) -> Result<Vec<BlobMetadata>> {
        let mut out = Vec::new();
        for epoch in min..=max {
            out.extend(self.indexes_of_epoch(s, epoch)?);
        }
        Ok(out)
    }

    /// The blob storage the manager works on.
    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.st
    }

    /// Every index blob needed to know all contents, with the deletion watermark.
    pub fn complete_index_set(&self) -> Result<(Vec<BlobMetadata>, Option<DateTime<Utc>>)> {
        let s = self.current()?;
        self.complete_index_set_of(&s, s.write_epoch + 1)
    }

    /// The index blobs of epochs `0..=max_epoch` in the view `s`.
    pub fn complete_index_set_of(
        &self,
        s: &EpochState,
        max_epoch: i64,
    ) -> Result<(Vec<BlobMetadata>, Option<DateTime<Utc>>)> {
        let mut result = Vec::new();
        let mut start = 0;
        for c in &s.range_checkpoints {
            if c.max_epoch > start {
                result.extend(c.blobs.iter().cloned());
                start = c.max_epoch + 1;
            }
        }
        for epoch in start..=max_epoch {
            result.extend(self.indexes_of_epoch(s, epoch)?);
        }
        Ok((result, s.deletion_watermark))
    }

    /// Writes index blobs (ids without the epoch prefix) into the current write epoch.
    pub fn write_index(&self, shards: &[(String, Vec<u8>)]) -> Result<Vec<BlobMetadata>> {
        let s = self.current()?;
        let mut written = Vec::with_capacity(shards.len());
        for (id, data) in shards {
            let full = format!("{}{}", uncompacted_epoch_prefix(s.write_epoch), id);
            self.st.put_blob(&full, data, &PutOptions::default())?;
            written.push(BlobMetadata {
                id: full,
                length: data.len() as u64,
                timestamp: self.clock.now(),
            });
        }
        self.invalidate();
        Ok(written)
    }

    /// Writes the next epoch marker when the current epoch is old and big enough.
    pub fn maybe_advance_write_epoch(&self) -> Result<bool> {
        let s = self.current()?;
        let empty = Vec::new();
        let current = s.uncompacted.get(&s.write_epoch).unwrap_or(&empty);
        if !should_advance(current, &self.params) {
            return Ok(false);
        }
        let id = format!("{EPOCH_MARKER_PREFIX}{}", s.write_epoch + 1);
        self.st
            .put_blob(&id, b"epoch-marker", &PutOptions::default())?;
        self.invalidate();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kopr_blob::clock::ManualClock;
    use kopr_blob::memory::MemoryStorage;

    fn bm(id: &str) -> BlobMetadata {
        BlobMetadata {
            id: id.into(),
            length: 1,
            timestamp: Utc.timestamp_opt(0, 0).unwrap(),
        }
    }

    #[test]
    fn blob_id_parsing_matches_kopia() {
        assert_eq!(epoch_number_from_blob_id("xn12_abc-s1"), Some(12));
        assert_eq!(epoch_number_from_blob_id("xe7"), Some(7));
        assert_eq!(epoch_number_from_blob_id("xnabc"), None);
        assert_eq!(epoch_range_from_blob_id("xr0_6_abc"), Some((0, 6)));
        assert_eq!(epoch_range_from_blob_id("xr0_6"), None);
        assert_eq!(
            deletion_watermark_from_blob_id("xw1700000000"),
            Utc.timestamp_opt(1_700_000_000, 0).single()
        );
    }

    #[test]
    fn complete_sets_need_every_member() {
        let sets = complete_sets(&[
            bm("xs0_a-s1-c2"),
            bm("xs0_b"),
            bm("xs0_c-s2-c2"),
            bm("xs0_d-s1-c2"),
        ]);
        let ids: Vec<Vec<&str>> = sets
            .iter()
            .map(|s| s.iter().map(|b| b.id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["xs0_b"], vec!["xs0_a-s1-c2", "xs0_d-s1-c2"]]);
    }

    #[test]
    fn longest_chain_prefers_reach_then_fewer_links() {
        let r = |a, b| RangeCheckpoint {
            min_epoch: a,
            max_epoch: b,
            blobs: vec![],
        };
        let got = longest_range_checkpoints(&[r(0, 2), r(3, 5), r(0, 5), r(6, 9), r(1, 20)]);
        assert_eq!(got, vec![r(0, 5), r(6, 9)]);
        assert!(longest_range_checkpoints(&[r(1, 3)]).is_empty());
    }

    #[test]
    fn writes_go_to_the_write_epoch_and_advance_when_due() {
        let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(1_000_000, 0).unwrap()));
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
        let mut params = EpochParameters::kopia_default();
        params.advance_on_count_threshold = 2;
        let em = EpochManager::new(st.clone(), params, clock.clone());
        em.write_index(&[("aa".into(), vec![1])]).unwrap();
        assert!(
            !em.maybe_advance_write_epoch().unwrap(),
            "one blob is below thresholds"
        );
        clock.advance(std::time::Duration::from_secs(25 * 3600));
        em.write_index(&[("bb".into(), vec![2])]).unwrap();
        assert!(em.maybe_advance_write_epoch().unwrap());
        em.write_index(&[("cc".into(), vec![3])]).unwrap();
        let (set, wm) = em.complete_index_set().unwrap();
        let ids: Vec<String> = set.into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec!["xn0_aa", "xn0_bb", "xn1_cc"]);
        assert_eq!(wm, None);
    }

    #[test]
    fn settled_epochs_read_from_compactions_and_ranges() {
        let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(1_000_000, 0).unwrap()));
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::with_clock(clock.clone()));
        for id in [
            "xe1", "xe2", "xe3", "xe4", "xn0_a", "xn1_b", "xn2_c", "xn3_d", "xn4_e", "xs1_bb",
            "xs2_cc", "xr0_0_r", "xw1000",
        ] {
            st.put_blob(id, b"x", &PutOptions::default()).unwrap();
        }
        let em = EpochManager::new(st, EpochParameters::kopia_default(), clock);
        let s = em.current().unwrap();
        assert_eq!(s.write_epoch, 4);
        let (set, wm) = em.complete_index_set().unwrap();
        let ids: Vec<String> = set.into_iter().map(|b| b.id).collect();
        // epoch 0 from the range checkpoint? No: Kopia uses a range only when max > start (0 > 0 is false).
        assert_eq!(ids, vec!["xn0_a", "xs1_bb", "xs2_cc", "xn3_d", "xn4_e"]);
        assert_eq!(wm, Utc.timestamp_opt(1000, 0).single());
    }
}
