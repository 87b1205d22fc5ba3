//! The raw hop.
