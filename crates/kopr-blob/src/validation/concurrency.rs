//! validate-provider's concurrency test: writers, readers and metadata readers on random
//! connections until a deadline, with Kopia's seeded blob contents.

use super::*;

/// Kopia's seeded blob contents: a length below `max` and that many random bytes.
fn data_from_seed(seed: u64, max: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len = rng.gen_range(16..max.max(17));
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

#[derive(Default)]
struct Shared {
    seeds: HashMap<String, u64>,
    ids: Vec<String>,
    written: HashMap<String, bool>,
}

impl Shared {
    fn pick(&self) -> Option<(String, u64, bool)> {
        if self.ids.is_empty() {
            return None;
        }
        let id = &self.ids[rand::thread_rng().gen_range(0..self.ids.len())];
        Some((
            id.clone(),
            self.seeds[id],
            self.written.get(id).copied().unwrap_or(false),
        ))
    }
}

/// Writers, readers and metadata readers on random connections until the deadline (each at
/// least one round). A reader may find a blob still being written missing, never wrong; once
/// written it must be there, whole. Returns the blobs written and their lengths.
pub(super) fn concurrency_test(
    st: &Connections<'_>,
    prefix: &str,
    opt: &ValidationOptions,
    written_ids: &Mutex<Vec<String>>,
) -> VResult<Vec<(String, usize)>> {
    let run = Concurrent {
        st,
        prefix,
        opt,
        written_ids,
        deadline: Instant::now() + opt.concurrency_test_duration,
        shared: Mutex::new(Shared::default()),
        failure: Mutex::new(None),
    };
    std::thread::scope(|s| {
        for _ in 0..opt.put_blob_workers {
            s.spawn(|| run.writer());
        }
        for _ in 0..opt.get_blob_workers {
            s.spawn(|| run.reader());
        }
        for _ in 0..opt.get_metadata_workers {
            s.spawn(|| run.metadata_reader());
        }
    });
    if let Some(m) = run.failure.lock().ok().and_then(|f| f.clone()) {
        return err(format!("encountered errors: {m}"));
    }
    let g = run
        .shared
        .lock()
        .map_err(|_| ValidationError("concurrency test state poisoned".into()))?;
    Ok(g.ids
        .iter()
        .filter(|id| g.written.get(*id).copied().unwrap_or(false))
        .map(|id| {
            (
                id.clone(),
                data_from_seed(g.seeds[id], opt.max_blob_length).len(),
            )
        })
        .collect())
}

/// The state the workers of the concurrency test share.
struct Concurrent<'a> {
    st: &'a Connections<'a>,
    prefix: &'a str,
    opt: &'a ValidationOptions,
    written_ids: &'a Mutex<Vec<String>>,
    deadline: Instant,
    shared: Mutex<Shared>,
    /// The first failure.
    failure: Mutex<Option<String>>,
}

impl Concurrent<'_> {
    fn fail(&self, m: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(m);
        }
    }

    /// Past the deadline, or a worker failed.
    fn done(&self) -> bool {
        Instant::now() >= self.deadline || self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    /// Writes blobs of seeded random contents until done.
    fn writer(&self) {
        loop {
            let seed: u64 = rand::random();
            let data = data_from_seed(seed, self.opt.max_blob_length);
            let id = format!("{}{}", self.prefix, hex::encode(&data[..16]));
            if let Ok(mut g) = self.shared.lock() {
                g.seeds.insert(id.clone(), seed);
                g.ids.push(id.clone());
            }
            if let Ok(mut w) = self.written_ids.lock() {
                w.push(id.clone());
            }
            if let Err(e) = self.st.pick().put_blob(&id, &data, &PutOptions::default()) {
                self.fail(format!("error writing blob: {e}"));
                return;
            }
            if let Ok(mut g) = self.shared.lock() {
                g.written.insert(id, true);
            }
            if self.done() {
                return;
            }
        }
    }

    /// Reads random blobs back (not found is fine before their write finished) until done.
    fn reader(&self) {
        self.read_until_done(|id, seed| {
            let got = self.st.pick().get_blob(id, 0, None)?;
            Ok((got != data_from_seed(seed, self.opt.max_blob_length))
                .then(|| format!("invalid data read for {id}")))
        });
    }

    /// Reads random blobs' metadata (not found is fine before their write finished) until done.
    fn metadata_reader(&self) {
        self.read_until_done(|id, seed| {
            let bm = self.st.pick().get_metadata(id)?;
            let want = data_from_seed(seed, self.opt.max_blob_length).len() as u64;
            Ok((bm.length != want).then(|| {
                format!(
                    "unexpected partial read - invalid length read for {id}: {} wanted {want}",
                    bm.length
                )
            }))
        });
    }

    /// Picks random written (or being written) blobs and runs `read` on each until done;
    /// `read` returns what is wrong with what it read, if anything. Not found is fine for a
    /// blob whose write has not finished; any other error, or a wrong answer, fails the test.
    fn read_until_done(&self, read: impl Fn(&str, u64) -> Result<Option<String>, BlobError>) {
        loop {
            let picked = self.shared.lock().ok().and_then(|g| g.pick());
            if let Some((id, seed, written)) = picked {
                match read(&id, seed) {
                    Ok(None) => {}
                    Ok(Some(wrong)) => {
                        self.fail(wrong);
                        return;
                    }
                    Err(BlobError::NotFound(_)) if !written => {}
                    Err(e) => {
                        self.fail(format!("unexpected error when reading {id}: {e}"));
                        return;
                    }
                }
            }
            if self.done() {
                return;
            }
            std::thread::yield_now();
        }
    }
}
