//! Objects: byte streams of any length, split into contents by a content-defined splitter.
//!
//! A stream that fits in one chunk is the object id of that content. Longer streams get an
//! *indirect* object: a JSON list of `(start, length, object)` entries stored as an object
//! itself (under the `x` content prefix, or the writer's prefix), and the id gains an `I`.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use kopr_format::compression::{self, Compressor};
use kopr_format::object_id::{decode_indirect, encode_indirect, IndirectEntry, ObjectId};
use kopr_format::splitter::{new_splitter, Splitter};

use crate::content::ContentManager;
use crate::error::{RepoError, Result};

/// Content prefix of indirect object lists written by data writers.
pub const INDIRECT_CONTENT_PREFIX: u8 = b'x';

/// How an object is written.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// Content id prefix (`k` for directories, `m` for manifests, none for file data).
    pub prefix: Option<u8>,
    /// Compressor for the data chunks (`None` for no compression).
    pub compression: Option<&'static Compressor>,
    /// Compressor for indirect lists.
    pub metadata_compression: Option<&'static Compressor>,
    /// Splitter name; the repository's when `None`.
    pub splitter: Option<String>,
}

impl WriterOptions {
    /// The options of a file's data: compressed with `compression`, its chunk list (if any)
    /// with the metadata default, cut by the repository's splitter.
    pub fn file_data(compression: Option<&'static Compressor>) -> Self {
        WriterOptions {
            prefix: None,
            compression,
            metadata_compression: Some(compression::metadata_default()),
            splitter: None,
        }
    }
}

/// Writes one object; call [`ObjectWriter::result`] to get its id.
pub struct ObjectWriter<'a> {
    cm: &'a ContentManager,
    opts: WriterOptions,
    splitter: Box<dyn Splitter>,
    buf: Vec<u8>,
    entries: Vec<IndirectEntry>,
    position: u64,
    /// Chunks cut but not yet stored: written in parallel batches.
    queued: Vec<(u64, Vec<u8>)>,
    parallelism: usize,
    /// Idle workers of a pool this writer runs in: chunks are stored in batches of one more
    /// than that (inline when nobody is idle) instead of `parallelism`.
    spare: Option<&'a AtomicUsize>,
}

impl std::fmt::Debug for ObjectWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("position", &self.position)
            .field("chunks", &self.entries.len())
            .finish()
    }
}

impl<'a> ObjectWriter<'a> {
    /// A writer storing into `cm`.
    pub fn new(cm: &'a ContentManager, opts: WriterOptions) -> Result<Self> {
        let name = opts
            .splitter
            .clone()
            .unwrap_or_else(|| cm.format().config.splitter.clone());
        let splitter = new_splitter(&name)?;
        Ok(ObjectWriter {
            cm,
            opts,
            splitter,
            buf: Vec::new(),
            entries: Vec::new(),
            position: 0,
            queued: Vec::new(),
            parallelism: crate::parallelism(),
            spare: None,
        })
    }

    /// Stores chunks on as many threads as `spare` says are idle, plus this one.
    pub fn with_spare_workers(mut self, spare: &'a AtomicUsize) -> Self {
        self.spare = Some(spare);
        self
    }

    fn batch_size(&self) -> usize {
        match self.spare {
            Some(idle) => 1 + idle.load(Ordering::Relaxed).min(self.parallelism),
            None => self.parallelism,
        }
    }

    /// Appends bytes to the object.
    pub fn write_bytes(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match self.splitter.next_split_point(data) {
                Some(n) => {
                    self.buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.flush_chunk()?;
                }
                None => {
                    self.buf.extend_from_slice(data);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        let chunk = std::mem::take(&mut self.buf);
        let start = self.position;
        self.position += chunk.len() as u64;
        self.queued.push((start, chunk));
        if self.queued.len() >= self.batch_size() {
            self.store_queued()?;
        }
        Ok(())
    }

    /// Stores queued chunks, one thread per chunk, keeping their order.
    fn store_queued(&mut self) -> Result<()> {
        let queued = std::mem::take(&mut self.queued);
        let (cm, prefix, comp) = (self.cm, self.opts.prefix, self.opts.compression);
        let ids = crate::parallel::map("chunk writer", queued.len(), &queued, &|| false, |c| {
            store_chunk(cm, &c.1, prefix, comp)
        })?;
        for ((start, data), id) in queued.into_iter().zip(ids) {
            self.entries.push(IndirectEntry {
                start,
                length: data.len() as u64,
                object: id,
            });
        }
        Ok(())
    }

    /// Finishes the object and returns its id.
    pub fn result(mut self) -> Result<ObjectId> {
        if !self.buf.is_empty() || (self.entries.is_empty() && self.queued.is_empty()) {
            self.flush_chunk()?;
        }
        self.store_queued()?;
        if self.entries.len() == 1 {
            return Ok(self.entries[0].object.clone());
        }
        let list = encode_indirect(&self.entries);
        let mut iw = ObjectWriter::new(
            self.cm,
            WriterOptions {
                prefix: Some(self.opts.prefix.unwrap_or(INDIRECT_CONTENT_PREFIX)),
                compression: self.opts.metadata_compression,
                metadata_compression: self.opts.metadata_compression,
                splitter: None,
            },
        )?;
        iw.write_bytes(&list)?;
        Ok(ObjectId::indirect(iw.result()?))
    }
}

impl Write for ObjectWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stores `data` as a whole object of one chunk, as [`ObjectWriter`] does for a stream shorter
/// than its splitter's shortest chunk (see [`single_chunk_limit`]): for small files, without
/// a writer, a splitter or a copy of the data.
pub(crate) fn write_single_chunk(
    cm: &ContentManager,
    data: &[u8],
    compression: Option<&'static Compressor>,
) -> Result<ObjectId> {
    store_chunk(cm, data, None, compression)
}

/// Stores each of `chunks` (data, with the compressor of its file) as one object, hashing
/// them together first where the repository compresses contents itself (index v2).
pub(crate) fn write_single_chunks(
    cm: &ContentManager,
    chunks: &[(&[u8], Option<&'static Compressor>)],
) -> Vec<Result<ObjectId>> {
    let data: Vec<&[u8]> = chunks.iter().map(|c| c.0).collect();
    let ids = match cm.format().supports_content_compression() {
        true => cm.content_ids_for(&data, None).ok(),
        false => None,
    };
    match ids {
        Some(ids) => ids
            .into_iter()
            .zip(chunks)
            .map(|(id, &(data, comp))| Ok(ObjectId::direct(cm.write_content_as(id, data, comp)?)))
            .collect(),
        // One at a time (index v1 compresses at the object layer, before hashing).
        None => chunks
            .iter()
            .map(|&(data, comp)| write_single_chunk(cm, data, comp))
            .collect(),
    }
}

/// Streams shorter than this are never cut by the repository's splitter: they are stored as
/// one chunk.
pub(crate) fn single_chunk_limit(cm: &ContentManager) -> Result<usize> {
    Ok(
        kopr_format::splitter::SplitterFactory::new(&cm.format().config.splitter)?
            .min_segment_size(),
    )
}

/// Stores one chunk. Repositories whose index cannot record a compressor (index v1) compress
/// data chunks at the object layer instead, as Kopia does: the compressed bytes (with their
/// compressor header) become the content and the object id is marked `Z`, when that is
/// smaller; metadata (prefixed) chunks stay uncompressed there.
fn store_chunk(
    cm: &ContentManager,
    data: &[u8],
    prefix: Option<u8>,
    comp: Option<&'static Compressor>,
) -> Result<ObjectId> {
    if cm.format().supports_content_compression() {
        return Ok(ObjectId::direct(cm.write_content(data, prefix, comp)?));
    }
    if let Some(c) = comp.filter(|_| prefix.is_none()) {
        let mut compressed = Vec::new();
        c.compress(data, &mut compressed)?;
        if compressed.len() < data.len() {
            return Ok(ObjectId::compressed(cm.write_content(
                &compressed,
                None,
                None,
            )?));
        }
    }
    Ok(ObjectId::direct(cm.write_content(data, prefix, None)?))
}

/// Writes `data` as one object.
pub fn write_object(cm: &ContentManager, data: &[u8], opts: WriterOptions) -> Result<ObjectId> {
    let mut w = ObjectWriter::new(cm, opts)?;
    w.write_bytes(data)?;
    w.result()
}

fn read_direct(cm: &ContentManager, oid: &ObjectId) -> Result<Vec<u8>> {
    let cid = oid
        .content_id()
        .ok_or_else(|| RepoError::Invalid(format!("object {oid} is not direct")))?;
    let data = cm.get_content(&cid)?;
    if oid.is_compressed() {
        let mut out = Vec::new();
        compression::decompress(&data, &mut out).map_err(|e| RepoError::CorruptContent {
            id: cid.to_string(),
            detail: e.to_string(),
        })?;
        return Ok(out);
    }
    Ok(data)
}

/// The chunk list of an object (a single entry for direct objects).
pub fn object_entries(cm: &ContentManager, oid: &ObjectId) -> Result<Vec<IndirectEntry>> {
    match oid.index_object_id() {
        Some(index) => {
            let list = read_object(cm, &index)?;
            Ok(decode_indirect(&list)
                .map_err(|e| RepoError::Invalid(format!("object {oid}: {e}")))?)
        }
        None => {
            let len = match oid.content_id() {
                Some(cid) if !oid.is_compressed() => cm
                    .content_info(&cid)?
                    .map(|e| u64::from(e.original_length))
                    .ok_or_else(|| RepoError::ContentNotFound(cid.to_string()))?,
                _ => read_direct(cm, oid)?.len() as u64,
            };
            Ok(vec![IndirectEntry {
                start: 0,
                length: len,
                object: oid.clone(),
            }])
        }
    }
}

/// Reads a whole object into memory (for small objects: directories, manifests).
pub fn read_object(cm: &ContentManager, oid: &ObjectId) -> Result<Vec<u8>> {
    match oid.index_object_id() {
        None => read_direct(cm, oid),
        Some(_) => {
            let mut r = ObjectReader::open(cm, oid)?;
            let mut out = Vec::with_capacity(r.len() as usize);
            r.read_to_end(&mut out)
                .map_err(|e| RepoError::Invalid(e.to_string()))?;
            Ok(out)
        }
    }
}

/// A seekable reader over an object, fetching one chunk at a time.
pub struct ObjectReader<'a> {
    cm: &'a ContentManager,
    entries: Vec<IndirectEntry>,
    total: u64,
    pos: u64,
    current: Option<(usize, Vec<u8>)>,
}

impl<'a> ObjectReader<'a> {
    /// Opens `oid` for reading.
    pub fn open(cm: &'a ContentManager, oid: &ObjectId) -> Result<Self> {
        let entries = object_entries(cm, oid)?;
        let total = entries.last().map(|e| e.start + e.length).unwrap_or(0);
        Ok(ObjectReader {
            cm,
            entries,
            total,
            pos: 0,
            current: None,
        })
    }

    /// Length of the object.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn chunk(&mut self, idx: usize) -> Result<&[u8]> {
        if self.current.as_ref().map(|c| c.0) != Some(idx) {
            let e = &self.entries[idx];
            let data = read_object(self.cm, &e.object)?;
            if data.len() as u64 != e.length {
                return Err(RepoError::Invalid(format!(
                    "chunk {} has {} bytes, index says {}",
                    e.object,
                    data.len(),
                    e.length
                )));
            }
            self.current = Some((idx, data));
        }
        Ok(self.current.as_ref().map(|c| c.1.as_slice()).unwrap_or(&[]))
    }
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.total || buf.is_empty() {
            return Ok(0);
        }
        let pos = self.pos;
        let idx = self.entries.partition_point(|e| e.start + e.length <= pos);
        let start = self.entries[idx].start;
        let chunk = self.chunk(idx).map_err(io::Error::other)?;
        let off = (pos - start) as usize;
        let n = buf.len().min(chunk.len() - off);
        buf[..n].copy_from_slice(&chunk[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.total as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}
