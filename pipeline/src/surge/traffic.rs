//! Synthetic chat traffic.
