//! What an index says about one content, Kopia's rule for choosing between two entries of
//! the same content, and the builder that collects entries before encoding.
//!
//! The builder keeps one entry per content id (the winner under [`pick_winner`]), hands them
//! out in id order, and can split itself into shards by the FNV-1a hash of the id's text
//! form, as Kopia does when an index grows too large.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::content_id::ContentId;
use super::{v1, v2};
use crate::blob_id::BlobId;
use crate::error::{FormatError, Result};

/// What an index says about one content (Kopia's content `Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The content.
    pub content_id: ContentId,
    /// Pack blob holding it.
    pub pack_blob_id: BlobId,
    /// Offset in the pack (below 2^30 in index v2, 2^31 in v1).
    pub pack_offset: u32,
    /// Bytes in the pack (compressed and encrypted).
    pub packed_length: u32,
    /// Bytes before compression (not stored by index v1, which derives it).
    pub original_length: u32,
    /// When it was written (unix seconds).
    pub timestamp_seconds: i64,
    /// Marked deleted.
    pub deleted: bool,
    /// Repository format version when written.
    pub format_version: u8,
    /// Compression header id, 0 for none.
    pub compression_header_id: u32,
    /// Encryption key id (always 0 today).
    pub encryption_key_id: u8,
}

/// Kopia's rule for two entries of one content: whether `a` wins over `b`.
///
/// The newer timestamp wins; at equal timestamps a live entry beats a deleted one; otherwise
/// the lexicographically greater pack blob id wins, so that every reader resolves the same way
/// whatever order the indexes were read in. Used both when one build sees the same id twice
/// and when several indexes are merged.
pub fn pick_winner(a: &IndexEntry, b: &IndexEntry) -> bool {
    if a.timestamp_seconds != b.timestamp_seconds {
        return a.timestamp_seconds > b.timestamp_seconds;
    }
    if a.deleted != b.deleted {
        return !a.deleted;
    }
    a.pack_blob_id > b.pack_blob_id
}

/// Of two entries of one content, the one that wins under [`pick_winner`] (`b` on a full tie).
pub fn merge_winner(a: IndexEntry, b: IndexEntry) -> IndexEntry {
    if pick_winner(&a, &b) {
        a
    } else {
        b
    }
}

/// 32-bit FNV-1a, which Kopia uses to assign contents to index shards.
fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Collects index entries: one per content id, sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexBuilder {
    entries: BTreeMap<ContentId, IndexEntry>,
}

impl IndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; if its content id is already present, the winner under [`pick_winner`]
    /// stays (an exact tie keeps the earlier entry).
    pub fn add(&mut self, entry: IndexEntry) {
        match self.entries.get_mut(&entry.content_id) {
            Some(old) => {
                if pick_winner(&entry, old) {
                    *old = entry;
                }
            }
            None => {
                self.entries.insert(entry.content_id, entry);
            }
        }
    }

    /// Number of distinct contents.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `id`, if any.
    pub fn get(&self, id: &ContentId) -> Option<&IndexEntry> {
        self.entries.get(id)
    }

    /// The entries in index order.
    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> + '_ {
        self.entries.values()
    }

    /// Consumes the builder, returning the entries in index order.
    pub fn into_entries(self) -> Vec<IndexEntry> {
        self.entries.into_values().collect()
    }

    /// Splits into shards of roughly at most `max_shard_size` entries, as Kopia does: the
    /// shard count is `ceil(len / max_shard_size)` and each content goes to shard
    /// `fnv1a32(id text) % count`. Empty shards are dropped; an empty builder gives none.
    pub fn shard(self, max_shard_size: usize) -> Result<Vec<IndexBuilder>> {
        if max_shard_size == 0 {
            return Err(FormatError::InvalidInput("invalid shard size".into()));
        }
        let count = self.len().div_ceil(max_shard_size);
        if count <= 1 {
            return Ok(if self.is_empty() { vec![] } else { vec![self] });
        }
        let mut shards = vec![IndexBuilder::new(); count];
        for (id, e) in self.entries {
            let h = fnv1a32(id.to_string().as_bytes());
            // `count` fits in u32 here: Kopia does this arithmetic in 32 bits as well
            let n = (u64::from(h) % count as u64) as usize;
            shards[n].entries.insert(id, e);
        }
        shards.retain(|s| !s.is_empty());
        Ok(shards)
    }

    /// Encodes as index v2, without the random suffix (Kopia's "stable" build).
    pub fn encode_v2_stable(&self) -> Result<Vec<u8>> {
        let sorted: Vec<&IndexEntry> = self.entries.values().collect();
        v2::encode(&sorted)
    }

    /// Encodes as index v1, without the random suffix.
    pub fn encode_v1_stable(&self) -> Result<Vec<u8>> {
        let sorted: Vec<&IndexEntry> = self.entries.values().collect();
        v1::encode(&sorted)
    }
}

/// Entries (owned or borrowed) sorted by id, one per id: the winner under [`pick_winner`], an
/// exact tie keeping the earlier entry, as [`IndexBuilder::add`] one by one would keep.
pub(crate) fn sorted_unique<E: Borrow<IndexEntry>>(all: Vec<E>) -> Vec<E> {
    // Sorted as positions beside a word of each id (`ContentId::sort_word`): plain integer
    // pairs in a compact array instead of ids reached through each entry. Where words tie
    // (the same id, or ids alike in their first bytes) the run is sorted again by the full id,
    // stably, so that entries of one id keep their order and ties resolve as `add` resolves
    // them. An index of a first snapshot holds an entry per file, and this sort was most of
    // writing it.
    let id = |i: usize| all[i].borrow().content_id;
    let mut order: Vec<(u64, usize)> = (0..all.len()).map(|i| (id(i).sort_word(), i)).collect();
    order.sort_unstable();
    for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            run.sort_by_key(|o| id(o.1));
        }
    }
    let mut slots: Vec<Option<E>> = all.into_iter().map(Some).collect();
    let mut unique: Vec<E> = Vec::with_capacity(slots.len());
    for e in order.into_iter().filter_map(|(_, i)| slots[i].take()) {
        match unique.last_mut() {
            Some(last) if (*last).borrow().content_id == e.borrow().content_id => {
                if pick_winner(e.borrow(), (*last).borrow()) {
                    *last = e;
                }
            }
            _ => unique.push(e),
        }
    }
    unique
}

impl FromIterator<IndexEntry> for IndexBuilder {
    /// Builds from entries in any order as [`IndexBuilder::add`] one by one would, but sorts
    /// them once and builds the map in bulk (an index blob of a first snapshot holds an entry
    /// per file: inserting them one by one in hash order was most of its encoding time).
    fn from_iter<I: IntoIterator<Item = IndexEntry>>(iter: I) -> Self {
        IndexBuilder {
            entries: sorted_unique(iter.into_iter().collect())
                .into_iter()
                .map(|e| (e.content_id, e))
                .collect(),
        }
    }
}

impl Extend<IndexEntry> for IndexBuilder {
    fn extend<I: IntoIterator<Item = IndexEntry>>(&mut self, iter: I) {
        for e in iter {
            self.add(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, ts: i64, pack: &str, off: u32, deleted: bool) -> IndexEntry {
        IndexEntry {
            content_id: id.parse().unwrap(),
            pack_blob_id: pack.into(),
            pack_offset: off,
            packed_length: 0,
            original_length: 0,
            timestamp_seconds: ts,
            deleted,
            format_version: 0,
            compression_header_id: 0,
            encryption_key_id: 0,
        }
    }

    fn merged(lists: &[&[IndexEntry]], id: &str) -> IndexEntry {
        let id: ContentId = id.parse().unwrap();
        lists
            .iter()
            .flat_map(|l| l.iter())
            .filter(|e| e.content_id == id)
            .cloned()
            .reduce(merge_winner)
            .unwrap()
    }

    #[test]
    fn collecting_keeps_the_winners_that_adding_one_by_one_keeps() {
        // Duplicates in both orders, exact ties (the earlier stays), deletions.
        let ids = ["aa", "bb", "cc", "dd", "ee"];
        let mut list = Vec::new();
        for i in 0..60u32 {
            let id = ids[(i as usize * 7) % ids.len()];
            let ts = i64::from((i * 13) % 5);
            list.push(entry(id, ts, &format!("p{}", i % 4), i, i % 9 == 0));
        }
        let mut one_by_one = IndexBuilder::new();
        for e in list.clone() {
            one_by_one.add(e);
        }
        let collected: IndexBuilder = list.into_iter().collect();
        assert_eq!(collected, one_by_one);
        assert_eq!(collected.len(), ids.len());
    }

    // Kopia's merged_test.go, TestMerged: three indexes with overlapping ids.
    #[test]
    fn kopia_merged_case() {
        let i1 = [
            entry("aabbcc", 1, "xx", 11, false),
            entry("ddeeff", 1, "xx", 111, false),
            entry("z010203", 1, "xx", 111, false),
            entry("de1e1e", 4, "xx", 111, false),
        ];
        let i2 = [
            entry("aabbcc", 3, "yy", 33, false),
            entry("xaabbcc", 1, "xx", 111, false),
            entry("de1e1e", 4, "xx", 222, true),
        ];
        let i3 = [
            entry("aabbcc", 2, "zz", 22, false),
            entry("ddeeff", 1, "zz", 222, false),
            entry("k010203", 1, "xx", 111, false),
            entry("k020304", 1, "xx", 111, false),
        ];
        for order in [[&i1[..], &i2, &i3], [&i3, &i2, &i1], [&i2, &i3, &i1]] {
            assert_eq!(merged(&order, "aabbcc").pack_offset, 33);
            let d = merged(&order, "de1e1e");
            assert!(!d.deleted, "live beats deleted at the same time");
        }
        let all: IndexBuilder = i1.iter().chain(&i2).chain(&i3).cloned().collect();
        let ids: Vec<String> = all.entries().map(|e| e.content_id.to_string()).collect();
        assert_eq!(
            ids,
            ["aabbcc", "ddeeff", "de1e1e", "k010203", "k020304", "xaabbcc", "z010203"]
        );
    }

    // Kopia's merged_test.go, TestMergedIndexIsConsistent: every order gives the same winner.
    #[test]
    fn kopia_merge_is_order_independent() {
        let i1 = [
            entry("aabbcc", 1, "xx", 11, false),
            entry("bbccdd", 1, "xx", 11, false),
            entry("ccddee", 1, "ff", 11, true),
        ];
        let i2 = [
            entry("aabbcc", 1, "yy", 33, false),
            entry("bbccdd", 1, "yy", 11, true),
            entry("ccddee", 1, "gg", 11, true),
        ];
        let i3 = [
            entry("aabbcc", 1, "zz", 22, false),
            entry("bbccdd", 1, "zz", 11, true),
            entry("ccddee", 1, "hh", 11, true),
        ];
        let perms: [[&[IndexEntry]; 3]; 6] = [
            [&i1, &i2, &i3],
            [&i1, &i3, &i2],
            [&i2, &i1, &i3],
            [&i2, &i3, &i1],
            [&i3, &i1, &i2],
            [&i3, &i2, &i1],
        ];
        for p in perms {
            assert_eq!(merged(&p, "aabbcc").pack_blob_id, "zz");
            assert_eq!(merged(&p, "bbccdd").pack_blob_id, "xx");
            assert_eq!(merged(&p, "ccddee").pack_blob_id, "hh");
            let b: IndexBuilder = p.iter().flat_map(|l| l.iter()).cloned().collect();
            assert_eq!(
                b.get(&"aabbcc".parse().unwrap()).unwrap().pack_blob_id,
                "zz"
            );
            assert_eq!(
                b.get(&"bbccdd".parse().unwrap()).unwrap().pack_blob_id,
                "xx"
            );
            assert_eq!(
                b.get(&"ccddee".parse().unwrap()).unwrap().pack_blob_id,
                "hh"
            );
        }
    }

    #[test]
    fn newer_timestamp_wins_even_if_deleted() {
        let old = entry("aa", 1, "zz", 0, false);
        let new = entry("aa", 2, "aa", 0, true);
        assert!(pick_winner(&new, &old));
        assert!(!pick_winner(&old, &new));
        // a full tie is not a win either way; the builder keeps the first
        let twin = old.clone();
        assert!(!pick_winner(&old, &twin));
    }

    #[test]
    fn fnv_matches_reference_values() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn shards_partition_the_entries() {
        let b: IndexBuilder = (0..1000u32)
            .map(|i| {
                let h = i.to_be_bytes();
                let mut e = entry("00", 1, "p", 0, false);
                e.content_id = ContentId::new(None, &h).unwrap();
                e
            })
            .collect();
        assert!(b.clone().shard(0).is_err());
        assert_eq!(b.clone().shard(1000).unwrap(), vec![b.clone()]);
        assert!(IndexBuilder::new().shard(10).unwrap().is_empty());
        let shards = b.clone().shard(100).unwrap();
        assert!(shards.len() <= 10 && shards.len() >= 8);
        let total: usize = shards.iter().map(IndexBuilder::len).sum();
        assert_eq!(total, 1000);
        for s in &shards {
            for e in s.entries() {
                let n = fnv1a32(e.content_id.to_string().as_bytes()) % 10;
                assert!(s
                    .entries()
                    .all(|o| fnv1a32(o.content_id.to_string().as_bytes()) % 10 == n));
            }
        }
    }

    /// The sort through words and positions gives what a stable sort of the entries by id
    /// (then one winner per id) gives: ids with and without prefixes, hashes shorter than the
    /// word and ones alike in their first bytes, many entries per id in every order.
    #[test]
    fn sorted_unique_matches_a_stable_sort_by_id() {
        let reference = |mut all: Vec<IndexEntry>| {
            all.sort_by_key(|e| e.content_id);
            let mut unique: Vec<IndexEntry> = Vec::new();
            for e in all {
                match unique.last_mut() {
                    Some(last) if last.content_id == e.content_id => {
                        if pick_winner(&e, last) {
                            *last = e;
                        }
                    }
                    _ => unique.push(e),
                }
            }
            unique
        };
        let ids = [
            "00",
            "0000",
            "00000000000000",
            "0000000000000000",
            "000000000000000001",
            "01",
            "ff",
            "fe01",
            "abcdef0123456789",
            "abcdef0123456788",
            "abcdef01234567",
            "kab",
            "kab00",
            "k0000000000000000",
            "xab",
            "g00000000000000ff",
            "gff",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for round in 0..50 {
            let all: Vec<IndexEntry> = (0..200)
                .map(|i| {
                    let id = ids[next() % ids.len()];
                    let pack = ["p1", "p2", "p3"][next() % 3];
                    entry(id, (next() % 4) as i64, pack, i, next() % 5 == 0)
                })
                .collect();
            let got = sorted_unique(all.clone());
            assert_eq!(got, reference(all.clone()), "round {round}");
            let refs: Vec<&IndexEntry> = all.iter().collect();
            let got: Vec<IndexEntry> = sorted_unique(refs).into_iter().cloned().collect();
            assert_eq!(got, reference(all), "round {round}, borrowed");
        }
    }
}
