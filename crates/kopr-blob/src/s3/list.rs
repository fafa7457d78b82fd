//! Listing with ListObjectsV2. A listing longer than one page is split into key ranges at the
//! characters after the listed prefix and the ranges are listed in parallel: S3 returns keys in
//! UTF-8 binary order, so a range starts with `start-after` and stops at its upper bound. The
//! ranges partition the keys after the first page, so every key is reported once, in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{xml, Req, S3Storage};
use crate::{BlobError, BlobMetadata, Result};

/// Where a long listing is split, after the listed prefix (Kopia ids are lower-case hex/ASCII).
const SPLIT_CHARS: &[u8] = b"123456789abcdefghijklmnopqrstuvwxyz";
/// Ranges listed at once.
const LIST_THREADS: usize = 8;

/// Keys after `start_after`, at least `lower`, below `upper`.
#[derive(Debug, Clone, Default)]
struct KeyRange {
    start_after: Option<String>,
    lower: Option<String>,
    upper: Option<String>,
}

impl S3Storage {
    fn list_page(
        &self,
        full: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<xml::ListPage> {
        let mut req = Req::new("GET", None)
            .query("list-type", "2")
            .query("max-keys", self.list_page_size.to_string())
            .query("prefix", full);
        if let Some(t) = token {
            req = req.query("continuation-token", t);
        } else if let Some(s) = start_after {
            req = req.query("start-after", s);
        }
        let resp = self.execute(&req).map_err(|f| self.error(f, "list", ""))?;
        let body = self.read_doc(resp, "list", full)?;
        xml::parse_list(&body).map_err(|e| BlobError::Other(format!("S3 list of {full:?}: {e}")))
    }

    /// Calls `f` for the keys of `full` in `r`, from continuation `token` if given.
    fn list_range(
        &self,
        full: &str,
        r: &KeyRange,
        mut token: Option<String>,
        f: &mut dyn FnMut(xml::Object) -> Result<()>,
    ) -> Result<()> {
        loop {
            let page = self.list_page(full, r.start_after.as_deref(), token.as_deref())?;
            for o in page.objects {
                if r.upper.as_deref().is_some_and(|u| o.key.as_str() >= u) {
                    return Ok(());
                }
                if r.lower.as_deref().is_some_and(|l| o.key.as_str() < l) {
                    continue;
                }
                f(o)?;
            }
            match page.next_token {
                Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                Some(_) => {
                    return Err(BlobError::Other(format!(
                        "S3 list of {full:?}: the server repeated a continuation token"
                    )))
                }
                None => return Ok(()),
            }
        }
    }

    /// Lists blob ids starting with `prefix`.
    pub(super) fn list(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        let full = format!("{}{prefix}", self.opts.prefix);
        let mut emit = |o: xml::Object| -> Result<()> {
            match o.key.strip_prefix(&self.opts.prefix) {
                Some(id) if !id.is_empty() && id.starts_with(prefix) => cb(BlobMetadata {
                    id: id.to_string(),
                    length: o.size,
                    timestamp: o.last_modified,
                }),
                _ => Ok(()),
            }
        };
        let first = self.list_page(&full, None, None)?;
        let sorted = first.objects.windows(2).all(|w| w[0].key < w[1].key);
        let last = first.objects.last().map(|o| o.key.clone());
        let token = first.next_token.clone();
        for o in first.objects {
            emit(o)?;
        }
        let (Some(token), Some(last)) = (token, last) else {
            return Ok(());
        };
        let ranges = split(&full, &last);
        if !self.parallel_list || !sorted || ranges.len() < 2 {
            return self.list_range(&full, &KeyRange::default(), Some(token), &mut emit);
        }
        let results: Vec<Mutex<Option<Result<Vec<xml::Object>>>>> =
            ranges.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..LIST_THREADS.min(ranges.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(r) = ranges.get(i) else { break };
                    let mut objs = Vec::new();
                    let res = self
                        .list_range(&full, r, None, &mut |o| {
                            objs.push(o);
                            Ok(())
                        })
                        .map(|_| objs);
                    let failed = res.is_err();
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(res);
                    }
                    if failed {
                        // Stop the other workers early; the error is reported below.
                        next.store(ranges.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        for slot in results {
            let res = slot
                .into_inner()
                .map_err(|_| BlobError::Other("S3 list: a listing thread panicked".into()))?;
            match res {
                Some(Ok(objs)) => {
                    for o in objs {
                        emit(o)?;
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(BlobError::Other(
                        "S3 list: a key range was not listed".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The key ranges after `last` (the end of the first page) of a listing of `full`, in order.
fn split(full: &str, last: &str) -> Vec<KeyRange> {
    let bounds: Vec<(u8, String)> = SPLIT_CHARS
        .iter()
        .map(|&c| (c, format!("{full}{}", c as char)))
        .filter(|(_, b)| b.as_str() > last)
        .collect();
    let mut ranges = vec![KeyRange {
        start_after: Some(last.to_string()),
        lower: None,
        upper: bounds.first().map(|(_, b)| b.clone()),
    }];
    for (i, (c, b)) in bounds.iter().enumerate() {
        ranges.push(KeyRange {
            // Any string below the bound will do: keys in between are filtered out.
            start_after: Some(format!("{full}{}", (c - 1) as char)),
            lower: Some(b.clone()),
            upper: bounds.get(i + 1).map(|(_, b)| b.clone()),
        });
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_the_keys_after_the_first_page() {
        let r = split("r/", "r/p5");
        // (r/p5, r/q), [r/q, r/r), ..., [r/z, end)
        assert_eq!(r[0].start_after.as_deref(), Some("r/p5"));
        assert_eq!(r[0].upper.as_deref(), Some("r/q"));
        assert_eq!(r[1].lower.as_deref(), Some("r/q"));
        assert_eq!(r[1].start_after.as_deref(), Some("r/p"));
        assert_eq!(r.last().unwrap().lower.as_deref(), Some("r/z"));
        assert_eq!(r.last().unwrap().upper, None);
        for w in r.windows(2) {
            assert_eq!(w[0].upper, w[1].lower);
        }
        assert_eq!(split("r/", "r/zz").len(), 1);
    }
}
