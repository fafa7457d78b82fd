//! Listing a WebDAV storage: PROPFIND (`Depth: 1`) of one directory, parsed from its
//! multistatus answer, and the walk of the shard directories, several at once, that turns the
//! `.f` files under them into blob ids.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{Failure, WebDavStorage, LIST_THREADS};
use crate::filesystem::BLOB_SUFFIX;
use crate::http;
use crate::s3::xml;
use crate::{BlobError, BlobMetadata, Result};

/// One PROPFIND entry.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) dir: bool,
    pub(super) length: u64,
    pub(super) modified: Option<DateTime<Utc>>,
}

impl WebDavStorage {
    /// The entries of directory `rel` (`""` for the root); a missing directory is empty.
    fn read_dir(&self, rel: &str) -> Result<Vec<Entry>> {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>";
        let dir = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let headers = [
            ("depth", "1".to_string()),
            ("content-type", "application/xml".to_string()),
        ];
        let resp = match self.request("PROPFIND", &dir, &headers, Some(body)) {
            Ok(r) => r,
            Err(Failure::Status(404, _)) => return Ok(Vec::new()),
            Err(f) => return Err(self.error(f, "list", &dir)),
        };
        let doc = http::read_doc(resp, "WebDAV", &format!("list of /{dir}"))?;
        parse_propfind(
            &doc,
            &format!("{}/{}", self.base_path, http::encode_path(&dir)),
        )
        .map_err(|e| BlobError::Other(format!("WebDAV list of /{dir}: {e}")))
    }

    /// Directories of the walk still to read: (relative path, id prefix so far).
    pub(super) fn walk(
        &self,
        want: &str,
        cb: &mut dyn FnMut(BlobMetadata) -> Result<()>,
    ) -> Result<()> {
        let queue = Mutex::new(vec![(String::new(), String::new())]);
        let found: Mutex<Vec<BlobMetadata>> = Mutex::new(Vec::new());
        let failed: Mutex<Option<BlobError>> = Mutex::new(None);
        let busy = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..LIST_THREADS {
                s.spawn(|| loop {
                    let job = {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let j = q.pop();
                        if j.is_some() {
                            busy.fetch_add(1, Ordering::SeqCst);
                        }
                        j
                    };
                    let Some((dir, id_prefix)) = job else {
                        if busy.load(Ordering::SeqCst) == 0 {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    };
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        busy.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                    match self.read_dir(&dir) {
                        Ok(entries) => {
                            let (subdirs, blobs) = classify(entries, &dir, &id_prefix, want);
                            if let Ok(mut f) = found.lock() {
                                f.extend(blobs);
                            }
                            queue
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .extend(subdirs);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                    busy.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let mut all = found.into_inner().unwrap_or_else(|p| p.into_inner());
        all.sort_by(|a, b| a.id.cmp(&b.id));
        for m in all {
            cb(m)?;
        }
        Ok(())
    }
}

/// Splits the entries of directory `dir` (whose blobs' ids start with `id_prefix`) into the
/// subdirectories that may hold ids starting with `want`, and the blobs whose ids do.
fn classify(
    entries: Vec<Entry>,
    dir: &str,
    id_prefix: &str,
    want: &str,
) -> (Vec<(String, String)>, Vec<BlobMetadata>) {
    let mut subdirs = Vec::new();
    let mut blobs = Vec::new();
    for e in entries {
        if e.name.starts_with('.') {
            continue;
        }
        if e.dir {
            let p = format!("{id_prefix}{}", e.name);
            let n = p.len().min(want.len());
            if p.as_bytes()[..n] == want.as_bytes()[..n] {
                let d = if dir.is_empty() {
                    e.name.clone()
                } else {
                    format!("{dir}/{}", e.name)
                };
                subdirs.push((d, p));
            }
        } else if let Some(stem) = e.name.strip_suffix(BLOB_SUFFIX) {
            let id = format!("{id_prefix}{stem}");
            if id.starts_with(want) {
                blobs.push(BlobMetadata {
                    id,
                    length: e.length,
                    timestamp: e.modified.unwrap_or_else(Utc::now),
                });
            }
        }
    }
    (subdirs, blobs)
}

/// Reads a PROPFIND multistatus answer for directory `dir_path` (the href of the directory,
/// percent-encoded): its children, not itself. Namespace prefixes are ignored.
pub(super) fn parse_propfind(doc: &str, dir_path: &str) -> std::result::Result<Vec<Entry>, String> {
    let doc = strip_ns(doc);
    if xml::elements(&doc, "multistatus").is_empty() {
        return Err("the answer is not a multistatus document".into());
    }
    let dir_norm = dir_path.trim_end_matches('/');
    let mut out = Vec::new();
    for r in xml::elements(&doc, "response") {
        let href = xml::text(r, "href").ok_or("response without href")?;
        // an absolute URL or an absolute path
        let path = match href.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
            None => href.clone(),
        };
        let trimmed = path.trim_end_matches('/');
        if percent_decode(trimmed) == percent_decode(dir_norm) {
            continue;
        }
        let Some(name) = trimmed.rsplit('/').next().map(percent_decode) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let dir = xml::elements(r, "resourcetype")
            .first()
            .is_some_and(|t| t.contains("<collection"));
        let length = xml::text(r, "getcontentlength")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let modified = xml::text(r, "getlastmodified")
            .and_then(|s| DateTime::parse_from_rfc2822(&s).ok())
            .map(|t| t.with_timezone(&Utc));
        out.push(Entry {
            name,
            dir,
            length,
            modified,
        });
    }
    Ok(out)
}

/// Removes namespace prefixes from element names (`<D:href>` → `<href>`).
fn strip_ns(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let slash = rest.starts_with('/');
        if slash {
            out.push('/');
            rest = &rest[1..];
        }
        let end = rest
            .find(|c: char| c == '>' || c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        if let Some(colon) = rest[..end].find(':') {
            rest = &rest[colon + 1..];
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
