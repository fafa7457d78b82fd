//! What a snapshot leaves out besides the ignore rules, as Kopia's `files` policy says: files
//! over `maxFileSize`, and with `oneFileSystem` the entries on another filesystem than their
//! directory (mount points). Kopia's ignorefs drops both without counting them as excluded.

use std::fs;
use std::path::Path;

/// The policy's limits of what a snapshot takes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FileLimits {
    /// Files larger than this are left out (0: no limit).
    pub max_file_size: i64,
    /// Whether mount points inside the tree are left out.
    pub one_file_system: bool,
}

impl FileLimits {
    pub(super) fn of(policy: &kopr_format::policy::Policy) -> FileLimits {
        FileLimits {
            max_file_size: policy.files.max_file_size(),
            one_file_system: policy.files.one_file_system(),
        }
    }

    /// Whether every entry's metadata is needed to decide whether it is left out.
    pub(super) fn need_metadata(&self) -> bool {
        self.max_file_size > 0 || self.one_file_system
    }

    /// Whether an entry with metadata `md`, in a directory on `device`, is left out.
    pub(super) fn leave_out(&self, md: &fs::Metadata, device: Option<u64>) -> bool {
        if self.max_file_size > 0
            && md.is_file()
            && i64::try_from(md.len()).map_or(true, |n| n > self.max_file_size)
        {
            return true;
        }
        on_another_device(md, device)
    }
}

/// Whether the entry with metadata `md` lies on another device than `device` (never when
/// `device` is none).
pub(super) fn on_another_device(md: &fs::Metadata, device: Option<u64>) -> bool {
    #[cfg(unix)]
    if let Some(d) = device {
        use std::os::unix::fs::MetadataExt;
        return md.dev() != d;
    }
    let _ = (md, device);
    false
}

/// The device `dir` lies on (none where devices are not known).
pub(super) fn device_of(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(dir).ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}
