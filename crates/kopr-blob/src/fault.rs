//! Fault injection: wraps any storage and makes chosen calls fail, lie or stall, so tests can
//! prove that nothing acknowledged is lost when storage misbehaves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{BlobError, BlobMetadata, BlobStorage, PutOptions, Result};

/// The kind of call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `get_blob` and `get_metadata`.
    Get,
    /// `put_blob`.
    Put,
    /// `delete_blob`.
    Delete,
    /// `list_blobs`.
    List,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail with a transient error (retrying may help).
    Transient,
    /// Fail with a permanent error.
    Permanent,
    /// Return only the first N bytes (gets only).
    Truncate(usize),
    /// Flip the bits of the byte at this offset (gets only).
    FlipByte(usize),
    /// Sleep, then proceed; with an operation timeout ([`FaultyStorage::set_op_timeout`])
    /// shorter than the delay, sleep that long and fail as timed out instead (a stalled
    /// server behind a client with a read timeout). `Delay(Duration::MAX)` is a server that
    /// never answers.
    Delay(Duration),
}

/// A rule: apply `fault` to the `nth` (1-based) matching call, or to every one when `nth` is 0.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The call kind.
    pub op: Op,
    /// Only ids with this prefix.
    pub prefix: String,
    /// Which matching call (1-based); 0 for all.
    pub nth: u64,
    /// What happens.
    pub fault: Fault,
    seen: u64,
}

impl Rule {
    /// A new rule.
    pub fn new(op: Op, prefix: &str, nth: u64, fault: Fault) -> Self {
        Rule {
            op,
            prefix: prefix.to_string(),
            nth,
            fault,
            seen: 0,
        }
    }
}

/// Storage that injects faults into another storage.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn BlobStorage>,
    rules: Mutex<Vec<Rule>>,
    counts: [AtomicU64; 4],
    /// Hide blobs from listings until this many later puts happened (eventual consistency).
    list_lag: Mutex<(usize, Vec<(String, u64)>)>,
    puts: AtomicU64,
    op_timeout: Mutex<Option<Duration>>,
    /// How many faults fired, by call kind.
    fired: [AtomicU64; 4],
    /// How many listed blobs the list lag hid.
    hidden: AtomicU64,
    /// Blobs hidden from listings until the lag is reset ([`FaultyStorage::freeze_list_lag`]).
    frozen: Mutex<Vec<String>>,
}

impl FaultyStorage {
    /// Wraps `inner` with no faults.
    pub fn new(inner: Arc<dyn BlobStorage>) -> Self {
        FaultyStorage {
            inner,
            rules: Mutex::new(Vec::new()),
            counts: Default::default(),
            list_lag: Mutex::new((0, Vec::new())),
            puts: AtomicU64::new(0),
            op_timeout: Mutex::new(None),
            fired: Default::default(),
            hidden: AtomicU64::new(0),
            frozen: Mutex::new(Vec::new()),
        }
    }

    /// Adds a rule.
    pub fn add_rule(&self, r: Rule) {
        if let Ok(mut g) = self.rules.lock() {
            g.push(r);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut g) = self.rules.lock() {
            g.clear();
        }
    }

    /// Newly written blobs stay out of listings until `n` more puts happened (0 also ends
    /// a [`FaultyStorage::freeze_list_lag`]).
    pub fn set_list_lag(&self, n: usize) {
        if let Ok(mut g) = self.list_lag.lock() {
            g.0 = n;
        }
        if let Ok(mut f) = self.frozen.lock() {
            f.clear();
        }
    }

    /// The blobs the list lag hides now stay hidden, whatever is written later, until
    /// `set_list_lag(0)`; later writes are listed at once (a listing stuck in the past).
    pub fn freeze_list_lag(&self) {
        let now = self.puts.load(Ordering::SeqCst);
        let hidden = self.lagging(now);
        if let Ok(mut f) = self.frozen.lock() {
            f.extend(hidden);
        }
        if let Ok(mut g) = self.list_lag.lock() {
            *g = (0, Vec::new());
        }
    }

    /// These blobs stay out of listings (reads still find them) until `set_list_lag(0)`.
    pub fn hide_from_listings(&self, ids: &[String]) {
        if let Ok(mut f) = self.frozen.lock() {
            f.extend(ids.iter().cloned());
        }
    }

    /// The ids the list lag hides when `now` puts have happened.
    fn lagging(&self, now: u64) -> Vec<String> {
        self.list_lag
            .lock()
            .map(|g| {
                g.1.iter()
                    .filter(|(_, at)| now < at + g.0 as u64)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each call gives up after `timeout` (none by default): a longer [`Fault::Delay`] ends
    /// in a transient "timed out" error when the timeout has passed.
    pub fn set_op_timeout(&self, timeout: Option<Duration>) {
        if let Ok(mut g) = self.op_timeout.lock() {
            *g = timeout;
        }
    }

    /// How many calls of a kind were made.
    pub fn calls(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::SeqCst)
    }

    /// How many faults fired on calls of a kind (so a test can tell its faults happened).
    pub fn fired(&self, op: Op) -> u64 {
        self.fired[op as usize].load(Ordering::SeqCst)
    }

    /// How many blobs listings left out because of the list lag.
    pub fn hidden_by_lag(&self) -> u64 {
        self.hidden.load(Ordering::SeqCst)
    }

    fn check(&self, op: Op, id: &str) -> Option<Fault> {
        self.counts[op as usize].fetch_add(1, Ordering::SeqCst);
        let mut g = self.rules.lock().ok()?;
        let mut fired = None;
        for r in g
            .iter_mut()
            .filter(|r| r.op == op && id.starts_with(&r.prefix))
        {
            r.seen += 1;
            if fired.is_none() && (r.nth == 0 || r.nth == r.seen) {
                fired = Some(r.fault.clone());
            }
        }
        if fired.is_some() {
            self.fired[op as usize].fetch_add(1, Ordering::SeqCst);
        }
        fired
    }

    fn fail(&self, f: &Fault, op: Op, id: &str) -> Result<()> {
        match f {
            Fault::Transient => Err(BlobError::Transient(format!(
                "injected {op:?} fault on {id}"
            ))),
            Fault::Permanent => Err(BlobError::Other(format!(
                "injected permanent {op:?} fault on {id}"
            ))),
            Fault::Delay(d) => {
                let timeout = self.op_timeout.lock().ok().and_then(|g| *g);
                match timeout {
                    Some(t) if *d > t => {
                        std::thread::sleep(t);
                        Err(BlobError::Transient(format!(
                            "{op:?} of {id} timed out after {t:?} (injected stall)"
                        )))
                    }
                    _ => {
                        std::thread::sleep(*d);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

impl BlobStorage for FaultyStorage {
    fn get_blob(&self, id: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let f = self.check(Op::Get, id);
        if let Some(f) = &f {
            self.fail(f, Op::Get, id)?;
        }
        let mut data = self.inner.get_blob(id, offset, length)?;
        match f {
            Some(Fault::Truncate(n)) => data.truncate(n),
            Some(Fault::FlipByte(i)) if i < data.len() => data[i] ^= 0xff,
            _ => {}
        }
        Ok(data)
    }

    fn get_metadata(&self, id: &str) -> Result<BlobMetadata> {
        if let Some(f) = self.check(Op::Get, id) {
            self.fail(&f, Op::Get, id)?;
        }
        self.inner.get_metadata(id)
    }

    fn put_blob(&self, id: &str, data: &[u8], opts: &PutOptions) -> Result<()> {
        if let Some(f) = self.check(Op::Put, id) {
            self.fail(&f, Op::Put, id)?;
        }
        self.inner.put_blob(id, data, opts)?;
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut g) = self.list_lag.lock() {
            if g.0 > 0 {
                g.1.push((id.to_string(), n));
            }
        }
        Ok(())
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        if let Some(f) = self.check(Op::Delete, id) {
            self.fail(&f, Op::Delete, id)?;
        }
        self.inner.delete_blob(id)
    }

    fn list_blobs(
        &self,
        prefix: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        if let Some(f) = self.check(Op::List, prefix) {
            self.fail(&f, Op::List, prefix)?;
        }
        let now = self.puts.load(Ordering::SeqCst);
        let mut hidden = self.lagging(now);
        if let Ok(f) = self.frozen.lock() {
            hidden.extend(f.iter().cloned());
        }
        self.inner.list_blobs(prefix, &mut |m| {
            if hidden.contains(&m.id) {
                self.hidden.fetch_add(1, Ordering::SeqCst);
                Ok(())
            } else {
                cb(m)
            }
        })
    }

    fn display_name(&self) -> String {
        format!("faulty({})", self.inner.display_name())
    }
    fn extend_retention(&self, id: &str, mode: &str, period: Duration) -> Result<()> {
        self.inner.extend_retention(id, mode, period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    fn faulty() -> FaultyStorage {
        FaultyStorage::new(Arc::new(MemoryStorage::new()))
    }

    #[test]
    fn conformance_without_faults() {
        crate::conformance::run(&faulty());
    }

    #[test]
    fn nth_call_fails_exactly_once() {
        let st = faulty();
        st.add_rule(Rule::new(Op::Put, "p", 2, Fault::Transient));
        let o = PutOptions::default();
        st.put_blob("p1", b"a", &o).unwrap();
        assert!(st.put_blob("p2", b"b", &o).unwrap_err().is_transient());
        st.put_blob("p3", b"c", &o).unwrap();
        st.put_blob("q1", b"d", &o).unwrap();
        assert_eq!(st.calls(Op::Put), 4);
        assert_eq!(st.fired(Op::Put), 1);
        assert_eq!(st.list_all("p").unwrap().len(), 2);
    }

    #[test]
    fn gets_can_lie() {
        let st = faulty();
        st.put_blob("a", b"hello", &PutOptions::default()).unwrap();
        st.add_rule(Rule::new(Op::Get, "a", 1, Fault::Truncate(2)));
        st.add_rule(Rule::new(Op::Get, "a", 2, Fault::FlipByte(0)));
        assert_eq!(st.get_blob("a", 0, None).unwrap(), b"he");
        assert_eq!(
            st.get_blob("a", 0, None).unwrap(),
            [b'h' ^ 0xff, b'e', b'l', b'l', b'o']
        );
        assert_eq!(st.get_blob("a", 0, None).unwrap(), b"hello");
    }

    #[test]
    fn a_delay_beyond_the_operation_timeout_is_a_timeout_error() {
        let st = faulty();
        st.put_blob("a", b"x", &PutOptions::default()).unwrap();
        st.set_op_timeout(Some(Duration::from_millis(50)));
        st.add_rule(Rule::new(Op::Get, "a", 1, Fault::Delay(Duration::MAX)));
        st.add_rule(Rule::new(
            Op::Get,
            "a",
            2,
            Fault::Delay(Duration::from_millis(5)),
        ));
        let t = std::time::Instant::now();
        let e = st.get_blob("a", 0, None).unwrap_err();
        assert!(
            e.is_transient() && e.to_string().contains("timed out"),
            "{e}"
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // shorter than the timeout: only slow
        assert_eq!(st.get_blob("a", 0, None).unwrap(), b"x");
        st.add_rule(Rule::new(
            Op::List,
            "",
            0,
            Fault::Delay(Duration::from_secs(3600)),
        ));
        assert!(st
            .list_all("")
            .unwrap_err()
            .to_string()
            .contains("timed out"));
    }

    #[test]
    fn eventually_consistent_listing_hides_recent_writes() {
        let st = faulty();
        st.set_list_lag(2);
        let o = PutOptions::default();
        st.put_blob("x1", b"", &o).unwrap();
        assert!(st.list_all("x").unwrap().is_empty());
        assert_eq!(st.hidden_by_lag(), 1);
        st.put_blob("y1", b"", &o).unwrap();
        st.put_blob("y2", b"", &o).unwrap();
        assert_eq!(st.list_all("x").unwrap().len(), 1);
        assert!(st.get_blob("y2", 0, None).is_ok(), "reads are consistent");
        // frozen: y1 and y2 (the last two writes) stay hidden whatever is written next
        st.freeze_list_lag();
        st.put_blob("y3", b"", &o).unwrap();
        st.put_blob("y4", b"", &o).unwrap();
        let mut ids: Vec<String> = st
            .list_all("y")
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["y3", "y4"]);
        st.set_list_lag(0);
        assert_eq!(st.list_all("y").unwrap().len(), 4);
    }
}
