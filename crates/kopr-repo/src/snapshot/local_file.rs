//! A file of the source tree to read: its path, the directory it was listed in (opened once
//! for all its files, so that opening one resolves only its name), and the size the listing
//! saw (so that a file read whole in one short read needs no second read to find its end).
//! A file new to the snapshot is listed by name and type only, and its metadata is read from
//! the open file, by the worker that reads it ([`LocalFile::open_sized`]).

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

use kopr_format::snapshot::{DirEntry, Permissions};

use super::upload::{mtime_nanos, owner};

/// Where a file to read is, and what its listing said of it.
#[derive(Clone, Copy)]
pub(super) struct LocalFile<'a> {
    /// The full path: for errors, and to open the file without `dir`.
    pub path: &'a Path,
    /// The directory the file was listed in, when it could be opened.
    pub dir: Option<&'a fs::File>,
    /// The size the listing gave (none when `meta` is set).
    pub size: u64,
    /// For a file listed without its metadata: where the metadata read from the open file
    /// goes.
    pub meta: Option<&'a OnceLock<FileMeta>>,
}

/// What a directory entry records of a file besides its size and object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileMeta {
    /// Permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
}

impl FileMeta {
    /// Writes this metadata into a file's directory entry.
    pub(super) fn apply_to(&self, e: &mut DirEntry) {
        e.permissions = Permissions(self.mode);
        e.user_id = self.uid;
        e.group_id = self.gid;
        e.mod_time = self.mtime;
    }

    pub(super) fn of(md: &fs::Metadata) -> FileMeta {
        let (mode, uid, gid) = owner(md);
        FileMeta {
            mode,
            uid,
            gid,
            mtime: mtime_nanos(md),
        }
    }
}

impl<'a> LocalFile<'a> {
    /// Opens the file and returns it with the description to read it by: for a file listed
    /// without its metadata, the metadata is read from the open file (one `statx` of the
    /// descriptor, no path to resolve) into `meta`, and its size is the one to read by. Such
    /// a file that is no longer a regular file is an error.
    pub(super) fn open_sized(&self) -> io::Result<(fs::File, LocalFile<'a>)> {
        let f = self.open()?;
        let Some(out) = self.meta else {
            return Ok((f, *self));
        };
        let md = f.metadata()?;
        if !md.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no longer a regular file",
            ));
        }
        let _ = out.set(FileMeta::of(&md));
        Ok((
            f,
            LocalFile {
                size: md.len(),
                meta: None,
                ..*self
            },
        ))
    }

    /// Opens the file for reading (following a symlink put in its place, as opening the path
    /// does).
    pub(super) fn open(&self) -> io::Result<fs::File> {
        #[cfg(unix)]
        if let (Some(dir), Some(name)) = (self.dir, self.path.file_name()) {
            use rustix::fs::{Mode, OFlags};
            let fd =
                rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
            return Ok(fs::File::from(fd));
        }
        fs::File::open(self.path)
    }

    /// Reads from `f` into `buf` until `buf` is full or the file ends; returns the bytes read
    /// and whether the end was seen. A read that comes back short exactly at the listed size
    /// is taken as the end (a regular file's read is short only there), which saves the
    /// second read most small files would otherwise take; a file that grew since it was
    /// listed is read on.
    pub(super) fn fill(
        &self,
        f: &mut fs::File,
        buf: &mut [u8],
        mut on_read: impl FnMut(usize),
    ) -> io::Result<(usize, bool)> {
        let mut filled = 0;
        while filled < buf.len() {
            let asked = buf.len() - filled;
            let n = match f.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok((filled, true));
            }
            filled += n;
            on_read(n);
            if n < asked && self.size == filled as u64 {
                return Ok((filled, true));
            }
        }
        Ok((filled, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_read_whole_at_its_listed_size_ends_without_a_second_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        let d = fs::File::open(dir.path()).unwrap();
        let lf = LocalFile {
            path: &path,
            dir: Some(&d),
            size: 5,
            meta: None,
        };
        let mut f = lf.open().unwrap();
        let mut buf = vec![0u8; 64];
        let mut reads = 0;
        assert_eq!(
            lf.fill(&mut f, &mut buf, |_| reads += 1).unwrap(),
            (5, true)
        );
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(reads, 1);
    }

    #[test]
    fn a_file_that_grew_since_its_listing_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        // Listed at 3 bytes, now 5 (and then 7): the whole file is read.
        let lf = LocalFile {
            path: &path,
            dir: None,
            size: 3,
            meta: None,
        };
        let mut f = lf.open().unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b", w")
            .unwrap();
        let mut buf = vec![0u8; 64];
        let (n, eof) = lf.fill(&mut f, &mut buf, |_| {}).unwrap();
        assert_eq!((&buf[..n], eof), (&b"hello, w"[..], true));
        // A buffer smaller than the file is filled, and the end is not claimed.
        let mut f = lf.open().unwrap();
        let mut small = [0u8; 4];
        assert_eq!(lf.fill(&mut f, &mut small, |_| {}).unwrap(), (4, false));
    }

    #[cfg(unix)]
    #[test]
    fn opening_through_the_directory_resolves_only_the_name_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"A").unwrap();
        let d = fs::File::open(dir.path()).unwrap();
        let path = dir.path().join("a");
        let lf = LocalFile {
            path: &path,
            dir: Some(&d),
            size: 0,
            meta: None,
        };
        let mut s = String::new();
        lf.open().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "A");
        // Only the name is resolved, in the opened directory: a path whose directory is gone
        // (or was renamed since the listing) still opens the listed file.
        let moved = Path::new("/nonexistent-kopr-dir/a");
        let lf = LocalFile {
            path: moved,
            dir: Some(&d),
            size: 0,
            meta: None,
        };
        let mut s = String::new();
        lf.open().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "A");
        let missing = dir.path().join("b");
        let lf = LocalFile {
            path: &missing,
            dir: Some(&d),
            size: 0,
            meta: None,
        };
        assert_eq!(lf.open().unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
