//! Restoring a tree: the walk creates directories and symlinks and gathers files into batches
//! that `restore_batch` writes pack by pack; directories get their metadata last, deepest
//! first. Files are written under temporary names and renamed into place.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use kopr_format::object_id::ObjectId;
use kopr_format::snapshot::{DirEntry, DirManifest, EntryType};

use super::restore_batch;
use crate::error::{RepoError, Result};
use crate::object::{object_entries, read_object};
use crate::repository::Repository;

/// Options of a restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Replace existing files.
    pub overwrite: bool,
    /// Restore owners (needs root; a refused change of owner is ignored, as Kopia does).
    pub restore_owners: bool,
    /// Restore every entry that can be restored and report the others in
    /// [`RestoreStats::failed`] instead of stopping at the first error.
    pub ignore_errors: bool,
    /// File ranges read (and files written) at once; 0 for the default,
    /// [`DEFAULT_RESTORE_READERS`](super::DEFAULT_RESTORE_READERS).
    pub parallel: usize,
}

/// Counters of a restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Entries not restored (with `ignore_errors`).
    pub failed: u64,
}

pub(super) fn io_err(p: &Path, e: std::io::Error) -> RepoError {
    RepoError::Local {
        path: p.to_path_buf(),
        source: e,
    }
}

/// Restores the tree of `entry` (a directory, file or symlink) to `dest`.
pub fn restore(
    repo: &Repository,
    entry: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
) -> Result<RestoreStats> {
    restore_reporting(repo, entry, dest, opts, &mut |_, _| {})
}

/// [`restore`], calling `on_error(path, error)` for each entry not restored when
/// `opts.ignore_errors` is set.
pub fn restore_reporting(
    repo: &Repository,
    entry: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
    on_error: &mut dyn FnMut(&Path, &RepoError),
) -> Result<RestoreStats> {
    create_parents(dest)?;
    if entry.entry_type == EntryType::Directory && dest.exists() && !opts.overwrite {
        let non_empty = fs::read_dir(dest)
            .map(|mut d| d.any(|e| e.map_or(true, |e| !is_restore_temporary(&e.file_name()))))
            .unwrap_or(true);
        if non_empty {
            return Err(RepoError::Refused(format!(
                "{} already exists and is not empty (use --overwrite to restore into it)",
                dest.display()
            )));
        }
    }
    let failed = AtomicBool::new(false);
    let skipped: std::sync::Mutex<Vec<(PathBuf, RepoError)>> = std::sync::Mutex::new(Vec::new());
    let mut restorer = Restorer {
        repo,
        opts,
        batch: Vec::new(),
        batch_bytes: 0,
        dirs: Vec::new(),
        stats: RestoreStats::default(),
        failed: &failed,
        skipped: &skipped,
    };
    // Files go in batches that read each pack once; the last batch after the walk.
    restorer.restore_entry(entry, dest)?;
    restorer.run_batch()?;
    // Directories last, deepest first, so writing their files does not change their times.
    let mut skipped = skipped
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (e, path) in restorer.dirs.iter().rev() {
        match set_metadata(e, path, opts) {
            Err(err) if opts.ignore_errors => skipped.push((path.clone(), err)),
            r => r?,
        }
    }
    let mut stats = restorer.stats;
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    stats.failed = skipped.len() as u64;
    for (path, err) in &skipped {
        on_error(path, err);
    }
    Ok(stats)
}

/// Creates the missing parent directories of a restore target, as Kopia does.
fn create_parents(dest: &Path) -> Result<()> {
    let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    // A file among the parents is named, rather than reported as "File exists".
    if let Some(file) = parent
        .ancestors()
        .find(|a| fs::symlink_metadata(a).is_ok())
        .filter(|a| !a.is_dir())
    {
        return Err(RepoError::Refused(format!(
            "cannot restore to {}: {} is a file, not a directory; choose another target",
            dest.display(),
            file.display()
        )));
    }
    fs::create_dir_all(parent).map_err(|err| io_err(parent, err))
}

/// The name prefix of the temporary files a restore writes before renaming them.
const RESTORE_TEMPORARY_PREFIX: &str = ".kopr-restore-";

fn is_restore_temporary(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(RESTORE_TEMPORARY_PREFIX)
}

/// Temporary files being written by restores in this process, for [`remove_restore_temporaries`].
static RESTORE_TEMPORARIES: std::sync::Mutex<Option<HashSet<PathBuf>>> =
    std::sync::Mutex::new(None);
/// Held shared while a temporary file is created and listed, and taken exclusively (for good) by
/// an interrupt: then no temporary file appears unlisted, while the readers of a restore create
/// theirs at the same time (creating a file under one lock serialized them).
static CREATING_TEMPORARIES: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn live_temporaries() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    RESTORE_TEMPORARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates a restore's temporary file for `dest`, registered so that an interrupt can remove it.
pub(super) fn create_restore_temporary(dest: &Path) -> Result<(PathBuf, fs::File)> {
    let tmp = dest.with_file_name(format!(
        "{RESTORE_TEMPORARY_PREFIX}{:016x}",
        rand::random::<u64>()
    ));
    let creating = CREATING_TEMPORARIES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let f = fs::File::create(&tmp).map_err(|err| io_err(&tmp, err))?;
    live_temporaries()
        .get_or_insert_with(HashSet::new)
        .insert(tmp.clone());
    drop(creating);
    // Tests interrupt a restore here: it says where it is and waits for the signal.
    if std::env::var_os("KOPR_TEST_STALL_RESTORE").is_some() {
        eprintln!("writing {}", tmp.display());
        loop {
            std::thread::park();
        }
    }
    Ok((tmp, f))
}

/// Forgets a temporary file that was renamed or removed.
pub(super) fn forget_restore_temporary(tmp: &Path) {
    if let Some(live) = live_temporaries().as_mut() {
        live.remove(tmp);
    }
}

/// Removes the temporary files of restores under way, for an interrupt handler about to end
/// the process: it waits for the files being created, and keeps the locks, so no restore
/// creates another one afterwards.
pub fn remove_restore_temporaries() {
    let creating = CREATING_TEMPORARIES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let live = live_temporaries();
    for p in live.iter().flatten() {
        let _ = fs::remove_file(p);
    }
    std::mem::forget(live);
    std::mem::forget(creating);
}

/// Removes the temporary files a killed restore left in `dir`.
fn remove_leftover_temporaries(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if is_restore_temporary(&e.file_name()) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Sets the owner of a restored entry (the link itself for a symlink); a refused change is
/// ignored, as Kopia ignores permission errors by default.
fn restore_owner(e: &DirEntry, dest: &Path, opts: RestoreOptions) {
    #[cfg(unix)]
    if opts.restore_owners {
        let _ = std::os::unix::fs::lchown(dest, Some(e.user_id), Some(e.group_id));
    }
    #[cfg(not(unix))]
    let _ = (e, dest, opts);
}

/// The walk of a restore: creates directories and symlinks, and gathers files into batches
/// ([`restore_batch`]).
struct Restorer<'a> {
    repo: &'a Repository,
    opts: RestoreOptions,
    /// Files to restore with the next batch, and their bytes.
    batch: Vec<(DirEntry, PathBuf)>,
    batch_bytes: u64,
    /// Directories created, in walk order, for their metadata at the end.
    dirs: Vec<(DirEntry, PathBuf)>,
    stats: RestoreStats,
    failed: &'a AtomicBool,
    /// Entries not restored, with `ignore_errors`.
    skipped: &'a std::sync::Mutex<Vec<(PathBuf, RepoError)>>,
}

impl Restorer<'_> {
    /// Restores the files gathered so far.
    fn run_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let r = restore_batch::restore_files(self.repo, files, self.opts, self.failed)?;
        self.stats.files += r.files;
        self.stats.bytes += r.bytes;
        if !r.skipped.is_empty() {
            if let Ok(mut v) = self.skipped.lock() {
                v.extend(r.skipped);
            }
        }
        Ok(())
    }

    /// Restores one entry; with `ignore_errors` a failure is recorded and the walk goes on.
    fn restore_entry(&mut self, e: &DirEntry, dest: &Path) -> Result<()> {
        match self.restore_one(e, dest) {
            Err(err) if self.opts.ignore_errors => {
                if let Ok(mut v) = self.skipped.lock() {
                    v.push((dest.to_path_buf(), err));
                }
                Ok(())
            }
            r => r,
        }
    }

    fn restore_one(&mut self, e: &DirEntry, dest: &Path) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Ok(()); // a worker failed: its error is reported
        }
        match e.entry_type {
            EntryType::Directory => {
                match fs::symlink_metadata(dest) {
                    Ok(m) if !m.is_dir() => {
                        return Err(RepoError::Refused(format!(
                            "{}: the snapshot has a directory here, but a file is in the way; move it away or restore to another target",
                            dest.display()
                        )));
                    }
                    // A directory that was there may hold what a killed restore left.
                    Ok(_) => remove_leftover_temporaries(dest),
                    Err(_) => fs::create_dir_all(dest).map_err(|err| io_err(dest, err))?,
                }
                let dm = DirManifest::decode(&restore_batch::read_small_object(
                    self.repo,
                    &e.object_id,
                )?)?;
                for child in &dm.entries {
                    if child.name.is_empty()
                        || child.name == "."
                        || child.name == ".."
                        || child.name.contains('/')
                    {
                        return Err(RepoError::Invalid(format!(
                            "unsafe entry name {:?} in directory {}",
                            child.name, e.object_id
                        )));
                    }
                    self.restore_entry(child, &dest.join(&child.name))?;
                }
                self.stats.dirs += 1;
                self.dirs.push((e.clone(), dest.to_path_buf()));
            }
            EntryType::File => {
                self.batch.push((e.clone(), dest.to_path_buf()));
                self.batch_bytes += e.file_size.max(0) as u64;
                if self.batch.len() >= restore_batch::BATCH_FILES
                    || self.batch_bytes >= restore_batch::BATCH_BYTES
                {
                    self.run_batch()?;
                }
            }
            EntryType::Symlink => {
                let target = String::from_utf8_lossy(&restore_batch::read_small_object(
                    self.repo,
                    &e.object_id,
                )?)
                .into_owned();
                if fs::symlink_metadata(dest).is_ok() {
                    if !self.opts.overwrite {
                        return Err(RepoError::Refused(format!(
                            "{} already exists (use --overwrite)",
                            dest.display()
                        )));
                    }
                    fs::remove_file(dest).map_err(|err| io_err(dest, err))?;
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, dest).map_err(|err| io_err(dest, err))?;
                set_metadata(e, dest, self.opts)?;
                self.stats.symlinks += 1;
            }
            EntryType::Unknown => {}
        }
        Ok(())
    }
}

/// Writes an object's chunks to `f` in order; returns its length.
fn write_object_to(
    repo: &Repository,
    oid: &ObjectId,
    f: &mut fs::File,
    dest: &Path,
) -> Result<u64> {
    let cm = repo.contents();
    let mut total = 0u64;
    for chunk in object_entries(cm, oid)? {
        let data = read_object(cm, &chunk.object)?;
        if data.len() as u64 != chunk.length {
            return Err(RepoError::Invalid(format!(
                "chunk {} has {} bytes, index says {}",
                chunk.object,
                data.len(),
                chunk.length
            )));
        }
        f.write_all(&data).map_err(|err| io_err(dest, err))?;
        total += data.len() as u64;
    }
    Ok(total)
}

/// Writes one file (through a temporary name) and sets its metadata; returns its length.
pub(super) fn restore_file(
    repo: &Repository,
    e: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
) -> Result<u64> {
    if dest.exists() && !opts.overwrite {
        return Err(RepoError::Refused(format!(
            "{} already exists (use --overwrite)",
            dest.display()
        )));
    }
    if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(RepoError::Refused(format!(
            "{}: the snapshot has a file here, but a directory is in the way; move it away or restore to another target",
            dest.display()
        )));
    }
    let (tmp, mut f) = create_restore_temporary(dest)?;
    let written = write_object_to(repo, &e.object_id, &mut f, dest);
    drop(f);
    let n = match written {
        Ok(n) => n,
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            forget_restore_temporary(&tmp);
            return Err(err);
        }
    };
    let renamed = fs::rename(&tmp, dest).map_err(|err| io_err(dest, err));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    forget_restore_temporary(&tmp);
    renamed?;
    set_metadata(e, dest, opts)?;
    Ok(n)
}

/// Sets a restored file's owner, permissions and times through its open descriptor, before
/// it is renamed into place (no lookups of its path), in [`set_metadata`]'s order. `dest`
/// names it in errors.
pub(super) fn set_file_metadata(
    f: &fs::File,
    e: &DirEntry,
    dest: &Path,
    opts: RestoreOptions,
) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if opts.restore_owners {
            // A refused change is ignored, as Kopia ignores permission errors by default.
            let _ = std::os::unix::fs::fchown(f, Some(e.user_id), Some(e.group_id));
        }
        f.set_permissions(fs::Permissions::from_mode(e.permissions.0 & 0o7777))
            .map_err(|err| io_err(dest, err))?;
    }
    let t = system_time(e.mod_time);
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .map_err(|err| io_err(dest, err))
}

/// A time in nanoseconds since the Unix epoch (negative before it).
fn system_time(nanos: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(nanos.unsigned_abs());
    let t = if nanos >= 0 {
        std::time::UNIX_EPOCH.checked_add(d)
    } else {
        std::time::UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(std::time::UNIX_EPOCH)
}

/// Sets an entry's owner (when asked), permissions and modification time on `dest`, without
/// following a symlink. Owners go first: `chown` clears setuid and setgid. A mode of 0 is a
/// real mode (Kopia omits the field), and a symlink has no mode of its own.
pub(super) fn set_metadata(e: &DirEntry, dest: &Path, opts: RestoreOptions) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        restore_owner(e, dest, opts);
        if e.entry_type != EntryType::Symlink {
            fs::set_permissions(dest, fs::Permissions::from_mode(e.permissions.0 & 0o7777))
                .map_err(|err| io_err(dest, err))?;
        }
    }
    let t = filetime::FileTime::from_system_time(system_time(e.mod_time));
    filetime::set_symlink_file_times(dest, t, t).map_err(|err| io_err(dest, err))
}
