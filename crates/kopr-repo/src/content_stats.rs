//! Totals of a repository's contents, as `content stats --json` prints them and the server's
//! `/api/v1/kopr/content-stats` serves them: counts and sizes overall and per compression
//! method, and the histogram of packed sizes (decades from 10 B to 100 MB, as Kopia's text).

use std::collections::BTreeMap;

use kopr_format::compression::{self, HeaderId};
use kopr_format::index::IndexEntry;
use serde::Serialize;

/// Count and sizes of a set of contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Contents.
    pub count: i64,
    /// Bytes before compression and encryption.
    #[serde(rename = "originalSize")]
    pub original_size: i64,
    /// Bytes stored in packs.
    #[serde(rename = "packedSize")]
    pub packed_size: i64,
}

/// One bar of the size histogram: contents whose packed size is in `[min, max)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Smallest size in the bucket.
    pub min: i64,
    /// Sizes below this one.
    pub max: i64,
    /// Contents in the bucket.
    pub count: u64,
    /// Their packed bytes.
    #[serde(rename = "totalSize")]
    pub total_size: i64,
}

/// What `content stats --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentStats {
    /// Contents.
    pub count: i64,
    /// Bytes before compression.
    #[serde(rename = "totalOriginalSize")]
    pub total_original_size: i64,
    /// Bytes in packs.
    #[serde(rename = "totalPackedSize")]
    pub total_packed_size: i64,
    /// Per compression method (Kopia's names; `(uncompressed)` for none).
    #[serde(rename = "byMethod")]
    pub by_method: BTreeMap<String, Totals>,
    /// Packed sizes by decade.
    pub histogram: Vec<Bucket>,
}

/// The upper bounds of the histogram's buckets (10 B … 100 MB), as Kopia's `content stats`.
pub fn histogram_bounds() -> Vec<i64> {
    (1..=8).map(|i| 10i64.pow(i)).collect()
}

/// Counts `sizes` into the histogram's buckets (sizes of 100 MB and more are left out, as
/// Kopia's text does).
pub fn histogram(sizes: impl Iterator<Item = i64>) -> Vec<Bucket> {
    let bounds = histogram_bounds();
    let mut out: Vec<Bucket> = Vec::with_capacity(bounds.len());
    let mut last = 0;
    for &max in &bounds {
        out.push(Bucket {
            min: last,
            max,
            count: 0,
            total_size: 0,
        });
        last = max;
    }
    for s in sizes {
        if let Some(b) = out.iter_mut().find(|b| s < b.max) {
            b.count += 1;
            b.total_size += s;
        }
    }
    out
}

/// The name `content stats` gives a compression header id.
pub fn method_name(header_id: u32) -> String {
    if header_id == 0 {
        return "(uncompressed)".to_string();
    }
    compression::by_header_id(HeaderId(header_id))
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("compression-{header_id:x}"))
}

/// The statistics of `entries`.
pub fn compute(entries: &[IndexEntry]) -> ContentStats {
    let mut total = Totals::default();
    let mut by_method: BTreeMap<String, Totals> = BTreeMap::new();
    let mut by_id: BTreeMap<u32, Totals> = BTreeMap::new();
    for e in entries {
        for t in [
            &mut total,
            by_id.entry(e.compression_header_id).or_default(),
        ] {
            t.count += 1;
            t.original_size += i64::from(e.original_length);
            t.packed_size += i64::from(e.packed_length);
        }
    }
    for (h, t) in by_id {
        by_method.insert(method_name(h), t);
    }
    ContentStats {
        count: total.count,
        total_original_size: total.original_size,
        total_packed_size: total.packed_size,
        by_method,
        histogram: histogram(entries.iter().map(|e| i64::from(e.packed_length))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_into_decades_and_huge_ones_are_left_out() {
        let h = histogram([0, 9, 10, 99_999_999, 100_000_000].into_iter());
        assert_eq!(h.len(), 8);
        assert_eq!(
            (h[0].min, h[0].max, h[0].count, h[0].total_size),
            (0, 10, 2, 9)
        );
        assert_eq!((h[1].min, h[1].max, h[1].count), (10, 100, 1));
        assert_eq!((h[7].count, h[7].total_size), (1, 99_999_999));
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 4);
    }
}
