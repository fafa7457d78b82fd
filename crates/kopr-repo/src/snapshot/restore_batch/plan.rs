//! Planning a batch: every chunk of every file looked up in the index, grouped by pack,
//! sorted by offset, and ranges with small gaps coalesced into one read.

use super::*;

/// Looks every chunk up, groups the chunks by pack and coalesces their ranges.
pub(super) fn make_plan(
    repo: &Repository,
    files: Vec<(DirEntry, PathBuf)>,
    opts: RestoreOptions,
    result: &mut BatchResult,
) -> Result<Plan> {
    let mut plan = plan_targets(repo, files, opts, result)?;
    let cache = repo.content_cache();
    let mut by_pack: BTreeMap<&BlobId, Vec<usize>> = BTreeMap::new();
    for (i, p) in plan.pieces.iter().enumerate() {
        by_pack.entry(&p.entry.pack_blob_id).or_default().push(i);
    }
    let mut cached = Vec::new();
    let mut ranges = Vec::new();
    for (pack, mut pieces) in by_pack {
        // In offset order, as every range keeps them (see `Range::pieces`).
        pieces.sort_by_key(|&i| plan.pieces[i].entry.pack_offset);
        if cache.is_enabled() {
            cached.extend(take_cached(&plan.pieces, cache, pack, &mut pieces));
        }
        coalesce(&plan.pieces, pack, pieces, &mut ranges);
    }
    plan.cached = cached;
    plan.ranges = ranges;
    Ok(plan)
}

/// The targets and their pieces (one per distinct content), and the files restored the plain
/// way; with `ignore_errors` a file that cannot be planned is skipped.
fn plan_targets(
    repo: &Repository,
    files: Vec<(DirEntry, PathBuf)>,
    opts: RestoreOptions,
    result: &mut BatchResult,
) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut piece_of: HashMap<(ContentId, bool), usize> = HashMap::new();
    for (entry, dest) in files {
        let chunks = match plan_file(repo, &entry, &dest, opts) {
            Ok(Some(chunks)) => chunks,
            Ok(None) => {
                plan.plain.push((entry, dest));
                continue;
            }
            Err(err) if opts.ignore_errors => {
                result.skipped.push((dest, err));
                continue;
            }
            Err(err) => return Err(err),
        };
        let t = plan.targets.len();
        let mut length = 0;
        for (cid, compressed, ie, start, len) in &chunks {
            let p = *piece_of.entry((*cid, *compressed)).or_insert_with(|| {
                plan.pieces.push(Piece {
                    entry: ie.clone(),
                    object_compressed: *compressed,
                    length: *len,
                    writes: Vec::new(),
                });
                plan.pieces.len() - 1
            });
            plan.pieces[p].writes.push((t, *start));
            length += len;
        }
        plan.targets.push(Target {
            entry,
            dest,
            length,
            state: Mutex::new(TargetState {
                remaining: chunks.len(),
                ..Default::default()
            }),
        });
    }
    Ok(plan)
}

/// Takes out of `pieces` those that a range in the content cache holds; returns those ranges
/// (the cache file and the pieces it serves).
fn take_cached(
    all: &[Piece],
    cache: &crate::content_cache::ContentCache,
    pack: &BlobId,
    pieces: &mut Vec<usize>,
) -> Vec<(PathBuf, Range)> {
    let mut in_cache: Vec<(PathBuf, Range)> = cache
        .ranges(pack)
        .into_iter()
        .map(|(start, end, path)| {
            let r = Range {
                pack: pack.clone(),
                start,
                end,
                pieces: Vec::new(),
            };
            (path, r)
        })
        .collect();
    pieces.retain(|&i| {
        let (a, b) = extent(&all[i].entry);
        match in_cache
            .iter_mut()
            .find(|(_, r)| r.start <= a && b <= r.end)
        {
            Some((_, r)) => {
                r.pieces.push(i);
                false
            }
            None => true,
        }
    });
    in_cache.retain(|(_, r)| !r.pieces.is_empty());
    in_cache
}

/// Appends the reads of one pack's pieces (in offset order) to `ranges`: pieces closer than
/// [`COALESCE_GAP`] share a read, which grows no longer than [`MAX_RANGE`].
fn coalesce(all: &[Piece], pack: &BlobId, pieces: Vec<usize>, ranges: &mut Vec<Range>) {
    let mut current: Option<Range> = None;
    for i in pieces {
        let (start, end) = extent(&all[i].entry);
        match &mut current {
            Some(r) if start <= r.end + COALESCE_GAP && end.max(r.end) - r.start <= MAX_RANGE => {
                r.end = r.end.max(end);
                r.pieces.push(i);
            }
            _ => {
                ranges.extend(current.take());
                current = Some(Range {
                    pack: pack.clone(),
                    start,
                    end,
                    pieces: vec![i],
                });
            }
        }
    }
    ranges.extend(current);
}

/// Where a content lies in its pack: `[start, end)`.
fn extent(e: &IndexEntry) -> (u64, u64) {
    let start = u64::from(e.pack_offset);
    (start, start + u64::from(e.packed_length))
}

/// A planned chunk: content, whether its object is compressed, where it is stored, its offset
/// in the file and its length.
type PlannedChunk = (ContentId, bool, IndexEntry, u64, u64);

/// The chunks of one file, or `None` when it is restored the plain way. Checks first that the
/// destination can be written.
fn plan_file(
    repo: &Repository,
    e: &DirEntry,
    dest: &std::path::Path,
    opts: RestoreOptions,
) -> Result<Option<Vec<PlannedChunk>>> {
    // One lstat for both checks (most destinations do not exist); a symlink is in the way
    // only when it leads somewhere, as `exists` says.
    let found = fs::symlink_metadata(dest).ok();
    let exists = found
        .as_ref()
        .is_some_and(|m| !m.file_type().is_symlink() || dest.exists());
    if exists && !opts.overwrite {
        return Err(RepoError::Invalid(format!(
            "{} already exists (use --overwrite)",
            dest.display()
        )));
    }
    if found.is_some_and(|m| m.is_dir()) {
        return Err(RepoError::Invalid(format!(
            "{}: the snapshot has a file here, but a directory is in the way; move it away or restore to another target",
            dest.display()
        )));
    }
    let cm = repo.contents();
    let mut out = Vec::new();
    for chunk in chunks_of(repo, &e.object_id)? {
        let Some(cid) = chunk.object.content_id() else {
            return Ok(None); // an indirect chunk
        };
        let Some(ie) = cm.stored_entry(&cid)? else {
            return Ok(None); // unknown (reported by the plain way) or not stored yet
        };
        out.push((
            cid,
            chunk.object.is_compressed(),
            ie,
            chunk.start,
            chunk.length,
        ));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The chunk list of a file, its list read through the content cache.
fn chunks_of(repo: &Repository, oid: &ObjectId) -> Result<Vec<IndirectEntry>> {
    match oid.index_object_id() {
        Some(index) => {
            let list = read_small_object(repo, &index)?;
            Ok(decode_indirect(&list)
                .map_err(|e| RepoError::Invalid(format!("object {oid}: {e}")))?)
        }
        None => object_entries(repo.contents(), oid),
    }
}
