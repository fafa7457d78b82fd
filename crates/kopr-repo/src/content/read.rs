//! Reading contents back: from the packs being written or from storage, authenticated,
//! decrypted and decompressed; listing and looking up index entries, committed and local.

use std::borrow::Cow;

use super::*;

impl ContentManager {
    /// Reads a content back: fetches its packed bytes, authenticates, decrypts, decompresses.
    pub fn get_content(&self, id: &ContentId) -> Result<Vec<u8>> {
        let (entry, local) = {
            let s = self.state.lock().map_err(|_| poisoned())?;
            match local_bytes(&s, id) {
                Some((e, b)) => (e, Some(b)),
                None => (
                    self.committed
                        .read()
                        .map_err(|_| poisoned())?
                        .get(id)?
                        .or_else(|| s.uncommitted.get(id).cloned())
                        .ok_or_else(|| RepoError::ContentNotFound(id.to_string()))?,
                    None,
                ),
            }
        };
        let mut packed = match local {
            Some(b) => b,
            None => self.st.get_blob(
                &entry.pack_blob_id,
                u64::from(entry.pack_offset),
                Some(u64::from(entry.packed_length)),
            )?,
        };
        Ok(self
            .decode_packed_in_place(&entry, &mut packed)?
            .into_owned())
    }

    /// Where a content's packed bytes are in storage, for reads that fetch many contents of a
    /// pack at once ([`ContentManager::decode_packed`] then decodes each): `None` when the
    /// content is unknown or its pack is still being filled or uploaded by this manager.
    pub fn stored_entry(&self, id: &ContentId) -> Result<Option<IndexEntry>> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        let uploading = |e: &IndexEntry| s.uploading.contains_key(&e.pack_blob_id);
        if s.open.values().any(|p| p.items.contains_key(id))
            || s.uncommitted.get(id).is_some_and(uploading)
        {
            return Ok(None);
        }
        Ok(self
            .committed
            .read()
            .map_err(|_| poisoned())?
            .get(id)?
            .or_else(|| s.uncommitted.get(id).cloned()))
    }

    /// Decodes the packed bytes of a content described by `entry`.
    pub fn decode_packed(&self, entry: &IndexEntry, packed: &[u8]) -> Result<Vec<u8>> {
        check_key_id(entry)?;
        let mut plain = Vec::with_capacity(packed.len());
        self.format
            .encryptor
            .decrypt(
                packed,
                pack::content_iv(entry.content_id.hash()),
                &mut plain,
            )
            .map_err(|e| decrypt_error(entry, e))?;
        if entry.compression_header_id == 0 {
            return Ok(plain);
        }
        decompress_plain(entry, &plain)
    }

    /// [`ContentManager::decode_packed`] over bytes the caller owns and needs no more: they
    /// are decrypted where they lie, and an uncompressed content is returned as a part of
    /// them, so no byte is copied. After an error `packed` holds unspecified bytes.
    pub fn decode_packed_in_place<'a>(
        &self,
        entry: &IndexEntry,
        packed: &'a mut [u8],
    ) -> Result<Cow<'a, [u8]>> {
        let plain = self.decrypt_in_place(entry, packed)?;
        if entry.compression_header_id == 0 {
            return Ok(Cow::Borrowed(plain));
        }
        decompress_plain(entry, plain).map(Cow::Owned)
    }

    /// [`ContentManager::decode_packed_in_place`] with a compressed content's plain bytes in
    /// `out` (whose allocation a caller decoding many contents keeps) instead of a new vector.
    pub fn decode_packed_into<'a>(
        &self,
        entry: &IndexEntry,
        packed: &'a mut [u8],
        out: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let plain = self.decrypt_in_place(entry, packed)?;
        if entry.compression_header_id == 0 {
            return Ok(plain);
        }
        decompress_plain_into(entry, plain, out)?;
        Ok(out)
    }

    /// The plain (possibly compressed) bytes of a content, decrypted where they lie.
    fn decrypt_in_place<'a>(&self, entry: &IndexEntry, packed: &'a mut [u8]) -> Result<&'a [u8]> {
        check_key_id(entry)?;
        self.format
            .encryptor
            .decrypt_in_place(packed, pack::content_iv(entry.content_id.hash()))
            .map(|plain| &*plain)
            .map_err(|e| decrypt_error(entry, e))
    }

    /// Every content known (committed and written by this manager), in id order.
    pub fn list_contents(&self, include_deleted: bool) -> Result<Vec<IndexEntry>> {
        let all = self.committed.read().map_err(|_| poisoned())?.all()?;
        self.with_local_writes(all, None, include_deleted)
    }

    /// `committed` overlaid with this manager's own writes (restricted to `prefix` when
    /// given), as a list in id order.
    fn with_local_writes(
        &self,
        mut committed: BTreeMap<ContentId, IndexEntry>,
        prefix: Option<u8>,
        include_deleted: bool,
    ) -> Result<Vec<IndexEntry>> {
        let s = self.state.lock().map_err(|_| poisoned())?;
        for e in s
            .uncommitted
            .values()
            .chain(s.open.values().flat_map(|p| p.items.values()))
        {
            if prefix.is_none() || e.content_id.prefix() == prefix {
                committed.insert(e.content_id, e.clone());
            }
        }
        Ok(committed
            .into_values()
            .filter(|e| include_deleted || !e.deleted)
            .collect())
    }

    /// Contents whose id has `prefix` (committed and written by this manager), in id order,
    /// streaming the index so that memory holds only the matching entries.
    pub fn list_prefixed(&self, prefix: u8, include_deleted: bool) -> Result<Vec<IndexEntry>> {
        let mut out: BTreeMap<ContentId, IndexEntry> = BTreeMap::new();
        self.for_each_committed_in(Some(prefix), true, &mut |e| {
            out.insert(e.content_id, e.clone());
            Ok(())
        })?;
        self.with_local_writes(out, Some(prefix), include_deleted)
    }

    /// The committed-index watermark.
    pub fn deletion_watermark(&self) -> Option<chrono::DateTime<Utc>> {
        self.committed.read().ok().and_then(|c| c.watermark())
    }
}

pub(super) fn local_entry(s: &WriteState, id: &ContentId) -> Option<IndexEntry> {
    local_ref(s, id).cloned()
}

/// The entry of a content this manager wrote and has not committed yet.
pub(super) fn local_ref<'s>(s: &'s WriteState, id: &ContentId) -> Option<&'s IndexEntry> {
    s.open
        .values()
        .find_map(|p| p.items.get(id))
        .or_else(|| s.uncommitted.get(id))
}

fn local_bytes(s: &WriteState, id: &ContentId) -> Option<(IndexEntry, Vec<u8>)> {
    let slice = |data: &[u8], e: &IndexEntry| {
        let start = e.pack_offset as usize;
        data.get(start..start + e.packed_length as usize)
            .map(<[u8]>::to_vec)
    };
    for p in s.open.values() {
        if let Some(e) = p.items.get(id) {
            return slice(&p.data, e).map(|b| (e.clone(), b));
        }
    }
    let e = s.uncommitted.get(id)?;
    let data = s.uploading.get(&e.pack_blob_id)?;
    slice(data, e).map(|b| (e.clone(), b))
}

/// Contents are sealed with encryption key 0, the only one Kopia writes (the index field is
/// reserved for more).
fn check_key_id(entry: &IndexEntry) -> Result<()> {
    if entry.encryption_key_id != 0 {
        return Err(corrupt(
            entry,
            format!("unsupported encryption key id {}", entry.encryption_key_id),
        ));
    }
    Ok(())
}

/// A content that does not decode: the error names it.
fn corrupt(entry: &IndexEntry, detail: String) -> RepoError {
    RepoError::CorruptContent {
        id: entry.content_id.to_string(),
        detail,
    }
}

/// A content that does not authenticate: the error names it and where it was read.
fn decrypt_error(entry: &IndexEntry, e: kopr_format::FormatError) -> RepoError {
    corrupt(
        entry,
        format!(
            "{e} (pack {} offset {} length {})",
            entry.pack_blob_id, entry.pack_offset, entry.packed_length
        ),
    )
}

/// Decompresses a decrypted content, checking that its compressor is the one its index entry
/// names.
fn decompress_plain(entry: &IndexEntry, plain: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_plain_into(entry, plain, &mut out)?;
    Ok(out)
}

/// Decompresses a content's plain bytes into `out`, replacing what it held.
fn decompress_plain_into(entry: &IndexEntry, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
    // The index's length is a hint only: a damaged one reserves no more than the format's
    // longest content (a longer output grows as it decompresses).
    let hint = entry
        .original_length
        .min(kopr_format::index::v2::MAX_CONTENT_LEN) as usize;
    if out.capacity() < hint {
        // A new allocation rather than a grown one: growing would copy the old bytes.
        *out = Vec::with_capacity(hint);
    } else {
        out.clear();
    }
    let header = compression::decompress(plain, out).map_err(|e| corrupt(entry, e.to_string()))?;
    if header.0 != entry.compression_header_id {
        return Err(corrupt(
            entry,
            format!(
                "compression header {:08x} does not match index {:08x}",
                header.0, entry.compression_header_id
            ),
        ));
    }
    Ok(())
}
