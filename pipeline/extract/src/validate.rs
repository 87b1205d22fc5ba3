//! The one gate every extraction passes: candidate items (from the rules
//! or from an LLM) are checked against the catalog and the limits, merged,
//! and priced here and only here.
//!
//! The prompt is untrusted and so is anything read from it: a SKU must be
//! in the catalog, a quantity must be within `1..=max_quantity` (after
//! merging), an option must be one the SKU comes in, a coupon code must
//! look like one, and the price is always the catalog's. Nothing a
//! candidate carries can raise a limit, set a price or name another user:
//! it has no field for any of them.

use std::collections::BTreeMap;

use schemas::Item;

use super::text::phrase_key;
use super::{Confidence, Extraction};
use crate::catalog::Catalog;
use schemas::reason::Rejection;

/// Most lines (distinct SKU and options) one order may have.
pub const MAX_LINES: usize = 20;

/// Shortest and longest coupon code accepted.
const CODE_LEN: std::ops::RangeInclusive<usize> = 3..=32;

/// An item as a reader proposes it, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawItem {
    /// Catalog id.
    pub sku: String,
    pub quantity: i64,
    /// Option group → value id (or any of the value's words, such as
    /// `大杯`, which is mapped to its id).
    pub options: BTreeMap<String, String>,
}

/// An order as a reader proposes it, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOrder {
    pub items: Vec<RawItem>,
    pub coupon_code: Option<String>,
}

/// Checks `raw` against `catalog` and `max_quantity` (per line, after
/// merging lines of the same SKU and options). Items with a quantity of
/// zero or less are dropped; options the SKU does not come in are dropped
/// and make the result low-confidence.
pub fn validate(catalog: &Catalog, max_quantity: i32, raw: &RawOrder) -> Extraction {
    let max = i64::from(max_quantity);
    let mut low = false;
    let mut items: Vec<Item> = Vec::new();
    for candidate in &raw.items {
        let Some(sku) = catalog.sku(candidate.sku.trim()) else {
            return Extraction::rejected(Rejection::UnknownItem, Confidence::Low);
        };
        if candidate.quantity <= 0 {
            low = true;
            continue;
        }
        if candidate.quantity > max {
            return Extraction::rejected(Rejection::QuantityLimit, Confidence::High);
        }
        let mut options = BTreeMap::new();
        for (group, value) in &candidate.options {
            match option_id(catalog, &sku.id, group, value) {
                Some((group, id)) => {
                    options.insert(group, id);
                }
                None => low = true,
            }
        }
        let Some(unit_price_cents) = catalog.unit_price(sku, &options) else {
            // option_id only returns options the SKU offers.
            low = true;
            continue;
        };
        // The quantity is within 1..=max, which `validate` callers keep
        // within i32 (the configuration allows at most 10,000).
        let quantity = i32::try_from(candidate.quantity).unwrap_or(i32::MAX);
        match items
            .iter_mut()
            .find(|i| i.sku == sku.id && i.options == options)
        {
            Some(line) => {
                let total = i64::from(line.quantity) + i64::from(quantity);
                if total > max {
                    return Extraction::rejected(Rejection::QuantityLimit, Confidence::High);
                }
                line.quantity = i32::try_from(total).unwrap_or(i32::MAX);
            }
            None => items.push(Item {
                sku: sku.id.clone(),
                quantity,
                options,
                unit_price_cents,
            }),
        }
    }
    if items.is_empty() {
        return Extraction::rejected(Rejection::NoItem, Confidence::High);
    }
    if items.len() > MAX_LINES {
        return Extraction::rejected(Rejection::QuantityLimit, Confidence::High);
    }
    let coupon_code = raw.coupon_code.as_deref().and_then(|code| {
        let code = coupon_code(code);
        low |= code.is_none();
        code
    });
    Extraction::Items {
        items,
        coupon_code,
        confidence: if low {
            Confidence::Low
        } else {
            Confidence::High
        },
    }
}

/// The (group, value id) `value` of `group` names, if `sku` comes in it.
/// `value` may be the id or any word of the value ("大杯", "Large"); an id
/// names its own value first. The rules always pass ids, so the words are
/// keyed only for an answer that names a value some other way.
fn option_id(catalog: &Catalog, sku: &str, group: &str, value: &str) -> Option<(String, String)> {
    let options = catalog.options();
    let group = group.trim();
    let (group, values) = options
        .get_key_value(group)
        .or_else(|| options.get_key_value(group.to_lowercase().as_str()))?;
    let value = value.trim();
    let id = match values
        .get_key_value(value)
        .or_else(|| values.get_key_value(value.to_lowercase().as_str()))
    {
        Some((id, _)) => id,
        None => {
            let key = phrase_key(value);
            values
                .iter()
                .find_map(|(id, v)| v.words.iter().any(|w| phrase_key(w) == key).then_some(id))?
        }
    };
    catalog
        .sku(sku)?
        .offers(group, id)
        .then(|| (group.clone(), id.clone()))
}

/// A coupon code in upper case, if `code` looks like one: 3 to 32 ASCII
/// letters, digits, `-` or `_`.
pub fn coupon_code(code: &str) -> Option<String> {
    let code = code.trim();
    let ok = CODE_LEN.contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    ok.then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: i64, options: &[(&str, &str)]) -> RawItem {
        RawItem {
            sku: sku.into(),
            quantity,
            options: options
                .iter()
                .map(|(g, v)| ((*g).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn check(items: Vec<RawItem>) -> Extraction {
        validate(
            &Catalog::built_in(),
            50,
            &RawOrder {
                items,
                coupon_code: None,
            },
        )
    }

    #[test]
    fn merges_lines_and_prices_from_the_catalog() {
        let Extraction::Items {
            items, confidence, ..
        } = check(vec![
            item("latte", 2, &[("size", "large")]),
            item("burger", 1, &[]),
            item("latte", 3, &[("size", "大杯")]),
            item("latte", 1, &[]),
        ])
        else {
            panic!("not extracted")
        };
        assert_eq!(confidence, Confidence::High);
        let lines: Vec<_> = items
            .iter()
            .map(|i| (i.sku.as_str(), i.quantity, i.unit_price_cents))
            .collect();
        assert_eq!(
            lines,
            [
                ("latte", 5, 2_500),
                ("burger", 1, 2_600),
                ("latte", 1, 2_200)
            ]
        );
    }

    #[test]
    fn refuses_what_the_catalog_and_limits_do_not_allow() {
        assert_eq!(
            check(vec![item("pizza", 1, &[])]).reason(),
            Some(Rejection::UnknownItem)
        );
        assert_eq!(
            check(vec![item("latte", 51, &[])]).reason(),
            Some(Rejection::QuantityLimit)
        );
        assert_eq!(
            check(vec![item("latte", 30, &[]), item("latte", 30, &[])]).reason(),
            Some(Rejection::QuantityLimit)
        );
        assert_eq!(
            check(vec![item("latte", i64::MAX, &[])]).reason(),
            Some(Rejection::QuantityLimit)
        );
        assert_eq!(
            check(vec![item("latte", 0, &[])]).reason(),
            Some(Rejection::NoItem)
        );
        assert_eq!(
            check(vec![item("latte", -3, &[])]).reason(),
            Some(Rejection::NoItem)
        );
        assert_eq!(check(vec![]).reason(), Some(Rejection::NoItem));
    }

    #[test]
    fn options_the_sku_does_not_come_in_are_dropped_as_doubtful() {
        let e = check(vec![item("egg-tart", 1, &[("size", "large")])]);
        let Extraction::Items {
            items, confidence, ..
        } = e
        else {
            panic!("not extracted")
        };
        assert!(items[0].options.is_empty());
        assert_eq!(items[0].unit_price_cents, 900);
        assert_eq!(confidence, Confidence::Low);
        let hot_lemon = check(vec![item("lemon-tea", 1, &[("temperature", "hot")])]);
        assert_eq!(hot_lemon.confidence(), Confidence::Low);
        let price = check(vec![item("latte", 1, &[("price", "0")])]);
        assert_eq!(price.confidence(), Confidence::Low);
    }

    #[test]
    fn coupon_codes_are_checked() {
        assert_eq!(coupon_code(" spring-50 "), Some("SPRING-50".into()));
        assert_eq!(coupon_code("ab"), None);
        assert_eq!(coupon_code("drop table;"), None);
        assert_eq!(coupon_code(&"A".repeat(33)), None);
    }
}
