//! Stage processes of a benchmark run.
