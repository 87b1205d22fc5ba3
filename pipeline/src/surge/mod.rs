//! `chatcart surge`: makes a surge of chat prompts at a target rate profile
//! and measures how the pipeline answers it.
//!
//! # Layout
//! - [`profile`]: target send rates over time (constant, ramp, spike, the
//!   spring-festival shape) and each request's intended send time.
//! - [`traffic`]: what people type: heavy-tailed (Zipf) senders, Chinese and
//!   English prompts worded from the catalog so the extractor reads them as
//!   meant, chatter, unknown items, repeats and duplicate deliveries.

pub mod profile;
pub mod traffic;
