//! Human-readable numbers: re-exported from the format crate.
pub use kopr_format::units::*;
