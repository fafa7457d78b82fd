//! Safety parameters: how long maintenance waits before it forgets or deletes anything, so
//! that concurrent writers and stale caches never lose a content they rely on.

use chrono::Duration;

/// The safety margins of one maintenance run (Kopia's `SafetyParameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafetyParameters {
    /// Unreferenced pack blobs younger than this are kept.
    pub blob_delete_min_age: Duration,
    /// Deleted contents are forgotten this long before the older of two GC runs started.
    pub drop_content_from_index_extra_margin: Duration,
    /// Two GC runs count as distinct only when this far apart.
    pub margin_between_snapshot_gc: Duration,
    /// Unreferenced contents younger than this are not marked deleted.
    pub min_content_age_subject_to_gc: Duration,
    /// Contents younger than this are not moved out of short packs.
    pub rewrite_min_age: Duration,
    /// Packs of a session whose last checkpoint is younger than this are kept.
    pub session_expiration_age: Duration,
    /// Deleted contents are forgotten only after two GC runs have seen them unreferenced.
    pub require_two_gc_cycles: bool,
    /// After a content rewrite, orphaned packs wait this long before deletion.
    pub min_rewrite_to_orphan_deletion_delay: Duration,
    /// Index compaction assumes a strongly consistent store.
    pub disable_eventual_consistency_safety: bool,
}

impl SafetyParameters {
    /// The default: safe with concurrent snapshots on other machines.
    pub fn full() -> Self {
        SafetyParameters {
            blob_delete_min_age: Duration::hours(24),
            drop_content_from_index_extra_margin: Duration::hours(1),
            margin_between_snapshot_gc: Duration::hours(4),
            min_content_age_subject_to_gc: Duration::hours(24),
            rewrite_min_age: Duration::hours(2),
            session_expiration_age: Duration::hours(96),
            require_two_gc_cycles: true,
            min_rewrite_to_orphan_deletion_delay: Duration::hours(1),
            disable_eventual_consistency_safety: false,
        }
    }

    /// Emergencies only: no margins at all; nothing else may use the repository meanwhile.
    pub fn none() -> Self {
        SafetyParameters {
            blob_delete_min_age: Duration::zero(),
            drop_content_from_index_extra_margin: Duration::zero(),
            margin_between_snapshot_gc: Duration::zero(),
            min_content_age_subject_to_gc: Duration::zero(),
            rewrite_min_age: Duration::zero(),
            session_expiration_age: Duration::zero(),
            require_two_gc_cycles: false,
            min_rewrite_to_orphan_deletion_delay: Duration::zero(),
            disable_eventual_consistency_safety: true,
        }
    }

    /// The level named `full` or `none`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "full" => Some(Self::full()),
            "none" => Some(Self::none()),
            _ => None,
        }
    }

    /// The name of this level, when it is one of the two.
    pub fn name(&self) -> &'static str {
        if *self == Self::none() {
            "none"
        } else if *self == Self::full() {
            "full"
        } else {
            "custom"
        }
    }
}

impl Default for SafetyParameters {
    fn default() -> Self {
        Self::full()
    }
}
