//! The SFTP requests one blob operation is made of: creating directories, reading and writing
//! a file with several requests in flight, renaming over a blob, listing a directory. Each
//! failure is the server's status or a broken connection.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};
use tokio::task::JoinSet;

use super::{CHUNK, IN_FLIGHT};

/// A failure of one request: the server's status, or the connection.
pub(super) enum Failure {
    Status(StatusCode, String),
    Timeout,
    Lost(String),
}

impl From<SftpError> for Failure {
    fn from(e: SftpError) -> Failure {
        match e {
            SftpError::Status(s) => match s.status_code {
                StatusCode::NoConnection | StatusCode::ConnectionLost => {
                    Failure::Lost(s.error_message)
                }
                code => Failure::Status(code, s.error_message),
            },
            SftpError::Timeout => Failure::Timeout,
            e => Failure::Lost(e.to_string()),
        }
    }
}

pub(super) type Res<T> = std::result::Result<T, Failure>;

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub(super) fn is_status(f: &Failure, code: StatusCode) -> bool {
    matches!(f, Failure::Status(c, _) if *c == code)
}

pub(super) fn timestamp(a: &FileAttributes) -> DateTime<Utc> {
    a.mtime
        .and_then(|t| Utc.timestamp_opt(i64::from(t), 0).single())
        .unwrap_or_else(Utc::now)
}

/// Creates `dir` and its missing parents, each level only when it is not there.
pub(super) async fn mkdir_all(s: &RawSftpSession, dir: &str) -> Res<()> {
    let mut cur = String::new();
    if dir.starts_with('/') {
        cur.push('/');
    }
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        cur = join(&cur, part);
        match s.stat(cur.clone()).await {
            Ok(a) if a.attrs.is_dir() => continue,
            Ok(_) => {
                return Err(Failure::Status(
                    StatusCode::Failure,
                    format!("{cur} is not a directory"),
                ))
            }
            Err(e) => {
                let f = Failure::from(e);
                if !is_status(&f, StatusCode::NoSuchFile) {
                    return Err(f);
                }
            }
        }
        if let Err(e) = s.mkdir(cur.clone(), FileAttributes::empty()).await {
            // another writer may have made it meanwhile
            match s.stat(cur.clone()).await {
                Ok(a) if a.attrs.is_dir() => {}
                _ => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Reads `[offset, offset+len)` of an open file, [`IN_FLIGHT`] requests at once; short
/// answers are completed by further reads; an end of file before `len` is `Ok` with less.
pub(super) async fn read_range(
    s: &Arc<RawSftpSession>,
    handle: &str,
    offset: u64,
    len: u64,
) -> Res<Vec<u8>> {
    // (the length comes from the server: grow as data arrives beyond a modest start)
    let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let mut set = JoinSet::new();
        let mut starts = Vec::new();
        let mut p = pos;
        while p < end && starts.len() < IN_FLIGHT {
            let n = (end - p).min(CHUNK as u64) as u32;
            let (s, h) = (s.clone(), handle.to_string());
            let i = starts.len();
            set.spawn(async move { (i, s.read(h, p, n).await) });
            starts.push((p, n));
            p += u64::from(n);
        }
        let mut parts: Vec<Option<Vec<u8>>> = vec![None; starts.len()];
        while let Some(r) = set.join_next().await {
            let (i, r) = r.map_err(|e| Failure::Lost(e.to_string()))?;
            match r {
                Ok(d) => parts[i] = Some(d.data),
                Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => {
                    parts[i] = Some(Vec::new())
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Take the answers in order up to the first short one; read on from there.
        let mut eof = false;
        for (i, part) in parts.into_iter().enumerate() {
            let data = part.unwrap_or_default();
            let want = starts[i].1 as usize;
            let got = data.len().min(want);
            out.extend_from_slice(&data[..got]);
            pos += got as u64;
            if got < want {
                eof = got == 0;
                break;
            }
        }
        if eof {
            break;
        }
    }
    Ok(out)
}

/// Writes `data` at offset 0 of an open file, [`IN_FLIGHT`] requests at once.
pub(super) async fn write_all(s: &Arc<RawSftpSession>, handle: &str, data: &Arc<[u8]>) -> Res<()> {
    let mut set = JoinSet::new();
    let mut off = 0usize;
    loop {
        while off < data.len() && set.len() < IN_FLIGHT {
            let n = (data.len() - off).min(CHUNK);
            let (s, h, d) = (s.clone(), handle.to_string(), data.clone());
            set.spawn(async move { s.write(h, off as u64, d[off..off + n].to_vec()).await });
            off += n;
        }
        match set.join_next().await {
            None => return Ok(()),
            Some(r) => {
                r.map_err(|e| Failure::Lost(e.to_string()))??;
            }
        }
    }
}

impl From<tokio::task::JoinError> for Failure {
    fn from(e: tokio::task::JoinError) -> Failure {
        Failure::Lost(e.to_string())
    }
}

/// SFTP string encoding (length, bytes) for extension requests.
pub(super) fn sftp_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Renames `from` over `to`: `posix-rename@openssh.com` where the server has it, else a
/// plain rename (which refuses an existing target) preceded by removing the target.
pub(super) async fn rename_over(s: &RawSftpSession, posix: bool, from: &str, to: &str) -> Res<()> {
    if posix {
        let mut data = Vec::new();
        sftp_string(&mut data, from);
        sftp_string(&mut data, to);
        return match s.extended("posix-rename@openssh.com", data).await? {
            Packet::Status(st) if st.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(st) => Err(Failure::Status(st.status_code, st.error_message)),
            _ => Err(Failure::Lost("unexpected answer to posix-rename".into())),
        };
    }
    match s.rename(from, to).await {
        Ok(_) => Ok(()),
        Err(_) => {
            let _ = s.remove(to).await;
            s.rename(from, to).await?;
            Ok(())
        }
    }
}

/// Lists directory `dir`: (name, attributes) of its entries; a missing directory is empty.
pub(super) async fn read_dir(
    s: &RawSftpSession,
    dir: String,
) -> Res<Vec<(String, FileAttributes)>> {
    let handle = match s.opendir(dir).await {
        Ok(h) => h.handle,
        Err(e) => {
            let f = Failure::from(e);
            return if is_status(&f, StatusCode::NoSuchFile) {
                Ok(Vec::new())
            } else {
                Err(f)
            };
        }
    };
    let mut out = Vec::new();
    let r = loop {
        match s.readdir(handle.clone()).await {
            Ok(name) => out.extend(
                name.files
                    .into_iter()
                    .filter(|f| f.filename != "." && f.filename != "..")
                    .map(|f| (f.filename, f.attrs)),
            ),
            Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => break Ok(out),
            Err(e) => break Err(e.into()),
        }
    };
    let _ = s.close(handle).await;
    r
}
