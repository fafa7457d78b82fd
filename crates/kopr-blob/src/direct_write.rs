//! Writing a large new file without copying it into the page cache (`O_DIRECT`), for files
//! that are written once, synced, and not read again soon: pack blobs of a filesystem
//! repository. A backup then does not push the user's own files out of the page cache, and
//! skips a copy of every byte into it (on the 2-core VMs kopr is measured on, that copy cost
//! more than hashing and encrypting the same bytes). The local content cache does not use it:
//! its files are read again by the next restore, and are never synced, so through the page
//! cache a slow disk does not hold up the restore that fills it.
//!
//! Direct I/O needs the buffer, the length and the file offset aligned to the device's block
//! size, so the bytes go through a reused, aligned buffer of [`BOUNCE`] bytes per thread, the
//! last partial block through the page cache. It is used only on local filesystems known to
//! take it (ext4, XFS, Btrfs); anywhere else, or when the kernel refuses it part way, the rest
//! of the file is written the usual way. The caller still syncs the file: direct I/O leaves
//! the bytes in the device's own cache.

use std::fs::File;
use std::io::{self, Write};

/// Files shorter than this go through the page cache: index blobs, manifests, small ranges.
pub const MIN_DIRECT: usize = 512 << 10;

/// Bytes copied into the aligned buffer, and written, at a time.
pub const BOUNCE: usize = 1 << 20;

/// Alignment of the buffer, each write's length and the file offset: the largest logical
/// block size of common devices.
const ALIGN: usize = 4096;

/// How [`write_new`] wrote a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// At least its first [`BOUNCE`] bytes went straight to the device.
    Direct,
    /// All of it through the page cache.
    Buffered,
}

/// Writes `data` into `file`, a new empty file open for writing, directly to the device when
/// the file is large enough and its filesystem takes direct I/O. Either way the whole of
/// `data` is written, or an error is returned.
pub fn write_new(file: &mut File, data: &[u8]) -> io::Result<WriteMode> {
    let direct = if data.len() >= MIN_DIRECT {
        imp::write_aligned_prefix(file, data)?
    } else {
        0
    };
    file.write_all(&data[direct..])?;
    Ok(if direct > 0 {
        WriteMode::Direct
    } else {
        WriteMode::Buffered
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::RefCell;
    use std::fs::File;
    use std::io::{self, Write};

    use rustix::fs::{fcntl_getfl, fcntl_setfl, fstatfs, OFlags};

    use super::{ALIGN, BOUNCE};

    /// `f_type` of the filesystems direct writes are used on.
    const EXT4: u32 = 0xEF53;
    const XFS: u32 = 0x5846_5342;
    const BTRFS: u32 = 0x9123_683E;

    thread_local! {
        /// This thread's aligned buffer, kept so that its pages are touched once.
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Writes as much of `data`'s block-aligned prefix as the kernel takes directly and returns
    /// how many bytes that was (0 when direct I/O is not used). The file is left without
    /// `O_DIRECT`, its offset just past those bytes.
    pub(super) fn write_aligned_prefix(file: &mut File, data: &[u8]) -> io::Result<usize> {
        let aligned = data.len() / ALIGN * ALIGN;
        if aligned == 0 || !takes_direct_io(file) {
            return Ok(0);
        }
        let flags = fcntl_getfl(&*file)?;
        if fcntl_setfl(&*file, flags | OFlags::DIRECT).is_err() {
            return Ok(0);
        }
        let written = BUFFER.with(|b| write_through(file, &data[..aligned], &mut b.borrow_mut()));
        fcntl_setfl(&*file, flags)?;
        written
    }

    fn takes_direct_io(file: &File) -> bool {
        fstatfs(file).is_ok_and(|s| matches!(s.f_type as u32, EXT4 | XFS | BTRFS))
    }

    /// Copies `data` (a multiple of [`ALIGN`] long) through an aligned part of `buffer` into
    /// `file`, stopping early where the kernel refuses a direct write or writes part of one.
    fn write_through(file: &mut File, data: &[u8], buffer: &mut Vec<u8>) -> io::Result<usize> {
        if buffer.is_empty() {
            buffer.resize(BOUNCE + ALIGN, 0);
        }
        let start = buffer.as_ptr().align_offset(ALIGN);
        let Some(aligned) = buffer.get_mut(start..start + BOUNCE) else {
            return Ok(0);
        };
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(BOUNCE);
            aligned[..n].copy_from_slice(&data[done..done + n]);
            match file.write(&aligned[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => {
                    done += w;
                    if w % ALIGN != 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn write_aligned_prefix(_: &mut std::fs::File, _: &[u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    fn on_ext4_xfs_or_btrfs(dir: &std::path::Path) -> bool {
        #[cfg(target_os = "linux")]
        {
            let f = File::open(dir).unwrap();
            rustix::fs::fstatfs(&f)
                .is_ok_and(|s| matches!(s.f_type as u32, 0xEF53 | 0x5846_5342 | 0x9123_683E))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dir;
            false
        }
    }

    /// Writes files of lengths around the thresholds and block and buffer edges; each reads
    /// back as written, and the large ones went directly to the device where the filesystem
    /// takes direct I/O.
    #[test]
    fn every_length_reads_back_and_large_files_skip_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let direct_here = on_ext4_xfs_or_btrfs(dir.path());
        let lengths = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            MIN_DIRECT - 1,
            MIN_DIRECT,
            MIN_DIRECT + 1,
            BOUNCE,
            BOUNCE + ALIGN - 1,
            3 * BOUNCE + 12_345,
        ];
        for (i, &n) in lengths.iter().enumerate() {
            let data = pattern(n);
            let path = dir.path().join(format!("f{i}"));
            let mut f = File::create(&path).unwrap();
            let mode = write_new(&mut f, &data).unwrap();
            f.sync_all().unwrap();
            drop(f);
            assert_eq!(std::fs::read(&path).unwrap(), data, "length {n}");
            let expect = if n >= MIN_DIRECT && direct_here {
                WriteMode::Direct
            } else {
                WriteMode::Buffered
            };
            assert_eq!(mode, expect, "length {n}");
        }
    }

    /// The file is left without `O_DIRECT`: an unaligned append after a direct write works.
    #[test]
    fn the_file_takes_ordinary_writes_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        let mut data = pattern(2 * BOUNCE);
        write_new(&mut f, &data).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        data.extend_from_slice(b"tail");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    /// Where direct I/O is not taken (tmpfs), large files are written whole through the page
    /// cache.
    #[cfg(target_os = "linux")]
    #[test]
    fn filesystems_without_direct_io_get_buffered_writes() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("f");
        let data = pattern(2 * BOUNCE + 5);
        let mut f = File::create(&path).unwrap();
        assert_eq!(write_new(&mut f, &data).unwrap(), WriteMode::Buffered);
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
