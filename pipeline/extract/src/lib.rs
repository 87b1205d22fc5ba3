//! Reads what a chat prompt orders: catalog items with quantities and
//! options, and a coupon code if one is named, or the reason nothing can be
//! ordered. Pure (no IO) and fast (microseconds per prompt), so the intent
//! stage runs it inline.
//!
//! The prompt goes through four steps, one module each:
//! - `text`: normalise (full-width forms, case) and cut into pieces;
//! - `scan`: segment Chinese with jieba and look every phrase up in the
//!   `lexicon` (catalog words and built-in keywords), assembling numbers
//!   (`numbers`) on the way;
//! - `rules`: bind quantities and options to items, clause by clause, and
//!   judge the prompt as a whole;
//! - `validate`: check the result against the catalog and the limits and
//!   price it. An LLM's answer goes through [`validate()`] too, so it can
//!   do no more than the rules can.
//!
//! The text is untrusted. Nothing in it can raise a limit, choose another
//! user, set a price or grant credit: the reader's only output is catalog
//! ids, bounded quantities, catalog options and a code-shaped string.
//!
//! A prompt that orders nothing is rejected with a
//! [`Rejection`] code. Every result carries a
//! [`Confidence`]. It is low when the rules had to
//! guess, which is when an LLM fallback is worth asking.

pub mod catalog;
mod lexicon;
mod numbers;
mod rules;
mod scan;
pub mod text;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock};

use schemas::Item;
use schemas::reason::Rejection;
use serde::Serialize;

use lexicon::Lexicon;
pub use validate::{MAX_LINES, RawItem, RawOrder, coupon_code, validate};

use crate::catalog::Catalog;

/// Longest prompt read, in characters. A shopping prompt is a line or two;
/// anything much longer is not one, and reading it would only cost time.
pub const MAX_PROMPT_CHARS: usize = 500;

/// How sure the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Every word was accounted for.
    High,
    /// Something was guessed; a second opinion may be worth asking.
    Low,
}

/// What a prompt orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Extraction {
    /// Catalog items, merged per SKU and options, in order of mention,
    /// priced from the catalog.
    #[serde(rename = "extracted")]
    Items {
        items: Vec<Item>,
        #[serde(skip_serializing_if = "Option::is_none")]
        coupon_code: Option<String>,
        confidence: Confidence,
    },
    /// Nothing can be ordered, and why.
    Rejected {
        reason: Rejection,
        confidence: Confidence,
    },
}

impl Extraction {
    pub fn rejected(reason: Rejection, confidence: Confidence) -> Self {
        Extraction::Rejected { reason, confidence }
    }

    pub fn confidence(&self) -> Confidence {
        match self {
            Extraction::Items { confidence, .. } | Extraction::Rejected { confidence, .. } => {
                *confidence
            }
        }
    }

    /// The rejection reason, if rejected.
    pub fn reason(&self) -> Option<Rejection> {
        match self {
            Extraction::Items { .. } => None,
            Extraction::Rejected { reason, .. } => Some(*reason),
        }
    }

    /// The items, empty if rejected.
    pub fn items(&self) -> &[Item] {
        match self {
            Extraction::Items { items, .. } => items,
            Extraction::Rejected { .. } => &[],
        }
    }

    /// The result with its confidence lowered to `Low` if `low`.
    fn doubted(mut self, low: bool) -> Self {
        if low {
            match &mut self {
                Extraction::Items { confidence, .. } | Extraction::Rejected { confidence, .. } => {
                    *confidence = Confidence::Low
                }
            }
        }
        self
    }
}

/// Reads prompts against one catalog: the catalog and the word tables and
/// segmenter built from it. Building them takes a fraction of a second, so
/// an extractor is built once and cloned (clones share the tables).
#[derive(Debug, Clone)]
pub struct Extractor {
    catalog: Catalog,
    lexicon: Arc<Lexicon>,
}

/// The built-in catalog's extractor, built once per process.
static BUILT_IN: LazyLock<Extractor> = LazyLock::new(|| Extractor::new(Catalog::built_in()));

impl Extractor {
    /// Builds the tables for `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let lexicon = Arc::new(Lexicon::new(&catalog));
        Self { catalog, lexicon }
    }

    /// The extractor of the built-in catalog.
    pub fn built_in() -> Self {
        BUILT_IN.clone()
    }

    /// The catalog prompts are read against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Reads what `text` orders, with at most `max_quantity` of each line.
    pub fn extract(&self, max_quantity: i32, text: &str) -> Extraction {
        if text.chars().nth(MAX_PROMPT_CHARS).is_some() {
            return Extraction::rejected(Rejection::NotUnderstood, Confidence::Low);
        }
        let normalised = text::normalise(text);
        let toks = scan::scan(&self.lexicon, &normalised);
        let reading = rules::read(&self.lexicon, &self.catalog, &toks);
        match reading.result {
            Ok(raw) => validate(&self.catalog, max_quantity, &raw)
                .doubted(reading.confidence == Confidence::Low),
            Err(reason) => Extraction::rejected(reason, reading.confidence),
        }
    }
}
