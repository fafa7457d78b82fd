//! Multipart upload of large blobs: parts uploaded by a few threads at once (slices of the
//! blob, no copies); any failure aborts the upload so no parts linger, and a retry starts over.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{xml, Failure, Req, S3Storage};
use crate::{BlobError, Result};

/// Parts uploaded at once.
const PART_THREADS: usize = 4;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl S3Storage {
    /// Uploads `data` to `key` in parts of the configured size.
    pub(super) fn put_multipart(&self, id: &str, key: &str, data: &[u8]) -> Result<()> {
        let resp = self
            .execute(&Req::new("POST", Some(key)).query("uploads", ""))
            .map_err(|f| self.error(f, "put", id))?;
        let body = self.read_doc(resp, "put", id)?;
        let upload_id = xml::text(&body, "UploadId")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                BlobError::Other(format!("S3 put of {id}: no UploadId in the answer"))
            })?;
        let res = self
            .upload_parts(id, key, &upload_id, data)
            .and_then(|etags| self.complete(id, key, &upload_id, &etags));
        if res.is_err() {
            // Best effort: the caller's error matters more than a failed abort.
            let _ = self.execute(&Req::new("DELETE", Some(key)).query("uploadId", upload_id));
        }
        res
    }

    fn upload_parts(
        &self,
        id: &str,
        key: &str,
        upload_id: &str,
        data: &[u8],
    ) -> Result<Vec<String>> {
        let parts: Vec<&[u8]> = data.chunks(self.part_size).collect();
        let results: Vec<Mutex<Option<Result<String>>>> =
            parts.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..PART_THREADS.min(parts.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(part) = parts.get(i) else { break };
                    let mut req = Req::new("PUT", Some(key))
                        .query("partNumber", (i + 1).to_string())
                        .query("uploadId", upload_id);
                    req.body = Some(part);
                    let res = self
                        .execute(&req)
                        .map_err(|f| self.error(f, "put", id))
                        .and_then(|resp| {
                            resp.header("etag").map(str::to_string).ok_or_else(|| {
                                BlobError::Other(format!("S3 put of {id}: part without ETag"))
                            })
                        });
                    if res.is_err() {
                        next.store(parts.len(), Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(res);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|slot| match slot.into_inner() {
                Ok(Some(r)) => r,
                _ => Err(BlobError::Other(format!(
                    "S3 put of {id}: a part was not uploaded"
                ))),
            })
            .collect()
    }

    fn complete(&self, id: &str, key: &str, upload_id: &str, etags: &[String]) -> Result<()> {
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            doc.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                escape(e)
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let mut req = Req::new("POST", Some(key)).query("uploadId", upload_id);
        req.body = Some(doc.as_bytes());
        let resp = self.execute(&req).map_err(|f| self.error(f, "put", id))?;
        // S3 may answer 200 and report a failure in the body.
        let body = self.read_doc(resp, "put", id)?;
        if xml::elements(&body, "Error").is_empty() {
            return Ok(());
        }
        let e = xml::parse_error(&body);
        Err(self.error(
            Failure::Status {
                status: 500,
                code: e.code,
                message: e.message,
                region: String::new(),
                content_range: None,
            },
            "put",
            id,
        ))
    }
}
