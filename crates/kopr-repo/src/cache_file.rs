//! Writing a file of a local cache (index blobs, format blobs, cached contents) whole or not
//! at all: the bytes go to a temporary name in the same directory, which is then renamed over
//! the final name, so that no reader, in this process or another, sees part of a file. The
//! directory is created when the first write finds it missing (not checked on every write).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Writes `data` as `dir/name` (dated `modified` when given) and returns its path. On an
/// error nothing is left behind but an older file of that name, if there was one.
pub(crate) fn write_whole(
    dir: &Path,
    name: &str,
    data: &[u8],
    modified: Option<SystemTime>,
) -> io::Result<PathBuf> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = match fs::File::create(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                fs::File::create(&tmp)?
            }
            r => r?,
        };
        f.write_all(data)?;
        if let Some(t) = modified {
            f.set_modified(t)?;
        }
        drop(f);
        let path = dir.join(name);
        fs::rename(&tmp, &path)?;
        Ok(path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_creating_the_directory_and_replacing_an_older_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let path = write_whole(&dir, "f", b"first", Some(t)).unwrap();
        assert_eq!(path, dir.join("f"));
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), t);
        write_whole(&dir, "f", b"second", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        // Only the file itself: no temporary is left.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary() {
        let root = tempfile::tempdir().unwrap();
        // The final name is a non-empty directory: the rename fails.
        fs::create_dir_all(root.path().join("f/inner")).unwrap();
        assert!(write_whole(root.path(), "f", b"x", None).is_err());
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }
}
