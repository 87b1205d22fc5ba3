//! Any text as a chat prompt to the extractor: it never panics, and
//! whatever the text says, an order is only catalog items at catalog
//! prices, each line within the quantity limit, at most `MAX_LINES` lines,
//! and a coupon code is code-shaped.

#![no_main]

use std::sync::LazyLock;

use extract::{Extraction, Extractor, MAX_LINES, coupon_code};
use libfuzzer_sys::fuzz_target;

static EXTRACTOR: LazyLock<Extractor> = LazyLock::new(Extractor::built_in);

fuzz_target!(|bytes: &[u8]| {
    // The first byte picks the per-line limit, the rest is the prompt.
    let Some((&limit, text)) = bytes.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let max_quantity = 1 + i32::from(limit % 100);
    let extractor = &*EXTRACTOR;
    let extraction = extractor.extract(max_quantity, text);
    if let Extraction::Items {
        items,
        coupon_code: code,
        ..
    } = &extraction
    {
        assert!(!items.is_empty() && items.len() <= MAX_LINES, "{items:?}");
        let catalog = extractor.catalog();
        for item in items {
            assert!((1..=max_quantity).contains(&item.quantity), "{item:?}");
            let sku = catalog.sku(&item.sku).expect("a catalog item");
            assert_eq!(
                catalog.unit_price(sku, &item.options),
                Some(item.unit_price_cents),
                "{item:?}"
            );
        }
        // Code-shaped: the code reader keeps it as it is.
        if let Some(code) = code {
            assert_eq!(coupon_code(code).as_deref(), Some(code.as_str()));
        }
    }
});
