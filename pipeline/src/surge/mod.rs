//! `chatcart surge`: makes a surge of chat prompts at a target rate profile
//! and measures how the pipeline answers it.
//!
//! # Layout
//! - [`profile`]: target send rates over time (constant, ramp, spike, the
//!   spring-festival shape) and each request's intended send time.
//! - [`traffic`]: what people type: heavy-tailed users, Chinese and English
//!   prompts from the catalog, chatter, unknown items, duplicate deliveries.

pub mod profile;
pub mod traffic;
