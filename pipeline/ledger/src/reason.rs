//! The reason codes the ledger gives for a denied grant or a failed order.
//! They travel on `commerce.decisions` and `commerce.orders`, are counted by
//! the analytics views and pick the reply's template, so each is spelt once,
//! here. (An intent's rejection reasons belong to the extractor:
//! `chatcart_extract::Reason`.)

/// Denied: the campaign's budget is used up.
pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
/// Denied: the user already had their credited order(s).
pub const ALREADY_USED: &str = "already_used";
/// Denied: no configured campaign covers this request (unknown campaign, or
/// none of its items are eligible, or too little of them for the credit).
pub const NOT_ELIGIBLE: &str = "not_eligible";
/// Denied: the request was made before the campaign started or after it
/// ended.
pub const CAMPAIGN_NOT_ACTIVE: &str = "campaign_not_active";

/// Order failed: a SKU of the order has no stock left anywhere.
pub const OUT_OF_STOCK: &str = "out_of_stock";
/// Order failed: a SKU of the order is not sold (any more).
pub const SKU_UNAVAILABLE: &str = "sku_unavailable";
/// Order failed: the campaign stopped taking orders.
pub const CAMPAIGN_CLOSED: &str = "campaign_closed";
