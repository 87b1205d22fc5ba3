//! The campaign catalog: what can be bought, under which names, at what price.
//!
//! Loaded from TOML (the built-in `data/catalog.toml`, or `intent.catalog`)
//! and checked once at start, so the extractor can trust it.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

/// The catalog shipped with chatcart.
pub const BUILT_IN: &str = include_str!("../data/catalog.toml");

/// One thing that can be bought.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sku {
    pub id: String,
    pub price_cents: i64,
    pub names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    sku: Vec<Sku>,
}

/// A catalog that failed to load or check.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog is not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("catalog: {0}")]
    Invalid(String),
}

/// The checked catalog, with its names ready for matching.
#[derive(Debug, Clone)]
pub struct Catalog {
    skus: Vec<Sku>,
    /// Lower-cased names as characters with the index of their SKU, longest
    /// first, so a longer name always wins over a shorter one inside it.
    names: Vec<(Vec<char>, usize)>,
}

impl Catalog {
    /// The built-in catalog.
    pub fn built_in() -> Self {
        // The built-in file is checked by a unit test, so this cannot fail
        // in a released binary.
        #[allow(clippy::expect_used)]
        Self::parse(BUILT_IN).expect("built-in catalog is valid")
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
            return Err(CatalogError::Invalid("it lists no [[sku]]".into()));
        }
        let mut ids = HashSet::new();
        let mut seen_names = HashSet::new();
        let mut names = Vec::new();
        for (index, sku) in file.sku.iter().enumerate() {
            let id_ok = !sku.id.is_empty()
                && sku
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !id_ok {
                return Err(CatalogError::Invalid(format!(
                    "sku id `{}` must be non-empty lower-case ASCII letters, digits and '-'",
                    sku.id
                )));
            }
            if !ids.insert(sku.id.clone()) {
                return Err(CatalogError::Invalid(format!(
                    "sku id `{}` appears twice",
                    sku.id
                )));
            }
            if sku.price_cents <= 0 {
                return Err(CatalogError::Invalid(format!(
                    "sku `{}` needs a price_cents above zero",
                    sku.id
                )));
            }
            if sku.names.is_empty() {
                return Err(CatalogError::Invalid(format!(
                    "sku `{}` needs at least one name",
                    sku.id
                )));
            }
            for name in &sku.names {
                let lower = name.trim().to_lowercase();
                if lower.is_empty() {
                    return Err(CatalogError::Invalid(format!(
                        "sku `{}` has an empty name",
                        sku.id
                    )));
                }
                if !seen_names.insert(lower.clone()) {
                    return Err(CatalogError::Invalid(format!(
                        "name `{name}` is used by more than one sku"
                    )));
                }
                names.push((lower.chars().collect::<Vec<_>>(), index));
            }
        }
        names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        Ok(Self {
            skus: file.sku,
            names,
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

    /// The longest catalog name starting at `text[at..]`, as (its length in
    /// characters, its SKU). Latin names must stand as whole words.
    pub fn match_at(&self, text: &[char], at: usize) -> Option<(usize, &Sku)> {
        let before_is_letter = at > 0 && text[at - 1].is_ascii_alphabetic();
        self.names.iter().find_map(|(name, sku)| {
            let end = at + name.len();
            if end > text.len() || text[at..end] != name[..] {
                return None;
            }
            let latin = name[0].is_ascii_alphabetic();
            let after_is_letter = text.get(end).is_some_and(|c| c.is_ascii_alphabetic());
            if latin && (before_is_letter || after_is_letter) {
                return None;
            }
            Some((name.len(), &self.skus[*sku]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn longest_name_wins() {
        let c = Catalog::built_in();
        let text: Vec<char> = "珍珠奶茶".chars().collect();
        assert_eq!(c.match_at(&text, 0).unwrap().1.id, "bubble-milk-tea");
        let text: Vec<char> = "coconut latte".chars().collect();
        assert_eq!(c.match_at(&text, 0).unwrap().1.id, "coconut-latte");
    }

    #[test]
    fn latin_names_need_word_boundaries() {
        let c = Catalog::built_in();
        let text: Vec<char> = "lattes".chars().collect();
        assert_eq!(c.match_at(&text, 0).unwrap().0, 6);
        let text: Vec<char> = "bobas".chars().collect();
        assert!(c.match_at(&text, 0).is_none());
    }

    #[test]
    fn bad_catalogs_are_rejected_with_reasons() {
        let dup = "[[sku]]\nid='a'\nprice_cents=1\nnames=['x']\n[[sku]]\nid='b'\nprice_cents=1\nnames=['X']\n";
        assert!(
            Catalog::parse(dup)
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
        let price = "[[sku]]\nid='a'\nprice_cents=0\nnames=['x']\n";
        assert!(
            Catalog::parse(price)
                .unwrap_err()
                .to_string()
                .contains("price")
        );
        let unknown = "[[sku]]\nid='a'\nprice_cents=1\nnames=['x']\ncolour='red'\n";
        assert!(Catalog::parse(unknown).is_err());
    }
}
