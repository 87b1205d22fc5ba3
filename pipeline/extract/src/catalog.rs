//! The campaign catalog: what can be bought, under which names, in which
//! options, at what price.
//!
//! Loaded from TOML (the built-in `data/catalog.toml`, or `intent.catalog`)
//! and checked once at start, so the extractor can trust it: ids are
//! well-formed and unique, every word (name, option word, measure word)
//! means one thing only, SKUs offer only option values that exist, and
//! prices are positive and small enough that no order total can overflow.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::text::phrase_key;

/// The catalog shipped with chatcart.
pub const BUILT_IN: &str = include_str!("../data/catalog.toml");

/// Highest unit price, and highest option surcharge, in cents (¥10,000).
/// With `intent.max_quantity` at most 10,000 this keeps every total far
/// from `i64` overflow.
pub const MAX_PRICE_CENTS: i64 = 1_000_000;

/// One thing that can be bought.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sku {
    pub id: String,
    pub price_cents: i64,
    /// Chinese names; the first is the one replies use.
    pub zh: Vec<String>,
    /// English names, singular; the first is the one replies use.
    pub en: Vec<String>,
    /// English plurals ("lattes"). Listed rather than guessed, because
    /// English plurals are irregular and a wrong guess would match words
    /// that are not this SKU.
    #[serde(default)]
    pub en_plural: Vec<String>,
    /// Option group → the values this SKU comes in.
    #[serde(default)]
    pub options: BTreeMap<String, Vec<String>>,
}

impl Sku {
    /// The name a reply shows: the first Chinese name for `zh`, else the
    /// first English one.
    pub fn display_name(&self, zh: bool) -> &str {
        let names = if zh { &self.zh } else { &self.en };
        names.first().map_or(self.id.as_str(), String::as_str)
    }

    /// Whether this SKU comes with `value` of option `group`.
    pub fn offers(&self, group: &str, value: &str) -> bool {
        self.options
            .get(group)
            .is_some_and(|values| values.iter().any(|v| v == value))
    }
}

/// One value of an option group, such as `size = large`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionValue {
    /// Added to the unit price when chosen.
    #[serde(default)]
    pub extra_cents: i64,
    /// What people call it ("大杯", "large").
    pub words: Vec<String>,
}

/// Option group → value id → value.
pub type Options = BTreeMap<String, BTreeMap<String, OptionValue>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    measure_words: Vec<String>,
    #[serde(default)]
    options: Options,
    sku: Vec<Sku>,
}

/// A catalog that failed to load or check.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog is not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("catalog: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(message.into())
}

/// The checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    skus: Vec<Sku>,
    options: Options,
    measure_words: Vec<String>,
}

/// The built-in catalog, parsed once per process.
static BUILT_IN_CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    // The built-in file is checked by a unit test, so this cannot fail in
    // a released binary.
    #[allow(clippy::expect_used)]
    Catalog::parse(BUILT_IN).expect("built-in catalog is valid")
});

impl Catalog {
    /// The built-in catalog.
    pub fn built_in() -> Self {
        BUILT_IN_CATALOG.clone()
    }

    /// Loads `path`, or the built-in catalog when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        match path {
            None => Ok(Self::built_in()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::parse(&text)
            }
        }
    }

    /// Parses and checks catalog TOML.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        if file.sku.is_empty() {
            return Err(invalid("it lists no [[sku]]"));
        }
        // Every word, keyed as the extractor will see it, with what it
        // stands for, so a second use can name both.
        let mut words: HashMap<String, String> = HashMap::new();
        let mut claim = |word: &str, owner: String| -> Result<(), CatalogError> {
            check_word(word, &owner)?;
            let key = phrase_key(word);
            match words.get(&key) {
                Some(first) => Err(invalid(format!(
                    "`{word}` is used twice: by {first} and by {owner}"
                ))),
                None => {
                    words.insert(key, owner);
                    Ok(())
                }
            }
        };
        for word in &file.measure_words {
            claim(word, "measure_words".into())?;
        }
        for (group, values) in &file.options {
            check_id(group, "option group")?;
            if values.is_empty() {
                return Err(invalid(format!("option group `{group}` has no values")));
            }
            for (id, value) in values {
                check_id(id, "option value")?;
                let owner = format!("option {group}.{id}");
                if !(0..=MAX_PRICE_CENTS).contains(&value.extra_cents) {
                    return Err(invalid(format!(
                        "{owner}: extra_cents must be between 0 and {MAX_PRICE_CENTS}"
                    )));
                }
                if value.words.is_empty() {
                    return Err(invalid(format!("{owner} needs at least one word")));
                }
                for word in &value.words {
                    claim(word, owner.clone())?;
                }
            }
        }
        let mut ids = HashMap::new();
        for sku in &file.sku {
            check_id(&sku.id, "sku id")?;
            if ids.insert(sku.id.as_str(), ()).is_some() {
                return Err(invalid(format!("sku id `{}` appears twice", sku.id)));
            }
            if !(1..=MAX_PRICE_CENTS).contains(&sku.price_cents) {
                return Err(invalid(format!(
                    "sku `{}`: price_cents must be between 1 and {MAX_PRICE_CENTS}, not {}",
                    sku.id, sku.price_cents
                )));
            }
            if sku.zh.is_empty() || sku.en.is_empty() {
                return Err(invalid(format!(
                    "sku `{}` needs at least one Chinese (zh) and one English (en) name",
                    sku.id
                )));
            }
            for name in sku.zh.iter().chain(&sku.en).chain(&sku.en_plural) {
                claim(name, format!("sku `{}`", sku.id))?;
            }
            for (group, values) in &sku.options {
                let Some(known) = file.options.get(group) else {
                    return Err(invalid(format!(
                        "sku `{}` lists option `{group}`, which [options] does not define",
                        sku.id
                    )));
                };
                if values.is_empty() {
                    return Err(invalid(format!(
                        "sku `{}`: option `{group}` lists no values",
                        sku.id
                    )));
                }
                for (i, value) in values.iter().enumerate() {
                    if !known.contains_key(value) {
                        return Err(invalid(format!(
                            "sku `{}`: `{value}` is not a value of option `{group}` (known: {})",
                            sku.id,
                            known.keys().cloned().collect::<Vec<_>>().join(", ")
                        )));
                    }
                    if values[..i].contains(value) {
                        return Err(invalid(format!(
                            "sku `{}`: option `{group}` lists `{value}` twice",
                            sku.id
                        )));
                    }
                }
            }
        }
        Ok(Self {
            skus: file.sku,
            options: file.options,
            measure_words: file.measure_words,
        })
    }

    /// Every SKU, in file order.
    pub fn skus(&self) -> &[Sku] {
        &self.skus
    }

    /// The SKU with this id.
    pub fn sku(&self, id: &str) -> Option<&Sku> {
        self.skus.iter().find(|s| s.id == id)
    }

    /// Every option group and its values.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Words that count things ("杯", "cups").
    pub fn measure_words(&self) -> &[String] {
        &self.measure_words
    }

    /// The unit price of `sku` with `options` (group → value id): the SKU's
    /// price plus each option's surcharge. `None` when the SKU does not come
    /// with one of the options.
    pub fn unit_price(&self, sku: &Sku, options: &BTreeMap<String, String>) -> Option<i64> {
        options
            .iter()
            .try_fold(sku.price_cents, |price, (group, value)| {
                if !sku.offers(group, value) {
                    return None;
                }
                let extra = self.options.get(group)?.get(value)?.extra_cents;
                Some(price + extra)
            })
    }
}

/// Ids are what travel on topics and in configuration: lower-case ASCII.
fn check_id(id: &str, what: &str) -> Result<(), CatalogError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} `{id}` must be 1 to 64 lower-case ASCII letters, digits and '-'"
        )))
    }
}

/// A word must be letters (of any script) with spaces, '-' or '\'' between:
/// the extractor reads digits as numbers and punctuation as separators, so
/// a word with either could never be matched.
fn check_word(word: &str, owner: &str) -> Result<(), CatalogError> {
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    let ok = letters > 0
        && word.chars().count() <= 40
        && word
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{owner}: `{word}` must be letters, with only spaces, '-' or '\\'' between them"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "measure_words = ['杯']\n[options.size]\nlarge = { extra_cents = 300, words = ['大杯', 'large'] }\nsmall = { words = ['小杯'] }\n[[sku]]\nid = 'a'\nprice_cents = 100\nzh = ['甲']\nen = ['aa']\noptions = { size = ['large', 'small'] }\n";

    fn error(text: &str) -> String {
        Catalog::parse(text)
            .expect_err("catalog is refused")
            .to_string()
    }

    #[test]
    fn built_in_catalog_is_valid_and_complete() {
        let c = Catalog::built_in();
        for id in [
            "milk-tea",
            "bubble-milk-tea",
            "latte",
            "coconut-latte",
            "americano",
            "lemon-tea",
            "fruit-tea",
            "egg-tart",
            "dumplings",
            "fried-chicken",
            "burger",
        ] {
            assert!(c.sku(id).is_some(), "{id} missing");
        }
        for group in ["size", "sugar", "temperature"] {
            assert!(c.options().contains_key(group), "{group} missing");
        }
        let latte = c.sku("latte").expect("latte");
        assert_eq!(latte.display_name(true), "拿铁");
        assert_eq!(latte.display_name(false), "latte");
    }

    #[test]
    fn unit_price_adds_option_surcharges() {
        let c = Catalog::parse(SMALL).expect("valid");
        let sku = c.sku("a").expect("a");
        let mut options = BTreeMap::new();
        assert_eq!(c.unit_price(sku, &options), Some(100));
        options.insert("size".to_owned(), "large".to_owned());
        assert_eq!(c.unit_price(sku, &options), Some(400));
        options.insert("size".to_owned(), "huge".to_owned());
        assert_eq!(c.unit_price(sku, &options), None);
    }

    #[test]
    fn bad_catalogs_are_refused_with_reasons() {
        Catalog::parse(SMALL).expect("the base case is valid");
        let dup_id =
            format!("{SMALL}[[sku]]\nid = 'a'\nprice_cents = 1\nzh = ['乙']\nen = ['b']\n");
        assert!(error(&dup_id).contains("appears twice"));
        let dup_name =
            format!("{SMALL}[[sku]]\nid = 'b'\nprice_cents = 1\nzh = ['乙']\nen = ['AA']\n");
        let e = error(&dup_name);
        assert!(e.contains("used twice") && e.contains("sku `a`"), "{e}");
        let clash = SMALL.replace("zh = ['甲']", "zh = ['大杯']");
        assert!(error(&clash).contains("option size.large"));
        let unknown_value = SMALL.replace("['large', 'small']", "['large', 'huge']");
        assert!(error(&unknown_value).contains("`huge` is not a value of option `size`"));
        let unknown_group = SMALL.replace("options = { size", "options = { colour");
        assert!(error(&unknown_group).contains("colour"));
        let price = SMALL.replace("price_cents = 100", "price_cents = 0");
        assert!(error(&price).contains("price_cents"));
        let price = SMALL.replace("price_cents = 100", "price_cents = 99999999999");
        assert!(error(&price).contains("price_cents"));
        let extra = SMALL.replace("extra_cents = 300", "extra_cents = -5");
        assert!(error(&extra).contains("extra_cents"));
        let digits = SMALL.replace("en = ['aa']", "en = ['7up']");
        assert!(error(&digits).contains("must be letters"));
        let id = SMALL.replace("id = 'a'", "id = 'A b'");
        assert!(error(&id).contains("sku id"));
        let unknown_field = format!("{SMALL}colour = 'red'\n");
        assert!(error(&unknown_field).contains("colour"));
        assert!(error("sku = []\n").contains("no [[sku]]"));
    }

    #[test]
    fn loading_a_missing_file_names_it() {
        let e = Catalog::load(Some(Path::new("/nonexistent/catalog.toml")))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("/nonexistent/catalog.toml"), "{e}");
    }
}
