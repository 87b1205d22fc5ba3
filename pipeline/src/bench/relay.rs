//! A no-op relay hop.
