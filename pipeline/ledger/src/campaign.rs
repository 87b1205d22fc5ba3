//! Campaign definitions: which budget a request draws on, how much credit it
//! gets, for whom and when. Several campaigns may run at once; each has its
//! own budget, leased to partitions separately.
//!
//! A campaign's definition is a parameter of the ledger folds: every process
//! that folds the ledger (coupon, fulfillment, reply, audit) must run with
//! the same `[[campaigns]]` settings, or they would disagree on which grants
//! count.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::UNIX_EPOCH;

use schemas::{IntentEvent, Item};
use serde::{Deserialize, Serialize};

/// One campaign, as configured (`[[campaigns]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// Prompts name it in `campaign_id`; those that name none belong to the
    /// first campaign configured.
    pub id: String,
    /// Total credit the campaign may grant, in cents.
    pub budget_cents: i64,
    /// How much credit one order gets.
    pub credit: CreditRule,
    /// How many credited orders one user may get.
    #[serde(default = "one")]
    pub per_user_limit: u32,
    /// Start, RFC 3339 (`2026-02-01T00:00:00Z`); unset: already started.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// End (exclusive), RFC 3339; unset: never ends.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// SKUs the credit applies to; empty: every SKU.
    #[serde(default)]
    pub eligible_skus: BTreeSet<String>,
    /// Units of each SKU the campaign can sell (`[campaigns.stock]`, SKU id
    /// to units); a SKU not named here is unlimited.
    #[serde(default)]
    pub stock: BTreeMap<String, i64>,
}

fn one() -> u32 {
    1
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            id: "spring-festival".to_owned(),
            budget_cents: 1_000_000,
            credit: CreditRule::FreeUpToCents(2_000),
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            eligible_skus: BTreeSet::new(),
            stock: BTreeMap::new(),
        }
    }
}

/// How much credit one order gets, computed from the eligible part of the
/// order (the items whose SKU the campaign covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CreditRule {
    /// The eligible part is free, up to this many cents.
    FreeUpToCents(i64),
    /// This many cents off, when the eligible part costs at least as much.
    FixedCents(i64),
}

impl CreditRule {
    /// The most one order can get: the unit leases are sized in.
    pub fn unit_cents(self) -> i64 {
        match self {
            CreditRule::FreeUpToCents(n) | CreditRule::FixedCents(n) => n,
        }
    }
}

/// Why a campaign definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `campaigns` (campaign {index}): {message}")]
pub struct CampaignError {
    pub index: usize,
    pub message: String,
}

/// What a campaign grants one request, before the ledger is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Credit worth this many cents, if budget and the per-user limit allow.
    Credit(i64),
    /// No credit, for this reason (a [`schemas::reason`] constant).
    None(&'static str),
}

/// `¥1234.56`: cents as people read money.
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}¥{}.{:02}", abs / 100, abs % 100)
}

/// A validated campaign, ready to price requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub budget_cents: i64,
    pub credit: CreditRule,
    pub per_user_limit: u32,
    /// Unix milliseconds; `i64::MIN` when unset.
    pub starts_ms: i64,
    /// Unix milliseconds, exclusive; `i64::MAX` when unset.
    pub ends_ms: i64,
    pub eligible_skus: BTreeSet<String>,
    /// SKU → units the campaign can sell; absent: unlimited.
    pub stock: BTreeMap<String, i64>,
}

impl Campaign {
    /// The stock of `sku` in units, or `None` when it is unlimited.
    pub fn stock_of(&self, sku: &str) -> Option<i64> {
        self.stock.get(sku).copied()
    }

    /// Whether the campaign runs at `time_ms`.
    pub fn is_active(&self, time_ms: i64) -> bool {
        (self.starts_ms..self.ends_ms).contains(&time_ms)
    }

    /// The credit `items` would get, ignoring budget and per-user limits.
    pub fn offer(&self, items: &[Item], time_ms: i64) -> Offer {
        if !self.is_active(time_ms) {
            return Offer::None(schemas::reason::CAMPAIGN_NOT_ACTIVE);
        }
        let eligible: i64 = items
            .iter()
            .filter(|i| self.eligible_skus.is_empty() || self.eligible_skus.contains(&i.sku))
            .map(|i| {
                i.unit_price_cents
                    .saturating_mul(i64::from(i.quantity.max(0)))
            })
            .sum();
        let credit = match self.credit {
            CreditRule::FreeUpToCents(n) => eligible.min(n),
            CreditRule::FixedCents(n) if eligible >= n => n,
            CreditRule::FixedCents(_) => 0,
        };
        if credit > 0 {
            Offer::Credit(credit)
        } else {
            Offer::None(schemas::reason::NOT_ELIGIBLE)
        }
    }
}

/// Every configured campaign, looked up by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaigns {
    list: Vec<Campaign>,
    index: HashMap<String, usize>,
}

impl Campaigns {
    /// Validates `configs`; the first error names the campaign and the key.
    pub fn new(configs: &[CampaignConfig]) -> Result<Self, CampaignError> {
        if configs.is_empty() {
            return Err(CampaignError {
                index: 0,
                message: "at least one campaign must be configured".into(),
            });
        }
        let mut list = Vec::with_capacity(configs.len());
        let mut index = HashMap::new();
        for (i, c) in configs.iter().enumerate() {
            let err = |message: String| CampaignError { index: i, message };
            let valid_id = !c.id.is_empty()
                && c.id.len() <= 64
                && c.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_id {
                return Err(err(format!(
                    "id `{}` must be 1 to 64 letters, digits, `-`, `_` or `.`",
                    c.id
                )));
            }
            if index.insert(c.id.clone(), i).is_some() {
                return Err(err(format!("id `{}` is configured twice", c.id)));
            }
            if c.budget_cents < 0 {
                return Err(err("budget_cents must be zero or more".into()));
            }
            if c.credit.unit_cents() <= 0 {
                return Err(err("credit must be more than zero cents".into()));
            }
            if c.per_user_limit == 0 {
                return Err(err("per_user_limit must be at least 1".into()));
            }
            let time = |key: &str, value: &Option<String>, unset: i64| match value {
                None => Ok(unset),
                Some(text) => parse_time_ms(text).ok_or_else(|| {
                    err(format!(
                        "{key} `{text}` is not an RFC 3339 time such as 2026-02-01T00:00:00Z"
                    ))
                }),
            };
            let starts_ms = time("starts_at", &c.starts_at, i64::MIN)?;
            let ends_ms = time("ends_at", &c.ends_at, i64::MAX)?;
            if starts_ms >= ends_ms {
                return Err(err("starts_at must be before ends_at".into()));
            }
            if let Some((sku, units)) = c.stock.iter().find(|(_, units)| **units < 0) {
                return Err(err(format!(
                    "stock of `{sku}` is {units}: give zero or more units, or leave the SKU out for unlimited stock"
                )));
            }
            list.push(Campaign {
                id: c.id.clone(),
                budget_cents: c.budget_cents,
                credit: c.credit,
                per_user_limit: c.per_user_limit,
                starts_ms,
                ends_ms,
                eligible_skus: c.eligible_skus.clone(),
                stock: c.stock.clone(),
            });
        }
        Ok(Self { list, index })
    }

    /// The campaign with this id.
    pub fn get(&self, id: &str) -> Option<&Campaign> {
        self.index.get(id).map(|i| &self.list[*i])
    }

    /// The campaign prompts belong to when they name none.
    pub fn default_id(&self) -> &str {
        &self.list[0].id
    }

    /// Every campaign, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Campaign> {
        self.list.iter()
    }

    /// What `intent` would get, ignoring budget and per-user limits.
    pub fn offer(&self, intent: &IntentEvent) -> Offer {
        match self.get(&intent.campaign_id) {
            Some(c) => c.offer(&intent.items, intent.prompt_time_ms),
            None => Offer::None(schemas::reason::NOT_ELIGIBLE),
        }
    }
}

fn parse_time_ms(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
    };
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::reason::{CAMPAIGN_NOT_ACTIVE, NOT_ELIGIBLE};

    fn item(sku: &str, quantity: i32, price: i64) -> Item {
        Item {
            sku: sku.into(),
            quantity,
            options: Default::default(),
            unit_price_cents: price,
        }
    }

    fn campaign(f: impl FnOnce(&mut CampaignConfig)) -> Result<Campaign, CampaignError> {
        let mut c = CampaignConfig::default();
        f(&mut c);
        Campaigns::new(&[c]).map(|cs| cs.list[0].clone())
    }

    #[test]
    fn money_reads_as_yuan() {
        assert_eq!(yuan(150_000), "¥1500.00");
        assert_eq!(yuan(-5), "-¥0.05");
        assert_eq!(yuan(0), "¥0.00");
    }

    #[test]
    fn free_up_to_covers_the_eligible_part_only() {
        let c = campaign(|c| {
            c.eligible_skus = ["milk-tea".to_owned()].into();
        })
        .unwrap();
        let items = [item("milk-tea", 2, 600), item("latte", 1, 3_000)];
        assert_eq!(c.offer(&items, 0), Offer::Credit(1_200));
        let items = [item("milk-tea", 5, 600)];
        assert_eq!(c.offer(&items, 0), Offer::Credit(2_000));
        assert_eq!(
            c.offer(&[item("latte", 1, 3_000)], 0),
            Offer::None(NOT_ELIGIBLE)
        );
    }

    #[test]
    fn fixed_credit_needs_an_order_worth_it() {
        let c = campaign(|c| c.credit = CreditRule::FixedCents(500)).unwrap();
        assert_eq!(c.offer(&[item("a", 1, 499)], 0), Offer::None(NOT_ELIGIBLE));
        assert_eq!(c.offer(&[item("a", 1, 800)], 0), Offer::Credit(500));
    }

    #[test]
    fn runs_between_start_and_end() {
        let c = campaign(|c| {
            c.starts_at = Some("2026-02-01T00:00:00Z".into());
            c.ends_at = Some("2026-02-02T00:00:00Z".into());
        })
        .unwrap();
        let start = 1_769_904_000_000;
        let items = [item("a", 1, 100)];
        assert_eq!(c.offer(&items, start - 1), Offer::None(CAMPAIGN_NOT_ACTIVE));
        assert_eq!(c.offer(&items, start), Offer::Credit(100));
        assert_eq!(
            c.offer(&items, start + 86_400_000),
            Offer::None(CAMPAIGN_NOT_ACTIVE)
        );
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        type Edit = fn(&mut CampaignConfig);
        let cases: [(Edit, &str); 6] = [
            (
                |c| {
                    c.stock.insert("latte".into(), -1);
                },
                "stock of `latte`",
            ),
            (|c| c.id = "a b".into(), "id `a b`"),
            (|c| c.budget_cents = -1, "budget_cents"),
            (|c| c.credit = CreditRule::FixedCents(0), "credit"),
            (
                |c| c.ends_at = Some("tomorrow".into()),
                "ends_at `tomorrow`",
            ),
            (
                |c| {
                    c.starts_at = Some("2026-02-02T00:00:00Z".into());
                    c.ends_at = Some("2026-02-01T00:00:00Z".into());
                },
                "before ends_at",
            ),
        ];
        for (f, expected) in cases {
            let err = campaign(f).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let twice = [CampaignConfig::default(), CampaignConfig::default()];
        assert!(
            Campaigns::new(&twice)
                .unwrap_err()
                .message
                .contains("twice")
        );
        assert!(Campaigns::new(&[]).is_err());
    }
}
