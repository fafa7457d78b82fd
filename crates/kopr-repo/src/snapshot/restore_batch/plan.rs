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
    let mut plan = Plan::default();
    let mut piece_of: HashMap<(ContentId, bool), usize> = HashMap::new();
    for (entry, dest) in files {
        match plan_file(repo, &entry, &dest, opts) {
            Ok(Some(chunks)) => {
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
            Ok(None) => plan.plain.push((entry, dest)),
            Err(err) if opts.ignore_errors => result.skipped.push((dest, err)),
            Err(err) => return Err(err),
        }
    }
    let cache = repo.content_cache();
    let mut by_pack: BTreeMap<&BlobId, Vec<usize>> = BTreeMap::new();
    for (i, p) in plan.pieces.iter().enumerate() {
        by_pack.entry(&p.entry.pack_blob_id).or_default().push(i);
    }
    let mut ranges = Vec::new();
    for (pack, mut pieces) in by_pack {
        if cache.is_enabled() {
            // Pieces a cached range holds are read from it.
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
                let e = &plan.pieces[i].entry;
                let (a, b) = (
                    u64::from(e.pack_offset),
                    u64::from(e.pack_offset) + u64::from(e.packed_length),
                );
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
            plan.cached
                .extend(in_cache.into_iter().filter(|(_, r)| !r.pieces.is_empty()));
        }
        pieces.sort_by_key(|&i| plan.pieces[i].entry.pack_offset);
        let mut current: Option<Range> = None;
        for i in pieces {
            let e = &plan.pieces[i].entry;
            let (start, end) = (
                u64::from(e.pack_offset),
                u64::from(e.pack_offset) + u64::from(e.packed_length),
            );
            match &mut current {
                Some(r)
                    if start <= r.end + COALESCE_GAP && end.max(r.end) - r.start <= MAX_RANGE =>
                {
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
    plan.ranges = ranges;
    Ok(plan)
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
    if dest.exists() && !opts.overwrite {
        return Err(RepoError::Invalid(format!(
            "{} already exists (use --overwrite)",
            dest.display()
        )));
    }
    if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
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
