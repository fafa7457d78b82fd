//! `/api/v1/objects/{oid}`: an object's bytes, or a directory as a tar archive, streamed from a
//! blocking thread through a channel into the response body.

use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirManifest, EntryType};
use kopr_repo::object::{read_object, ObjectReader};
use kopr_repo::Repository;
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState};

#[derive(Deserialize)]
pub(super) struct ObjectQuery {
    fname: Option<String>,
    format: Option<String>,
}

/// A writer that hands what it is given to the response body, in chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

fn disposition(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' || c == '/' {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

/// Appends the tree of directory `oid` to `tar` under `prefix`.
fn tar_dir<W: Write>(
    repo: &Repository,
    tar: &mut tar::Builder<W>,
    dir: &DirManifest,
    prefix: &str,
) -> Result<(), String> {
    for e in &dir.entries {
        let path = if prefix.is_empty() {
            e.name.clone()
        } else {
            format!("{prefix}/{}", e.name)
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.permissions.0 & 0o7777);
        h.set_mtime(u64::try_from(e.mod_time.div_euclid(1_000_000_000)).unwrap_or(0));
        h.set_uid(u64::from(e.user_id));
        h.set_gid(u64::from(e.group_id));
        match e.entry_type {
            EntryType::Directory => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(|e| e.to_string())?;
                let sub = read_object(repo.contents(), &e.object_id)
                    .map_err(|e| e.to_string())
                    .and_then(|b| DirManifest::decode(&b).map_err(|e| e.to_string()))?;
                tar_dir(repo, tar, &sub, &path)?;
            }
            EntryType::Symlink => {
                let target =
                    read_object(repo.contents(), &e.object_id).map_err(|e| e.to_string())?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &path, String::from_utf8_lossy(&target).as_ref())
                    .map_err(|e| e.to_string())?;
            }
            EntryType::File => {
                let r =
                    ObjectReader::open(repo.contents(), &e.object_id).map_err(|e| e.to_string())?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(r.len());
                tar.append_data(&mut h, &path, r)
                    .map_err(|e| e.to_string())?;
            }
            EntryType::Unknown => {}
        }
    }
    Ok(())
}

pub(super) async fn object_get(
    State(state): State<AppState>,
    Path(oid): Path<String>,
    Query(q): Query<ObjectQuery>,
) -> Response {
    let oid: ObjectId = match oid.parse() {
        Ok(o) => o,
        Err(_) => return ApiError::bad("invalid object ID").into_response(),
    };
    let as_tar = q.format.as_deref() == Some("tar");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<ApiResult<u64>>();
    let opener = state.opener.clone();
    std::thread::spawn(move || {
        let repo = match opener() {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(ApiError::internal(e)));
                return;
            }
        };
        if as_tar {
            send_tar(&repo, &oid, tx, ready_tx);
        } else {
            send_object(&repo, &oid, tx, ready_tx);
        }
    });
    let len = match ready_rx.await {
        Ok(Ok(len)) => len,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return ApiError::internal("download failed").into_response(),
    };
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    let ct = if as_tar {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    if !as_tar {
        if let Ok(v) = len.to_string().parse() {
            h.insert(header::CONTENT_LENGTH, v);
        }
    }
    if let Some(name) = q.fname.as_deref().filter(|n| !n.is_empty()) {
        if let Ok(v) = disposition(name).parse() {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// The sending end of a download: the body's chunks.
type BodySender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;
/// Tells the handler whether the download starts (with the object's length) or why not.
type ReadySender = tokio::sync::oneshot::Sender<ApiResult<u64>>;

/// Streams directory `oid` as a tar archive (on a blocking thread).
fn send_tar(repo: &Repository, oid: &ObjectId, tx: BodySender, ready_tx: ReadySender) {
    let mut w = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::new(),
    };
    let dir = match read_object(repo.contents(), oid)
        .map_err(|e| ApiError::not_found(e.to_string()))
        .and_then(|b| DirManifest::decode(&b).map_err(|_| ApiError::bad("not a directory")))
    {
        Ok(d) => d,
        Err(e) => {
            let _ = ready_tx.send(Err(e));
            return;
        }
    };
    let _ = ready_tx.send(Ok(0));
    let mut tar = tar::Builder::new(&mut w);
    tar.follow_symlinks(false);
    let r = tar_dir(repo, &mut tar, &dir, "").and_then(|_| tar.finish().map_err(|e| e.to_string()));
    drop(tar);
    match r {
        Ok(()) => {
            let _ = w.flush();
        }
        Err(e) => {
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    }
}

/// Streams object `oid`'s bytes (on a blocking thread).
fn send_object(repo: &Repository, oid: &ObjectId, tx: BodySender, ready_tx: ReadySender) {
    let mut r = match ObjectReader::open(repo.contents(), oid) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready_tx.send(Err(ApiError::not_found(format!("object not found: {e}"))));
            return;
        }
    };
    let _ = ready_tx.send(Ok(r.len()));
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx
                    .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .is_err()
                {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    }
}
