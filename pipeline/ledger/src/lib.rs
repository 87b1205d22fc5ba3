//! The coupon ledger: pure folds (no IO) that decide, from log order alone,
//! which grants count. The coupon stage, fulfillment, the reply stage and the
//! auditor all fold the same logs with these functions, so they cannot
//! disagree, and a duplicate or a zombie's extra record is simply invalid.
//! This crate depends on the record types alone: no runtime, no broker
//! client, no network.
//!
//! # Layout
//! - [`audit`]: the auditor's checks of every promise, over logs read from
//!   the beginning.
//! - [`campaign`]: what each campaign grants, to whom and when, and the
//!   money formatting every report shares.
//! - [`treasury`]: the fold over the one-partition `campaign.treasury`:
//!   lease requests are granted in log order while budget remains, sized by
//!   the fold from what remains.
//! - [`decisions`]: the fold over one `commerce.decisions` partition: grants
//!   are valid within the partition's allowance (leases credited minus
//!   leases returned) and the per-user limit; releases give credit back.
//! - [`stock`]: the fold over one `commerce.orders` partition: placed
//!   orders are valid within the partition's stock leases, all or nothing.
//! - [`image`]: a decisions fold's state as bytes, for checkpoints.
//! - `fixtures`: campaigns and records for tests, here and in the crates
//!   above (the `fixtures` feature).
//! - [`recent`]: the bounded window of recent request ids that recognises
//!   redeliveries.
//!
//! `docs/ledger.md` states why these folds keep the campaign's promises.

pub mod audit;
pub mod campaign;
pub mod decisions;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod image;
pub mod recent;
pub mod stock;
pub mod treasury;

pub use decisions::{DecisionsFold, Effect, Verdict};
pub use image::ImageError;
pub use stock::{OrderStatus, StockEffect, StockFold};
pub use treasury::{LeaseStatus, TreasuryEffect, TreasuryFold, lease_size};

use std::collections::{HashMap, HashSet};

/// The folds' maps: keyed by request and user ids, looked up for every
/// record, so hashed with foldhash (seeded per process) instead of SipHash.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// See [`FastMap`].
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

use schemas::{TreasuryKind, TreasuryRecord};

/// The resource a budget lease moves (stock leases name `stock:<sku>`).
pub const BUDGET: &str = "budget";

/// The treasury resource holding the campaign's stock of `sku`.
pub fn stock_resource(sku: &str) -> String {
    format!("stock:{sku}")
}

/// The SKU a `stock:<sku>` resource is for.
pub fn stock_sku(resource: &str) -> Option<&str> {
    resource.strip_prefix("stock:")
}

/// What a lease credit or return did to a partition's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    Credited(i64),
    Returned(i64),
}

/// Folds lease movement `t` into a partition's allowance of which `used`
/// is spent: the one rule both partition folds (budget and stock) keep. A
/// credit grows the allowance; a return shrinks it but may not exceed what
/// is unused, so a return never hands back what was spent. Requests,
/// non-positive amounts and ids in `seen` (which remembers each id folded)
/// do nothing; `account` is only called for a movement that may apply.
pub(crate) fn fold_movement<'a>(
    t: &TreasuryRecord,
    seen: &mut HashSet<String, impl std::hash::BuildHasher>,
    account: impl FnOnce() -> (&'a mut i64, &'a mut i64, i64),
) -> Option<Moved> {
    let credit = match t.kind {
        TreasuryKind::LeaseCredit => true,
        TreasuryKind::LeaseReturn => false,
        TreasuryKind::LeaseRequest => return None,
    };
    if t.amount <= 0 || !seen.insert(t.request_id.clone()) {
        return None;
    }
    let (allowance, returned, used) = account();
    if credit {
        *allowance += t.amount;
        Some(Moved::Credited(t.amount))
    } else if t.amount <= *allowance - used {
        *allowance -= t.amount;
        *returned += t.amount;
        Some(Moved::Returned(t.amount))
    } else {
        None
    }
}

/// A deliberate defect, so tests can show that the simulator and the
/// auditor catch a broken fold. It can only be switched on in this crate's
/// tests and with the `faults` feature, which only test builds enable
/// (`with_fault`); everywhere else `fault` is always false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Grants are valid even beyond the partition's allowance.
    IgnoreAllowance,
    /// Grants are valid even beyond the per-user limit.
    IgnoreUserLimit,
    /// Checkpoint images leave out who was granted, so a fold restored from
    /// one lets those users be granted again.
    ImageForgetsUsers,
    /// Placed orders are valid even beyond the partition's stock.
    IgnoreStock,
}

#[cfg(any(test, feature = "faults"))]
thread_local! {
    static FAULT: std::cell::Cell<Option<Fault>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `fault` injected into every fold on this thread.
#[cfg(any(test, feature = "faults"))]
pub fn with_fault<T>(fault: Fault, f: impl FnOnce() -> T) -> T {
    FAULT.with(|c| c.set(Some(fault)));
    let out = f();
    FAULT.with(|c| c.set(None));
    out
}

/// Runs `f` with no fault injected (for checkers that must see the truth
/// while the system under test runs with one).
#[cfg(any(test, feature = "faults"))]
pub fn without_fault<T>(f: impl FnOnce() -> T) -> T {
    let saved = FAULT.with(|c| c.replace(None));
    let out = f();
    FAULT.with(|c| c.set(saved));
    out
}

/// Whether `which` is injected (never, outside test builds).
fn fault(which: Fault) -> bool {
    #[cfg(any(test, feature = "faults"))]
    {
        FAULT.with(|c| c.get()) == Some(which)
    }
    #[cfg(not(any(test, feature = "faults")))]
    {
        let _ = which;
        false
    }
}
