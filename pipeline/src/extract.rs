//! Turns a prompt's text into items, or a reason it cannot be ordered. Pure.
//!
//! This first extractor finds catalog names (longest first) and an Arabic or
//! full-width quantity next to each one, before (`40杯奶茶`, `2 lattes`) or
//! after (`奶茶40杯`, `latte x2`); without a number the quantity is 1. The
//! text is untrusted: nothing in it can do more than pick catalog items and
//! quantities within `max_quantity`.

use std::collections::BTreeMap;

use schemas::Item;

use crate::catalog::Catalog;

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extraction {
    /// Catalog items with quantities, merged per SKU, in order of mention.
    Items(Vec<Item>),
    /// Why nothing can be ordered, as a reason code.
    Rejected(&'static str),
}

/// Reason: no catalog item was found in the prompt.
pub const NOT_UNDERSTOOD: &str = "not_understood";
/// Reason: an item's quantity was above the configured maximum.
pub const QUANTITY_LIMIT: &str = "quantity_limit";
/// Reason: an item was asked for zero times.
pub const NO_ITEM: &str = "no_item";

/// Measure words that may stand between a number and an item.
const MEASURE_WORDS: &[&str] = &[
    "杯",
    "份",
    "个",
    "盒",
    "只",
    "块",
    "碗",
    "cups of",
    "cup of",
    "pieces of",
    "boxes of",
    "cups",
    "cup",
    "pieces",
    "boxes",
    "of",
];

/// Extracts the items `text` asks for.
pub fn extract(catalog: &Catalog, max_quantity: i32, text: &str) -> Extraction {
    let text = normalise(text);
    let mut items: Vec<Item> = Vec::new();
    // Characters before this index already belong to an earlier item, so an
    // item cannot take a number the previous item used (`奶茶2杯拿铁`).
    let mut taken = 0;
    let mut at = 0;
    while at < text.len() {
        let Some((len, sku)) = catalog.match_at(&text, at) else {
            at += 1;
            continue;
        };
        let end = at + len;
        let (quantity, used_until) = match number_before(&text, taken, at) {
            Some(q) => (q, end),
            None => match number_after(&text, end) {
                Some((q, after)) => (q, after),
                None => (1, end),
            },
        };
        if quantity > i64::from(max_quantity) {
            return Extraction::Rejected(QUANTITY_LIMIT);
        }
        match items.iter_mut().find(|i| i.sku == sku.id) {
            Some(item) => {
                item.quantity += quantity as i32;
                if item.quantity > max_quantity {
                    return Extraction::Rejected(QUANTITY_LIMIT);
                }
            }
            None => items.push(Item {
                sku: sku.id.clone(),
                quantity: quantity as i32,
                options: BTreeMap::new(),
                unit_price_cents: sku.price_cents,
            }),
        }
        taken = used_until;
        at = used_until;
    }
    items.retain(|i| i.quantity > 0);
    if items.is_empty() {
        return if taken > 0 {
            Extraction::Rejected(NO_ITEM)
        } else {
            Extraction::Rejected(NOT_UNDERSTOOD)
        };
    }
    Extraction::Items(items)
}

/// Lower case, with full-width digits and letters folded to ASCII.
fn normalise(text: &str) -> Vec<char> {
    text.chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            '\u{3000}' => ' ',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn skip_spaces_back(text: &[char], mut i: usize, floor: usize) -> usize {
    while i > floor && text[i - 1].is_whitespace() {
        i -= 1;
    }
    i
}

fn ends_with(text: &[char], end: usize, word: &str) -> Option<usize> {
    let word: Vec<char> = word.chars().collect();
    (end >= word.len() && text[end - word.len()..end] == word[..]).then(|| end - word.len())
}

/// A number just before `at` (not reaching back past `floor`), with an
/// optional measure word between it and the item.
fn number_before(text: &[char], floor: usize, at: usize) -> Option<i64> {
    let mut i = skip_spaces_back(text, at, floor);
    if let Some(start) = MEASURE_WORDS
        .iter()
        .find_map(|w| ends_with(text, i, w).filter(|s| *s >= floor))
    {
        i = skip_spaces_back(text, start, floor);
    }
    let end = i;
    while i > floor && text[i - 1].is_ascii_digit() {
        i -= 1;
    }
    parse_digits(&text[i..end])
}

/// A number just after `end`, optionally introduced by `x`, `×` or `*`
/// and followed by a measure word; returns it and where it stops.
fn number_after(text: &[char], end: usize) -> Option<(i64, usize)> {
    let mut i = end;
    while i < text.len() && text[i].is_whitespace() {
        i += 1;
    }
    if i < text.len() && matches!(text[i], 'x' | '×' | '*') {
        i += 1;
        while i < text.len() && text[i].is_whitespace() {
            i += 1;
        }
    }
    let start = i;
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    let quantity = parse_digits(&text[start..i])?;
    // A trailing measure word belongs to this item, not the next.
    if let Some(word) = MEASURE_WORDS.iter().find(|w| {
        let w: Vec<char> = w.chars().collect();
        text.get(i..i + w.len()) == Some(&w[..])
    }) {
        i += word.chars().count();
    }
    Some((quantity, i))
}

/// A run of ASCII digits as a number; very long runs saturate (and are then
/// rejected by the quantity limit).
fn parse_digits(digits: &[char]) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    Some(digits.iter().fold(0i64, |n, d| {
        n.saturating_mul(10)
            .saturating_add(i64::from(*d as u8 - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<(String, i32)> {
        match extract(&Catalog::built_in(), 50, text) {
            Extraction::Items(items) => items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
            Extraction::Rejected(r) => panic!("{text:?} rejected: {r}"),
        }
    }

    fn rejected(text: &str) -> &'static str {
        match extract(&Catalog::built_in(), 50, text) {
            Extraction::Rejected(r) => r,
            Extraction::Items(i) => panic!("{text:?} gave {i:?}"),
        }
    }

    #[test]
    fn quantity_before_or_after_the_item() {
        assert_eq!(items("帮我买40杯奶茶"), [("milk-tea".into(), 40)]);
        assert_eq!(items("奶茶40杯"), [("milk-tea".into(), 40)]);
        assert_eq!(items("lemon tea x4"), [("lemon-tea".into(), 4)]);
        assert_eq!(items("order 2 lattes please"), [("latte".into(), 2)]);
        assert_eq!(items("2 cups of latte"), [("latte".into(), 2)]);
        assert_eq!(items("来一份蛋挞"), [("egg-tart".into(), 1)]);
    }

    #[test]
    fn several_items_do_not_share_a_number() {
        assert_eq!(
            items("奶茶2杯拿铁3杯"),
            [("milk-tea".into(), 2), ("latte".into(), 3)]
        );
        assert_eq!(
            items("2 burgers and 3 fried chicken"),
            [("burger".into(), 2), ("fried-chicken".into(), 3)]
        );
        assert_eq!(items("latte, latte"), [("latte".into(), 2)]);
    }

    #[test]
    fn full_width_digits_and_case() {
        assert_eq!(items("ＢＯＢＡ ３"), [("bubble-milk-tea".into(), 3)]);
        assert_eq!(items("３杯珍珠奶茶"), [("bubble-milk-tea".into(), 3)]);
    }

    #[test]
    fn rejections_carry_reasons() {
        assert_eq!(rejected("你好"), NOT_UNDERSTOOD);
        assert_eq!(rejected("where is my order?"), NOT_UNDERSTOOD);
        assert_eq!(rejected("100杯奶茶"), QUANTITY_LIMIT);
        assert_eq!(rejected("99999999999999999999999 lattes"), QUANTITY_LIMIT);
        assert_eq!(rejected("0 lattes"), NO_ITEM);
        assert_eq!(rejected("30杯奶茶 30杯奶茶"), QUANTITY_LIMIT);
    }

    #[test]
    fn prices_come_from_the_catalog_not_the_text() {
        let Extraction::Items(items) = extract(&Catalog::built_in(), 50, "1 latte for 0 cents")
        else {
            panic!("not extracted")
        };
        assert_eq!(items[0].unit_price_cents, 2200);
    }
}
