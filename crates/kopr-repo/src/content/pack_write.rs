//! Writing packs: hands full packs to background writers, compresses and encrypts contents,
//! opens packs and write sessions, and assembles a pack's local index and postamble.

use super::*;
use std::sync::atomic::Ordering;

impl ContentManager {
    /// Hands a full pack to a background writer, so the thread that filled it goes on hashing
    /// while the storage writes (and syncs) it; gives the pack back when enough are on their
    /// way already.
    pub(super) fn upload_in_background(&self, p: PendingUpload) -> Option<PendingUpload> {
        let Ok(mut bg) = self.background.state.lock() else {
            return Some(p);
        };
        if bg.running >= BACKGROUND_WRITES || p.trailer.is_err() {
            return Some(p);
        }
        let st = self.st.clone();
        let background = self.background.clone();
        let failed_id = p.blob_id.clone();
        let PendingUpload { blob_id, data, .. } = p;
        let spawned = std::thread::Builder::new()
            .name("kopr-pack-writer".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    st.put_blob(&blob_id, &data, &PutOptions::default())
                }));
                // The uploading set holds the last reference: its buffer can be reused.
                drop(data);
                let result = match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the pack writer panicked".to_string()),
                };
                let finished = Finished { blob_id, result };
                if let Ok(mut bg) = background.state.lock() {
                    bg.running -= 1;
                    bg.in_flight -= 1;
                    bg.finished.push(finished);
                }
                background.finished_any.store(true, Ordering::Release);
                background.done.notify_all();
            });
        match spawned {
            Ok(_) => {
                bg.running += 1;
                None
            }
            // No thread: the pack went with the closure; say so as a failed write.
            Err(e) => {
                bg.in_flight -= 1;
                bg.finished.push(Finished {
                    blob_id: failed_id,
                    result: Err(format!("cannot start a pack writer: {e}")),
                });
                drop(bg);
                self.background.finished_any.store(true, Ordering::Release);
                self.background.done.notify_all();
                None
            }
        }
    }

    /// Accounts for the packs background writers finished: their buffers can be reused, a
    /// failure fails the writer.
    pub(super) fn account_background(&self, s: &mut WriteState) {
        if !self.background.finished_any.swap(false, Ordering::Acquire) {
            return;
        }
        let finished = match self.background.state.lock() {
            Ok(mut bg) if !bg.finished.is_empty() => std::mem::take(&mut bg.finished),
            _ => return,
        };
        for f in finished {
            self.finish_upload(s, &f.blob_id, &f.result);
        }
    }

    /// Waits until every pack on its way has been written (by whichever thread), accounts for
    /// what background writers wrote, and returns the writer's state with no pack uploading
    /// (packs other threads fill meanwhile are waited for too).
    pub(super) fn wait_writes(&self) -> Result<std::sync::MutexGuard<'_, WriteState>> {
        loop {
            {
                let mut bg = self.background.state.lock().map_err(|_| poisoned())?;
                while bg.in_flight > 0 {
                    bg = self.background.done.wait(bg).map_err(|_| poisoned())?;
                }
            }
            self.background.finished_any.store(true, Ordering::Release);
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            self.account_background(&mut s);
            if s.uploading.is_empty() {
                return Ok(s);
            }
        }
    }

    /// Counts a pack on its way to storage (see [`BackgroundWrites`]).
    fn pack_started(&self) {
        if let Ok(mut bg) = self.background.state.lock() {
            bg.in_flight += 1;
        }
    }

    /// Counts a pack the thread that filled it has written (or failed to), waking `flush`.
    fn pack_ended(&self) {
        if let Ok(mut bg) = self.background.state.lock() {
            bg.in_flight -= 1;
        }
        self.background.done.notify_all();
    }

    pub(super) fn write_time(&self, previous: i64) -> i64 {
        let now = self.clock.now().timestamp();
        if now > previous {
            now
        } else {
            previous + 1
        }
    }

    /// Compresses `data` (when that shrinks it) and encrypts it into `out`, replacing what
    /// `out` held; returns the compression header used.
    pub(super) fn compress_and_encrypt(
        &self,
        id: &ContentId,
        data: &[u8],
        comp: Option<&'static Compressor>,
        out: &mut Vec<u8>,
    ) -> Result<HeaderId> {
        COMPRESSED.with(|cell| {
            let mut compressed = cell.borrow_mut();
            compressed.clear();
            let mut header = HeaderId(0);
            let mut plain: &[u8] = data;
            // Index v1 cannot record a compressor: such repositories store contents as they are
            // (Kopia refuses content compression there too).
            // Data that looks incompressible (media, archives, random bytes) is not tried:
            // compressing it would cost CPU for nothing.
            let comp = comp.filter(|_| {
                self.format.supports_content_compression()
                    && !compression::looks_incompressible(data)
            });
            if let Some(c) = comp {
                c.compress(data, &mut compressed)?;
                if compressed.len() < data.len() {
                    header = c.header_id();
                    plain = &compressed;
                }
            }
            out.clear();
            out.reserve(plain.len() + self.format.encryptor.overhead());
            self.format
                .encryptor
                .encrypt(plain, pack::content_iv(id.hash()), out);
            Ok(header)
        })
    }

    pub(super) fn new_open_pack(
        &self,
        s: &mut WriteState,
        prefix: &'static str,
    ) -> Result<OpenPack> {
        let session = self.session_id(s)?;
        let mut rnd = [0u8; pack::PACK_ID_RANDOM_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut rnd);
        // Room for a full pack and its trailer, so appending never moves the bytes (pages are
        // only touched as contents arrive).
        let max = self.format.config.effective_max_pack_size() as usize;
        let room = max + max / 8 + (1 << 20);
        let mut data = match s.spare_buffers.pop() {
            Some(b) if b.capacity() >= room => b,
            _ => Vec::with_capacity(room),
        };
        // Repositories without password change start every pack with a copy of the format
        // blob, as Kopia does; then random bytes.
        pack::start_pack(&mut data, self.format.pack_format_prefix());
        Ok(OpenPack {
            blob_id: format!("{prefix}{}-{session}", hex::encode(rnd)).into(),
            data,
            items: FxHashMap::default(),
        })
    }

    pub(super) fn session_id(&self, s: &mut WriteState) -> Result<String> {
        if let Some(si) = &s.session {
            return Ok(si.id.clone());
        }
        let now = self.clock.now();
        let info = SessionInfo {
            id: generate_session_id(now),
            start_time: now,
            checkpoint_time: now,
            user: self.identity.user.clone(),
            host: self.identity.host.clone(),
        };
        let (blob_id, bytes) = info.seal(&self.format.hasher, &self.format.encryptor)?;
        self.st.put_blob(&blob_id, &bytes, &PutOptions::default())?;
        s.session_markers.push(blob_id.into());
        let id = info.id.clone();
        s.session = Some(info);
        Ok(id)
    }

    /// Moves a full pack to the uploading set; the caller uploads it without the lock. The
    /// trailer (padding, encrypted local index, postamble) is appended in place, so the pack
    /// is never copied; contents keep their offsets for reads while it uploads.
    pub(super) fn start_upload(&self, s: &mut WriteState, mut p: OpenPack) -> PendingUpload {
        let mut data = std::mem::take(&mut p.data);
        let trailer = self
            .append_trailer(&mut data, p.items.values())
            .map_err(|e| e.to_string());
        let data = Arc::new(data);
        self.pack_started();
        s.uploading.insert(p.blob_id.clone(), data.clone());
        // The entries wait for the index blob from now on, moved (this runs under the lock
        // every writer takes); whether their pack landed is whether it left `uploading`.
        for (id, e) in p.items.drain() {
            if let Some(old) = s.uncommitted.insert(id, e) {
                s.displaced.push((p.blob_id.clone(), old));
            }
        }
        PendingUpload {
            blob_id: p.blob_id,
            data,
            trailer,
        }
    }

    pub(super) fn upload(&self, p: PendingUpload) -> Result<()> {
        let PendingUpload {
            blob_id,
            data,
            trailer,
        } = p;
        let result = match trailer {
            Ok(()) => self
                .st
                .put_blob(&blob_id, &data, &PutOptions::default())
                .map_err(RepoError::from),
            Err(e) => Err(RepoError::Invalid(format!("cannot finish pack: {e}"))),
        };
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        drop(data);
        match self.state.lock() {
            Ok(mut s) => self.finish_upload(&mut s, &blob_id, &outcome),
            Err(_) => {
                self.pack_ended();
                return Err(poisoned());
            }
        }
        self.pack_ended();
        result
    }

    /// The bookkeeping of a pack write that ended: the pack leaves the uploading set (its
    /// buffer kept for the next pack), so its contents are read from storage from now on and
    /// are indexed by the next `flush`; a failure drops its contents' entries and fails the
    /// writer.
    pub(super) fn finish_upload(
        &self,
        s: &mut WriteState,
        blob_id: &str,
        result: &std::result::Result<(), String>,
    ) {
        if let Some(data) = s.uploading.remove(blob_id) {
            if s.spare_buffers.len() < SPARE_BUFFERS {
                if let Ok(buffer) = Arc::try_unwrap(data) {
                    s.spare_buffers.push(buffer);
                }
            }
        }
        let mut displaced = Vec::new();
        if !s.displaced.is_empty() {
            let (mine, others) = std::mem::take(&mut s.displaced)
                .into_iter()
                .partition(|(by, _)| &**by == blob_id);
            s.displaced = others;
            displaced = mine;
        }
        match result {
            Ok(()) => {
                if let Ok(mut st) = self.stats.lock() {
                    st.packs_written += 1;
                }
            }
            Err(e) => {
                s.uncommitted
                    .retain(|_, entry| &*entry.pack_blob_id != blob_id);
                for (_, old) in displaced {
                    s.uncommitted.entry(old.content_id).or_insert(old);
                }
                s.failed = Some(format!("pack {blob_id}: {e}"));
            }
        }
    }

    /// Appends padding, the encrypted local index and the postamble to pack contents.
    pub(super) fn append_trailer<'a>(
        &self,
        out: &mut Vec<u8>,
        items: impl IntoIterator<Item = &'a IndexEntry>,
    ) -> Result<()> {
        let local_index = legacy_index::encode_index(self.format.index_version(), items)?;
        pack::finish_pack(
            out,
            &local_index,
            &self.format.hasher,
            &self.format.encryptor,
        )?;
        Ok(())
    }
}
