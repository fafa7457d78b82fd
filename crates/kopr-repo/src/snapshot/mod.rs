//! Snapshots, shaped like Kopia's `snapshot` / `snapshotfs` split: snapshot manifests
//! (`manifests`), taking a snapshot (`upload`, its directory walk `upload_walk`, the directory
//! builder `dir_builder`, the file workers `file_pool`, the policy's `file_limits`, `progress` and
//! the `upload_estimate` pre-walk),
//! restoring (`restore`, by pack in `restore_batch`), `verify`, `diff`, storage `stats`,
//! object references (`objects`), the one tree walker with `ID/path` references (`walk`), and
//! the commands over trees: `estimate`, `fix` (rewriting directories) and `migrate`.
//!
//! Every public item is re-exported here, at the path callers use.

mod diff;
mod dir_builder;
pub mod estimate;
mod file_limits;
mod file_pool;
pub mod fix;
mod local_file;
pub(crate) mod manifests;
pub mod migrate;
mod objects;
mod progress;
mod restore;
mod restore_batch;
mod stats;
mod upload;
mod upload_estimate;
mod upload_walk;
mod verify;
mod walk;

pub use diff::{diff, Change};
pub use manifests::{is_snapshot, list_snapshots, load_snapshot, snapshot_labels};
pub use objects::object_content_ids;
pub use progress::{Progress, ProgressCounters};
pub use restore::{
    remove_restore_temporaries, restore, restore_reporting, RestoreOptions, RestoreStats,
};
pub use restore_batch::DEFAULT_READERS as DEFAULT_RESTORE_READERS;
pub use stats::{storage_stats, StorageUsage};
pub use upload::{
    create_snapshot, create_snapshot_outcome, Created, UploadOptions, CACHEDIR_SIGNATURE,
    CACHEDIR_TAG, INCOMPLETE_CANCELED,
};
pub use verify::{verify, verify_with, VerifyOptions, VerifyReport};
pub use walk::{read_dir, resolve, walk_tree, TreeVisitor, Visit, VisitFn};

// What `restore_batch` and `file_pool` use of their siblings, by their `super::` paths.
use restore::{
    create_restore_temporary, forget_restore_temporary, io_err, restore_file, set_file_metadata,
};
