//! The kopr repository layer.
