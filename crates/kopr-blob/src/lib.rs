//! Blob storage: named immutable byte blobs on a filesystem, in memory, or behind fault injection.
