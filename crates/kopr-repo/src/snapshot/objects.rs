//! Object references: the contents an object is stored in.

use kopr_format::object_id::ObjectId;

use crate::error::Result;
use crate::repository::Repository;

/// Every content an object uses: its chunks and, for indirect objects, its chunk lists.
pub fn object_content_ids(
    repo: &Repository,
    oid: &ObjectId,
) -> Result<Vec<kopr_format::index::ContentId>> {
    let mut out = Vec::new();
    let mut current = Some(oid.clone());
    while let Some(o) = current {
        match o.index_object_id() {
            None => {
                if let Some(c) = o.content_id() {
                    out.push(c);
                }
                current = None;
            }
            Some(index) => {
                for chunk in crate::object::object_entries(repo.contents(), &o)? {
                    if let Some(c) = chunk.object.content_id() {
                        out.push(c);
                    }
                }
                current = Some(index);
            }
        }
    }
    Ok(out)
}
