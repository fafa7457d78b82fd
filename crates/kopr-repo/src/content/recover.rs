//! Reading pack blobs back without the index: each pack ends with an encrypted copy of its
//! own index, from which lost index entries can be rebuilt (`index recover`).

use kopr_format::index::{Index, IndexEntry};
use kopr_format::pack;
use kopr_format::BlobId;

use super::{poisoned, ContentManager};
use crate::error::{RepoError, Result};

impl ContentManager {
    /// The entries a pack blob lists in its local index copy, pointing into that blob.
    pub fn pack_local_index(&self, pack_blob_id: &str) -> Result<Vec<IndexEntry>> {
        let data = self.st.get_blob(pack_blob_id, 0, None)?;
        let bad = |why: String| RepoError::Invalid(format!("pack {pack_blob_id}: {why}"));
        let plain = pack::read_local_index(&data, &self.format.encryptor)
            .map_err(|e| bad(e.to_string()))?;
        let index = Index::parse_with_v1_overhead(plain, self.format.encryptor.overhead() as u32)
            .map_err(|e| bad(e.to_string()))?;
        let mut out = Vec::with_capacity(index.len());
        let pack = BlobId::from(pack_blob_id);
        for e in index.iter() {
            let mut e = e.map_err(|e| bad(e.to_string()))?;
            let end = u64::from(e.pack_offset) + u64::from(e.packed_length);
            if end > data.len() as u64 {
                return Err(bad(format!(
                    "content {} lies outside the pack ({end} > {})",
                    e.content_id,
                    data.len()
                )));
            }
            e.pack_blob_id = pack.clone();
            out.push(e);
        }
        Ok(out)
    }

    /// Adds recovered entries to the index; the next [`ContentManager::flush`] commits them.
    pub fn add_recovered_entries(&self, entries: Vec<IndexEntry>) -> Result<()> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        for e in entries {
            s.uncommitted.insert(e.content_id, e);
        }
        Ok(())
    }
}
