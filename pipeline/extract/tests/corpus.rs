//! Accuracy of the rule-based extractor on a labelled corpus of chat
//! prompts (`pipeline/extract/tests/corpus/prompts.jsonl`).
//!
//! Each line is a prompt and what a careful reader would take from it:
//! either the items ordered (SKU and quantity) or the reason nothing can be
//! ordered. The labels say what the prompt means, not what the extractor
//! happens to read, so the figure measures the extractor rather than the
//! corpus. A prompt counts as read correctly when the outcome matches and,
//! for orders, the multiset of (SKU, quantity) pairs matches (order of
//! mention and options are not compared); for rejections, the reason must
//! match.
//!
//! The test prints the accuracy, the accuracy per tag and every miss, and
//! fails below [`MIN_ACCURACY`]. It needs no services:
//!
//! ```sh
//! cargo test -p chatcart-extract --test corpus -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chatcart_extract::{Extraction, Extractor};
use serde::Deserialize;

/// Below this share of prompts read correctly, the test fails.
const MIN_ACCURACY: f64 = 0.95;

/// Most of one item an order may contain (the configuration's default).
const MAX_QUANTITY: i32 = 50;

/// The corpus may not shrink below these, or the figure means little.
const MIN_PROMPTS: usize = 300;
const MIN_REJECTIONS: usize = 60;
const MIN_PER_LANGUAGE: usize = 100;

/// One labelled prompt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    text: String,
    expect: Expect,
    #[serde(default)]
    tags: Vec<String>,
}

/// What the prompt should be read as.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
enum Expect {
    Extracted { items: Vec<Line> },
    Rejected { reason: String },
}

/// An item line as the corpus states it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    sku: String,
    quantity: i32,
}

impl Expect {
    /// The extractor's result in the corpus's terms, with item lines merged
    /// per SKU and sorted, so that order and options do not count.
    fn from_extraction(extraction: &Extraction) -> Self {
        match extraction {
            Extraction::Items { items, .. } => Expect::Extracted {
                items: items
                    .iter()
                    .map(|i| Line {
                        sku: i.sku.clone(),
                        quantity: i.quantity,
                    })
                    .collect(),
            }
            .normalised(),
            Extraction::Rejected { reason, .. } => Expect::Rejected {
                reason: reason.as_str().to_owned(),
            },
        }
    }

    /// Item lines merged per SKU and sorted.
    fn normalised(self) -> Self {
        match self {
            Expect::Extracted { items } => {
                let mut merged = BTreeMap::<String, i32>::new();
                for line in items {
                    *merged.entry(line.sku).or_default() += line.quantity;
                }
                Expect::Extracted {
                    items: merged
                        .into_iter()
                        .map(|(sku, quantity)| Line { sku, quantity })
                        .collect(),
                }
            }
            rejected => rejected,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Extracted { items } => {
                let lines: Vec<String> = items
                    .iter()
                    .map(|l| format!("{} x{}", l.sku, l.quantity))
                    .collect();
                write!(f, "extracted [{}]", lines.join(", "))
            }
            Expect::Rejected { reason } => write!(f, "rejected ({reason})"),
        }
    }
}

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/prompts.jsonl")
}

fn load() -> Vec<Case> {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

fn percent(hits: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * hits as f64 / total as f64
    }
}

#[test]
fn extractor_accuracy_on_the_corpus() {
    let cases = load();
    let rejections = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Rejected { .. }))
        .count();
    let tagged = |tag: &str| {
        cases
            .iter()
            .filter(|c| c.tags.iter().any(|t| t == tag))
            .count()
    };
    assert!(
        cases.len() >= MIN_PROMPTS,
        "the corpus has {} prompts, fewer than {MIN_PROMPTS}",
        cases.len()
    );
    assert!(
        rejections >= MIN_REJECTIONS,
        "the corpus has {rejections} prompts to reject, fewer than {MIN_REJECTIONS}"
    );
    for language in ["zh", "en"] {
        let n = tagged(language);
        assert!(
            n >= MIN_PER_LANGUAGE,
            "the corpus has {n} prompts tagged {language:?}, fewer than {MIN_PER_LANGUAGE}"
        );
    }
    for reason in [
        "not_a_purchase",
        "unknown_item",
        "no_item",
        "quantity_limit",
    ] {
        assert!(
            cases
                .iter()
                .any(|c| matches!(&c.expect, Expect::Rejected { reason: r } if r == reason)),
            "the corpus has no prompt to reject as {reason}"
        );
    }

    let extractor = Extractor::built_in();
    let mut hits = 0;
    let mut per_tag = BTreeMap::<&str, (usize, usize)>::new();
    let mut misses = Vec::new();
    for case in &cases {
        let want = case.expect.clone().normalised();
        let got = Expect::from_extraction(&extractor.extract(MAX_QUANTITY, &case.text));
        let hit = got == want;
        hits += usize::from(hit);
        for tag in &case.tags {
            let entry = per_tag.entry(tag.as_str()).or_default();
            entry.0 += usize::from(hit);
            entry.1 += 1;
        }
        if !hit {
            misses.push(format!(
                "  {:?}\n    expected {want}\n    got      {got}",
                case.text
            ));
        }
    }

    let total = cases.len();
    let accuracy = percent(hits, total);
    println!(
        "corpus: {total} prompts, {rejections} to reject, from {}",
        corpus_path().display()
    );
    println!("extractor accuracy: {hits}/{total} = {accuracy:.1}%");
    if !per_tag.is_empty() {
        println!("by tag:");
        for (tag, (h, n)) in &per_tag {
            println!("  {tag:<10} {h:>4}/{n:<4} = {:.1}%", percent(*h, *n));
        }
    }
    if misses.is_empty() {
        println!("misses: none");
    } else {
        println!("misses ({}):\n{}", misses.len(), misses.join("\n"));
    }
    assert!(
        accuracy >= MIN_ACCURACY * 100.0,
        "extractor accuracy {accuracy:.1}% is below {:.0}% ({} misses, listed above)",
        MIN_ACCURACY * 100.0,
        misses.len()
    );
}
